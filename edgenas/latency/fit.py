"""Learn a device's latency from whole networks measured on it.

Many users can time whole models on their device (TFLite ``benchmark_model``, a board over SSH) long
before they can profile hundreds of single ops. This module fits a latency model from N such
measurements. It models what the runtime really executes, in order of increasing capacity:

``additive``
    One latency per (edge, op) of the cell for **live** edges only (an edge whose compute cannot
    reach the cell output, or that the cell input cannot reach, is not run: see
    ``edgenas.spaces.nb201_arch``), plus a constant for the stem, reductions and head.
``fusion``
    ``additive`` plus what neighbours do to each other: one term per (op on the edge into a node,
    op on the edge out of it) at each of the 4 places two edges meet, and one per (node, number of
    live inputs summed there). Runtimes fuse a conv with the add or activation that follows, and skip
    or pool edges cost differently depending on what they feed.
``residual``
    ``fusion`` plus a gradient-boosted correction of the log-ratio left over (scikit-learn's
    ``HistGradientBoostingRegressor``), for interactions the features do not name.

Level ``auto`` (the default) is ``additive`` below ``RESIDUAL_FROM_N`` networks and ``residual`` from
there on: on the third-party data the learned correction only pays once a few hundred networks train it.

Coefficients are fitted by ridge least squares on *relative* error (each row divided by its
measured latency), since accuracy is judged as "within ±10%". Cells whose output is disconnected
from their input are not fitted; they are predicted as the median of such cells in the training data
(runtimes then run only stem and head, or constant-fold the network away), or 0 when none was seen.

For spaces other than NAS-Bench-201 (DARTS, ProxylessNAS genotypes) the features are the counts of the
network's op keys (``space.op_specs``), i.e. an additive per-(position, op) model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from edgenas.errors import InputError
from edgenas.spaces.nb201_arch import EDGES, NB201_OPS, Nb201Arch

LEVELS = ("additive", "fusion", "residual")
RESIDUAL_FROM_N = 200  # level "auto": additive below this many networks, residual from it (measured: see benchmarks)
PRUNINGS = ("path", "output")
_LIVE_OPS = NB201_OPS[1:]
# Places where an edge into node i meets an edge out of node i (i = 1, 2): (in-edge, out-edge) indices.
_MEETS = tuple((a, b) for a, (_, ia) in enumerate(EDGES) for b, (jb, _) in enumerate(EDGES) if ia == jb and ia != 3)


def nb201_feature_names(level: str = "fusion") -> list[str]:
    names = ["const"] + [f"op:{op}" for op in NB201_OPS]
    names += [f"e{j}{i}:{op}" for (j, i), op in product(EDGES, NB201_OPS)]
    if level == "fusion":
        names += [f"m{a}{b}:{p}>{q}" for (a, b), p, q in product(_MEETS, NB201_OPS, NB201_OPS)]
        names += [f"n{i}:in{k}" for i in (1, 2, 3) for k in range(2, i + 1)]
    return names


def nb201_features(arch: Nb201Arch, level: str = "fusion", pruning: str = "path") -> dict[str, float]:
    """Sparse features of one cell (the same cell is repeated 15 times, so these are per-cell terms).

    ``pruning`` says which edges the runtime executes (``Nb201Arch.executed_edges``)."""
    live = arch.executed_edges(pruning)
    f = {"const": 1.0}
    for (j, i), op, on in zip(EDGES, arch.ops, live):
        if on:
            f[f"e{j}{i}:{op}"] = 1.0
            f[f"op:{op}"] = f.get(f"op:{op}", 0.0) + 1.0
    if level == "fusion":
        for a, b in _MEETS:
            if live[a] and live[b]:
                f[f"m{a}{b}:{arch.ops[a]}>{arch.ops[b]}"] = 1.0
        for i in (1, 2, 3):
            k = sum(on for (_, t), on in zip(EDGES, live) if t == i)
            if k >= 2:
                f[f"n{i}:in{k}"] = 1.0
    return f


def _dense(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    index = {n: k for k, n in enumerate(names)}
    x = np.zeros((len(rows), len(names)))
    for r, feats in enumerate(rows):
        for n, v in feats.items():
            k = index.get(n)
            if k is not None:  # a feature never seen in training contributes nothing
                x[r, k] += v
    return x


@dataclass
class WholeNetModel:
    """A fitted whole-network latency model; JSON-serialisable via ``to_dict`` / ``from_dict``."""

    space: str
    level: str
    names: list[str]
    coef: list[float]
    disconnected_ms: float = 0.0
    residual: object | None = None  # sklearn estimator, or None
    pruning: str = "path"
    meta: dict = field(default_factory=dict)

    # -- features --------------------------------------------------------------------------------
    def _features(self, arch) -> dict[str, float] | None:
        if isinstance(arch, Nb201Arch):
            return nb201_features(arch, self.level, self.pruning) if arch.connected else None
        return dict(arch)  # already a feature dict (other spaces: op-key counts)

    def _codes(self, archs) -> np.ndarray:
        """What the residual model sees: per edge, 1 + the executed op's index in NB201_OPS, or 0 (not executed)."""
        return _edge_codes(archs, self.pruning)

    def predict_many(self, archs) -> np.ndarray:
        archs = list(archs)
        feats = [self._features(a) for a in archs]
        out = np.full(len(feats), float(self.disconnected_ms))
        ok = [k for k, f in enumerate(feats) if f is not None]
        if ok and self.space != "nb201":
            known = set(self.names)
            unknown = sorted({n for k in ok for n, v in feats[k].items() if v and n not in known})
            if unknown:
                raise InputError(f"{len(unknown)} op key(s) the {self.space} whole-network model was not fitted on "
                                 f"(another space config?), e.g. {unknown[0]}; fit on networks of this config")
        if ok:
            x = _dense([feats[k] for k in ok], self.names)
            y = x @ np.asarray(self.coef)
            if self.residual is not None:
                y = y * np.exp(self.residual.predict(self._codes([archs[k] for k in ok])))
            out[ok] = y
        return out

    def predict(self, arch) -> float:
        return float(self.predict_many([arch])[0])

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": "edgenas.wholenet-model", "version": 1, "space": self.space, "level": self.level,
             "pruning": self.pruning, "names": self.names, "coef": [float(c) for c in self.coef],
             "disconnected_ms": float(self.disconnected_ms), "meta": self.meta}
        if self.residual is not None:
            import base64
            import pickle

            d["residual_pickle_b64"] = base64.b64encode(pickle.dumps(self.residual)).decode()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "WholeNetModel":
        if d.get("format") != "edgenas.wholenet-model":
            raise InputError("not an edgenas whole-network latency model")
        residual = None
        if d.get("residual_pickle_b64"):
            import base64
            import pickle

            residual = pickle.loads(base64.b64decode(d["residual_pickle_b64"]))  # noqa: S301 (our own file)
        return cls(space=d["space"], level=d["level"], names=list(d["names"]), coef=list(d["coef"]),
                   disconnected_ms=float(d.get("disconnected_ms", 0.0)), residual=residual,
                   pruning=d.get("pruning", "path"),
                   meta=dict(d.get("meta") or {}))


def fit_wholenet(archs, latency_ms, space: str = "nb201", level: str = "auto", ridge: float | None = None,
                 prior: dict[str, float] | None = None, seed: int = 0, pruning: str = "auto") -> WholeNetModel:
    """Fit a model to measured whole networks.

    ``archs``: Nb201Arch objects (space ``nb201``) or feature dicts (other spaces). ``prior``: per-feature
    latencies (e.g. from an op table) the ridge term shrinks toward instead of toward 0. ``pruning``:
    which dead edges the device's runtime removes (``path``, ``output``), or ``auto`` to pick the one
    that cross-validates better on these measurements (space ``nb201`` only).
    """
    archs = list(archs)
    if level == "auto":
        level = "residual" if space == "nb201" and len(archs) >= RESIDUAL_FROM_N else "additive"
    if pruning == "auto":
        if space != "nb201":
            pruning = "path"
        else:
            # Pick the pruning on the linear part (cheap), then fit the requested level once.
            lin = "fusion" if level == "fusion" else "additive"
            fits = [_fit_one(archs, latency_ms, space, lin, ridge, prior, seed, p) for p in PRUNINGS]
            pruning = min(fits, key=lambda m: m.meta["cv_key"]).pruning
            if level == lin:
                return next(m for m in fits if m.pruning == pruning)
    if pruning not in PRUNINGS:
        raise InputError(f"unknown pruning {pruning!r} (auto, {', '.join(PRUNINGS)})")
    return _fit_one(archs, latency_ms, space, level, ridge, prior, seed, pruning)


def _fit_one(archs, latency_ms, space, level, ridge, prior, seed, pruning) -> WholeNetModel:
    if level not in LEVELS:
        raise InputError(f"unknown fit level {level!r} (levels: auto, {', '.join(LEVELS)})")
    archs = list(archs)
    y_all = np.asarray(latency_ms, dtype=float)
    if len(archs) != len(y_all):
        raise InputError("archs and latencies differ in length")
    if np.any(~np.isfinite(y_all)) or np.any(y_all < 0):
        raise InputError("measured latencies must be finite and >= 0")
    proto = WholeNetModel(space=space, level=level, names=[], coef=[], pruning=pruning)
    feats = [proto._features(a) for a in archs]
    conn = np.array([f is not None for f in feats])
    disc = y_all[~conn]
    if conn.sum() < 2:
        raise InputError(f"need at least 2 measured networks with a connected cell to fit, got {int(conn.sum())}")
    rows = [f for f in feats if f is not None]
    y = y_all[conn]
    if np.any(y <= 0):
        raise InputError("a connected network measured at 0 ms: check the measurement file")
    if space == "nb201":
        names = nb201_feature_names(level)
    else:
        names = sorted({n for r in rows for n in r})
    x = _dense(rows, names)
    seen = x.any(axis=0)  # drop features no training row has: they stay 0 (keeps the solve well posed)
    seen[0] = True
    names = [n for n, s in zip(names, seen) if s]
    x = x[:, seen]
    p = np.array([(prior or {}).get(n, 0.0) for n in names])
    group = np.array([_group(n) for n in names])
    if ridge is not None:
        lams, cv_key = {"edge": ridge, "pair": ridge}, (0.0, 0.0)
    else:
        lams, cv_key = _choose_ridge(x, y, p, group, level, seed)
    coef = _solve(x, y, p, group, lams)
    residual = None
    if level == "residual" and space == "nb201" and len(y) >= 30:
        from sklearn.ensemble import HistGradientBoostingRegressor

        base = x @ coef
        target = np.log(y / np.maximum(base, 1e-9))
        conn_archs = [a for a, f in zip(archs, feats) if f is not None]
        codes = _edge_codes(conn_archs, pruning)
        residual = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, max_leaf_nodes=15,
                                                 min_samples_leaf=max(5, len(y) // 100), l2_regularization=1.0,
                                                 categorical_features=list(range(codes.shape[1])),
                                                 random_state=seed).fit(codes, target)
    model = WholeNetModel(space=space, level=level, names=names, coef=coef.tolist(),
                          disconnected_ms=float(np.median(disc)) if len(disc) else 0.0, residual=residual,
                          pruning=pruning)
    pred = model.predict_many(archs)
    model.meta.update({"n": len(archs), "n_disconnected": int((~conn).sum()), "ridge": lams, "pruning": pruning,
                       "cv_key": list(cv_key), "cv_within_10pct": -cv_key[0],
                       "fit_within_10pct": float(within(pred[conn], y, 0.10)),
                       "fit_mape_pct": float(mape(pred[conn], y))})
    return model


def _edge_codes(archs, pruning: str) -> np.ndarray:
    out = np.zeros((len(archs), len(EDGES)))
    for r, a in enumerate(archs):
        run = a.executed_edges(pruning)
        out[r] = [NB201_OPS.index(op) + 1 if on else 0 for op, on in zip(a.ops, run)]
    return out


def _group(name: str) -> str:
    if name == "const" or name.startswith("op:"):
        return "base"
    return "edge" if name.startswith("e") else "pair"


_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _solve(x, y, p, group, lams) -> np.ndarray:
    """Ridge least squares on relative error; each group shrunk toward the prior with its own strength.

    Rows are divided by the measured latency, coefficients by the median latency, so the penalties are
    unit-free: ``lam`` = 1 weighs a coefficient like one training network.
    """
    scale = float(np.median(y))
    pen = np.array([lams.get(g, 1e-6 if g == "base" else 0.0) for g in group])
    a = np.vstack([x / y[:, None], np.diag(np.sqrt(pen)) / scale])
    b = np.concatenate([np.ones(len(y)), np.sqrt(pen) * p / scale])
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coef


def _choose_ridge(x, y, p, group, level, seed, folds: int = 5) -> dict:
    """Penalties picked by k-fold cross-validation on the training networks (share within ±10%, then MAPE)."""
    grids = [{"edge": le} for le in _GRID] if level == "additive" else \
        [{"edge": le, "pair": lp} for le in _GRID for lp in _GRID]
    if np.any(p):  # a prior (op table): also choose how strongly the op-level terms are pulled toward it
        grids = [{**g, "base": lb} for g in grids for lb in (1e-6, 1e-1, 10.0)]
    n = len(y)
    if n < 2 * folds:  # too few to cross-validate: a middle penalty, and a prior only weakly trusted
        return {**grids[len(grids) // 2], "base": 1e-6}, (0.0, 0.0)
    fold = np.random.default_rng(seed).permutation(n) % folds
    best, best_key = grids[0], None
    for lams in grids:
        pred = np.empty(n)
        for k in range(folds):
            tr = fold != k
            pred[~tr] = x[~tr] @ _solve(x[tr], y[tr], p, group, lams)
        rel = np.abs(pred / y - 1)
        key = (-np.mean(rel <= 0.10), np.mean(rel))
        if best_key is None or key < best_key:
            best, best_key = lams, key
    return best, best_key


def nb201_prior(space, op_ms) -> dict[str, float]:
    """Per-feature prior latencies for an ``nb201`` space from an op table: ``op_ms(specs) -> {key: ms}``.

    ``const`` = stem + reduction blocks + head; ``op:<op>`` = that op on one edge of every cell. Edge
    terms are deviations from their op's mean, so their prior stays 0."""
    fixed = space.fixed_specs()
    prior = {"const": sum(op_ms(fixed)[s.key] for s in fixed)}
    for op in NB201_OPS:
        specs = [space._edge_spec(op, c, s) for c, s in space._stages() for _ in range(space.config.cells_per_stage)]
        ms = op_ms(specs)
        prior[f"op:{op}"] = sum(ms[s.key] for s in specs)
    return prior


# -- scores ---------------------------------------------------------------------------------------------
def within(pred, true, tol: float) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(pred - true) <= tol * np.abs(true))) if len(true) else math.nan


def mape(pred, true) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(pred - true) / np.abs(true)) * 100) if len(true) else math.nan


def scores(pred, true) -> dict:
    """±5%, ±10%, MAPE, Spearman, Kendall τ of predictions against measurements."""
    from scipy.stats import kendalltau, spearmanr

    pred, true = np.asarray(pred, float), np.asarray(true, float)
    out = {"n": int(len(true)), "within_5pct": within(pred, true, 0.05), "within_10pct": within(pred, true, 0.10),
           "mape_pct": mape(pred, true)}
    if len(true) >= 3:
        out["spearman"] = float(spearmanr(pred, true).statistic)
        out["kendall_tau"] = float(kendalltau(pred, true).statistic)
    return out
