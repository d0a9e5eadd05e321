"""Realistic mode of the NAS-Bench-201 benchmark (``--fit-n N``): what a team that measured N networks knows.

The search never sees a true latency. Per seed, N random distinct networks are "measured" (their table
latency), the model ``edgenas tables fit`` fits is fitted on them (``edgenas.latency.fit.fit_wholenet``,
default level and pruning: additive over executed edges below 200 networks, plus a learned correction
from there on), and the search sees only its predictions.

**The margin for the model's error** is learned from the N measured networks and nothing else: each is
predicted by a model fitted without it (K-fold cross-validation, same level and pruning), giving N
held-out ratios r = measured / predicted. Read as a conformal calibration set (cross-validated, as in
CV+), they say how likely
an unmeasured network predicted at p ms is to meet a target T: P(feasible) = #{r_i <= T / p} / (N + 1)
(``p_feasible``), and the conformal q-quantile of r (``quantile``) is the factor by which a search must
tighten T so that a network it picks is feasible with probability >= q. The ratios are over whole
networks; the search's pick is the most accurate of many, which favours networks the model
under-predicts, so that guarantee holds per network, not per pick: the measurements of the final check
(``verify_pick``) are what make a pick safe.

**The final check** (``verify_pick``) is what a team with the device does before it ships: measure a few
candidates (at most k) and pick the most accurate one whose *measurement* meets the target. The next
network measured is the one with the largest expected gain, P(feasible) x (its accuracy - the best
verified accuracy so far); a pick made this way is feasible by construction. When no measured candidate
meets the target (the last check, if it comes to that, goes to this fallback), the pick falls back to
the most accurate unmeasured candidate the margin alone deems safe (P(feasible) >= the coverage) and is
reported as unverified.

HW-NAS-Bench-360 measured one network per NAS-Bench-201 isomorphism class and gives that measurement to
every member (``Table.rep``); a member whose cell runs other ops (e.g. one 3x3 conv instead of two) still
carries its representative's latency. The team's model therefore predicts every architecture as its
representative, the same mapping the table applies, and the N measured networks are N distinct
representatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edgenas.errors import InputError
from edgenas.latency.fit import _dense, fit_wholenet
from edgenas.spaces import nb201_arch as enc

FOLDS = 5


def cells(codes) -> list:
    """``Nb201Arch`` cells of codes (what ``fit_wholenet`` reads)."""
    return [enc.Nb201Arch(tuple(enc.NB201_OPS[o] for o in enc.from_code(c))) for c in codes]


@dataclass
class FittedLatency:
    """A model fitted on ``measured`` networks, its predictions, and its held-out error on them."""

    predicted: np.ndarray  # ms over codes (inf where the table has no latency)
    ratios: np.ndarray  # sorted held-out measured / predicted over the measured networks (the margin's data)
    measured: np.ndarray  # codes of the measured networks
    model: str  # "level/pruning" of the fitted model
    held_out: np.ndarray | None = None  # held-out prediction of each measured network (same order as measured)
    measured_ms: np.ndarray | None = None  # their measurements

    def quantile(self, q: float) -> float:
        """Conformal q-quantile of the held-out ratios (the finite-sample rank: ceil((N+1) q)-th smallest for
        q >= 0.5, floor((N+1) q)-th for q < 0.5, clipped to the N ratios)."""
        n = len(self.ratios)
        k = math.ceil((n + 1) * q) if q >= 0.5 else math.floor((n + 1) * q)
        return float(self.ratios[min(max(k, 1), n) - 1])

    def p_feasible(self, predicted_ms, target_ms: float) -> np.ndarray:
        """Conformal probability that a network predicted at ``predicted_ms`` measures <= ``target_ms``."""
        limit = target_ms / np.maximum(np.asarray(predicted_ms, dtype=float), 1e-12)
        return np.searchsorted(self.ratios, limit, side="right") / (len(self.ratios) + 1)

    def near(self, target_ms: float, n: int) -> "FittedLatency":
        """The same model with its margin learned from only the ``n`` measured networks whose held-out
        prediction lies nearest the target (log scale). Why: the search's picks sit just under the target,
        and the model's error there (e.g. small networks on a phone) can differ from its error overall.
        ``n`` = 0 or at least the number measured: the global margin."""
        if not n or n >= len(self.measured):
            return self
        held = np.maximum(self.held_out, 1e-12)
        idx = np.argsort(np.abs(np.log(held / target_ms)), kind="stable")[:n]
        return replace(self, ratios=np.sort(self.measured_ms[idx] / held[idx]))


def _predict_reps(table, model):
    """``model.predict_many`` over the table's distinct representatives (the same numbers), with their
    features computed once per table and pruning: the active mode refits and predicts them all on every
    measurement, and the features, not the product, are what take the time."""
    cache = table.__dict__.setdefault("_rep_cache", {})
    if "cells" not in cache:
        uniq = np.unique(table.rep[table.valid])
        cache["cells"] = (uniq, cells(uniq))
    uniq, uniq_cells = cache["cells"]
    if model.residual_data is not None:
        return uniq, model.predict_many(uniq_cells)
    key = (model.level, model.pruning)
    if key not in cache:
        cache[key] = [model._features(a) for a in uniq_cells]  # None: a disconnected cell
    feats = cache[key]
    ok = [k for k, f in enumerate(feats) if f is not None]
    xkey = (*key, tuple(model.names))
    if xkey not in cache:
        cache[xkey] = _dense([feats[k] for k in ok], model.names)
    out = np.full(len(uniq), float(model.disconnected_ms))
    out[ok] = cache[xkey] @ np.asarray(model.coef, dtype=float)
    return uniq, out


def fit_on(table, measured, seed: int, fold=None, level: str = "auto", pruning: str = "auto") -> FittedLatency:
    """Fit on the networks ``measured`` (codes of representatives; their table latency is the measurement)
    and learn the margin from them alone: each is predicted by a model fitted without it (``FOLDS``-fold,
    ``fold`` per network, default a permutation seeded by ``seed`` and N, same level and pruning)."""
    measured = np.sort(np.asarray(measured, dtype=np.int64))
    n = len(measured)
    archs, y = cells(measured), table.latency[measured]
    model = fit_wholenet(archs, y, level=level, pruning=pruning, seed=seed)
    if fold is None:
        fold = np.random.default_rng([seed, n]).permutation(n) % FOLDS
    held_out = np.empty(n)
    for k in range(FOLDS):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        m = fit_wholenet([archs[i] for i in train], y[train], level=model.level, pruning=model.pruning, seed=seed)
        held_out[test] = m.predict_many([archs[i] for i in test])
    ratios = np.sort(y / np.maximum(held_out, 1e-12))
    uniq, pred = _predict_reps(table, model)
    by_rep = np.full(enc.N_ARCHS, np.inf)
    by_rep[uniq] = pred
    predicted = np.where(table.valid, by_rep[table.rep], np.inf)
    return FittedLatency(predicted, ratios, measured, f"{model.level}/{model.pruning}", held_out, y)


def fit_latency(table, fit_n: int, seed: int) -> FittedLatency:
    """Measure ``fit_n`` random distinct connected networks of ``table`` (drawn with ``seed``), fit on them."""
    reps = np.unique(table.rep[table.valid & table.connected])
    reps = reps[table.valid[reps] & table.connected[reps]]
    if not FOLDS * 2 <= fit_n <= len(reps):
        raise InputError(f"--fit-n must be between {FOLDS * 2} and {len(reps)} (distinct measured networks), "
                         f"got {fit_n}")
    rng = np.random.default_rng(1_000_003 + seed)
    measured = np.sort(rng.choice(reps, size=fit_n, replace=False))
    return fit_on(table, measured, seed, fold=rng.permutation(fit_n) % FOLDS)


def refit(table, fit: FittedLatency, new, seed: int) -> FittedLatency:
    """``fit`` refitted with the networks ``new`` (representatives' codes) measured too: same level and pruning
    (chosen on the first fit; re-choosing them on every measurement would cost a cross-validation each time),
    the margin recomputed from all measured networks, still nothing else."""
    level, pruning = fit.model.split("/")
    return fit_on(table, np.union1d(fit.measured, np.asarray(new, dtype=np.int64)), seed, level=level,
                  pruning=pruning)


def best_gain(acc, p, open_, floor: float) -> int | None:
    """The open candidate of largest expected gain P(feasible) x (accuracy - ``floor``); None: none gains."""
    gain = np.where(open_, p * (acc - floor), -np.inf)
    return int(np.argmax(gain)) if len(gain) and gain.max() > 0 else None


@dataclass
class Verified:
    code: int | None  # the pick (None: nothing to pick)
    measurements: int  # extra measurements the check made
    verified: bool  # the pick's own measurement meets the target


def verify_pick(codes, accuracy, p_feasible, measure, target_ms: float, k: int, coverage: float,
                same_as=None, known=None) -> Verified:
    """Measure at most ``k`` of the queried ``codes`` and pick the most accurate that measures <= target.

    ``accuracy`` and ``p_feasible`` are per code (what the search knows); ``measure(code)`` is the device.
    Each measurement goes to the candidate of largest P(feasible) x (accuracy - best verified accuracy);
    before any verified pick, the baseline is the most accurate candidate with P(feasible) >= ``coverage``
    (the pick the margin alone would make, and the fallback); when no candidate beats it, or one check is
    left, the fallback itself is measured. ``same_as``: per code, the network whose measurement it shares
    (``Table.rep``); one measurement settles every candidate sharing it. ``known``: {same_as code: ms}
    measured earlier (during the search); they settle their candidates without using the k checks."""
    codes = np.asarray(codes)
    same_as = codes if same_as is None else np.asarray(same_as)
    acc, p = np.asarray(accuracy, dtype=float), np.asarray(p_feasible, dtype=float)
    safe = p >= coverage
    open_ = p > 0
    best, used = None, 0

    def settle(i, ms):
        nonlocal best
        settled = same_as == same_as[i]
        open_[settled] = False
        if ms <= target_ms:
            j = int(np.flatnonzero(settled)[np.argmax(acc[settled])])
            if best is None or acc[j] > acc[best]:
                best = j
        else:
            safe[settled] = False  # measured over the target: never the fallback

    for rep, ms in (known or {}).items():
        hit = np.flatnonzero(same_as == rep)
        if len(hit):
            settle(int(hit[0]), ms)
    base = float(acc[safe].max()) if safe.any() else -1.0  # accuracies are >= 0 (%)
    while used < k and open_.any():
        i = best_gain(acc, p, open_, acc[best] if best is not None else base)
        fallback = open_ & safe
        if best is None and fallback.any() and (used == k - 1 or i is None):
            i = int(np.argmax(np.where(fallback, acc, -np.inf)))  # check the fallback itself
        elif i is None:
            break
        used += 1
        settle(i, measure(int(codes[i])))
    if best is not None:
        return Verified(int(codes[best]), used, True)
    if not safe.any():
        return Verified(None, used, False)
    return Verified(int(codes[np.flatnonzero(safe)[np.argmax(acc[safe])]]), used, False)
