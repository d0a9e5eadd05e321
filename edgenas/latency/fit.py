"""Learn a device's latency from whole networks measured on it.

Many users can time whole models on their device (TFLite ``benchmark_model``, a board over SSH) long
before they can profile hundreds of single ops. This module fits a latency model from N such
measurements. It models what the runtime really executes, in order of increasing capacity:

``additive``
    One latency per (edge, op) of the cell for **live** edges only (an edge whose compute cannot
    reach the cell output, or that the cell input cannot reach, is not run: see
    ``edgenas.spaces.nb201_arch``), plus a constant for the stem, reductions and head, plus one term per
    all-``none`` node that still feeds the output (``zero<n>``: some runtimes fold those zeros for free,
    Intel's NCS2 pays a quarter of the network for node 2; the measurements decide, per device).
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

The cell features above are the space's (``edgenas.spaces.base.WholeNetFeatures``; NAS-Bench-201's live
in ``edgenas.spaces.nb201_arch``). For spaces without such a model (DARTS, ProxylessNAS genotypes) the
features are the counts of the network's op keys (``space.op_specs``), i.e. an additive per-(position, op)
model with no learned correction. Torch-free: nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edgenas.errors import InputError
from edgenas.spaces.base import wholenet_features
from edgenas.spaces.nb201_arch import nb201_feature_names, nb201_features, nb201_prior  # noqa: F401 (re-exported)

LEVELS = ("additive", "fusion", "residual")
RESIDUAL_FROM_N = 200  # level "auto": additive below this many networks, residual from it (measured: see benchmarks)
PRUNINGS = ("path", "output")  # every pruning any space's cell features know (a model file is checked against it)


def _dense(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    index = {n: k for k, n in enumerate(names)}
    x = np.zeros((len(rows), len(names)))
    for r, feats in enumerate(rows):
        for n, v in feats.items():
            k = index.get(n)
            if k is not None:  # a feature never seen in training contributes nothing
                x[r, k] += v
    return x


# The learned correction is never stored as an object (a pickle in a model file would run code when
# loaded): the model file holds its training data, hyper-parameters and seed, and the correction is
# refitted deterministically on load (cached per process, keyed by that data).
RESIDUAL_ESTIMATOR = "sklearn.HistGradientBoostingRegressor"
_RESIDUAL_CACHE: dict[str, object] = {}
_MAX_TRAIN = 1_000_000
_MAX_FEATURES = 100_000


def _residual_params(n: int, seed: int) -> dict:
    return {"max_iter": 150, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": max(5, n // 100),
            "l2_regularization": 1.0, "random_state": int(seed)}


@dataclass
class WholeNetModel:
    """A fitted whole-network latency model; JSON-serialisable via ``to_dict`` / ``from_dict`` (data only)."""

    space: str
    level: str
    names: list[str]
    coef: list[float]
    disconnected_ms: float = 0.0
    # what the learned correction is fitted from, or None: {"estimator", "params", "train_arch", "train_latency_ms"}
    residual_data: dict | None = None
    pruning: str = "path"
    meta: dict = field(default_factory=dict)
    _fitted: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def residual(self):
        """The fitted correction (scikit-learn), refitted from ``residual_data`` once per process."""
        if self.residual_data is None:
            return None
        key = _residual_key(self)  # the data it is fitted from: a changed model refits
        if self._fitted is None or self._fitted[0] != key:
            est = _RESIDUAL_CACHE.get(key)
            if est is None:
                est = _RESIDUAL_CACHE[key] = _fit_residual(self)
            self._fitted = (key, est)
        return self._fitted[1]

    # -- features --------------------------------------------------------------------------------
    @cached_property
    def cell(self):
        """The space's ``WholeNetFeatures``, or None (the model is over op-key counts)."""
        return wholenet_features(self.space)

    def _features(self, arch) -> dict[str, float] | None:
        if isinstance(arch, Mapping):
            return dict(arch)  # already a feature dict (spaces without cell features: op-key counts)
        cell = self.cell
        if cell is None or not isinstance(arch, cell.arch_cls):
            raise InputError(f"a {self.space} whole-network model cannot read a {type(arch).__name__}")
        return cell.features(arch, self.level, self.pruning) if cell.connected(arch) else None

    def _codes(self, archs) -> np.ndarray:
        """What the residual model sees: the cell's categorical codes (``WholeNetFeatures.codes``)."""
        return self.cell.codes(archs, self.pruning)

    def linear_many(self, archs) -> np.ndarray:
        """The linear part only (no learned correction); disconnected cells get ``disconnected_ms``."""
        return self._predict(list(archs), residual=False)

    def predict_many(self, archs) -> np.ndarray:
        return self._predict(list(archs), residual=True)

    def _predict(self, archs, residual: bool) -> np.ndarray:
        feats = [self._features(a) for a in archs]
        out = np.full(len(feats), float(self.disconnected_ms))
        ok = [k for k, f in enumerate(feats) if f is not None]
        if ok and self.cell is None:
            known = set(self.names)
            unknown = sorted({n for k in ok for n, v in feats[k].items() if v and n not in known})
            if unknown:
                raise InputError(f"{len(unknown)} op key(s) the {self.space} whole-network model was not fitted on "
                                 f"(another space config?), e.g. {unknown[0]}; fit on networks of this config")
        if ok:
            x = _dense([feats[k] for k in ok], self.names)
            y = x @ np.asarray(self.coef, dtype=float)
            if residual and self.residual_data is not None:
                with _one_thread():
                    y = y * np.exp(self.residual.predict(self._codes([archs[k] for k in ok])))
            out[ok] = y
        return out

    def predict(self, arch) -> float:
        return float(self.predict_many([arch])[0])

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": "edgenas.wholenet-model", "version": 2, "space": self.space, "level": self.level,
             "pruning": self.pruning, "names": self.names, "coef": [float(c) for c in self.coef],
             "disconnected_ms": float(self.disconnected_ms), "meta": self.meta}
        if self.residual_data is not None:
            d["residual"] = self.residual_data
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "WholeNetModel":
        """Validate and load a model dict; raises InputError with one line saying what is wrong."""
        if not isinstance(d, dict) or d.get("format") != "edgenas.wholenet-model":
            raise InputError("not an edgenas whole-network latency model")
        code = sorted(k for k in d if "pickle" in k.lower() or k.lower().endswith("_b64"))
        if code:
            raise InputError(f"holds a serialized object ({code[0]}); edgenas never loads code from a model file: "
                             "refit it with 'edgenas tables fit'")
        space, level, pruning = d.get("space"), d.get("level"), d.get("pruning", "path")
        if not isinstance(space, str) or not space:
            raise InputError("'space' must be a space name")
        if level not in LEVELS:
            raise InputError(f"'level' must be one of {', '.join(LEVELS)}, not {level!r}")
        if pruning not in PRUNINGS:
            raise InputError(f"'pruning' must be one of {', '.join(PRUNINGS)}, not {pruning!r}")
        names, coef = d.get("names"), d.get("coef")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names \
                or len(names) > _MAX_FEATURES:
            raise InputError("'names' must be a non-empty list of feature names")
        if not isinstance(coef, list) or len(coef) != len(names) or not all(_is_finite(c) for c in coef):
            raise InputError(f"'coef' must be {len(names)} finite numbers, one per name")
        disc = d.get("disconnected_ms", 0.0)
        if not _is_finite(disc) or disc < 0:
            raise InputError("'disconnected_ms' must be a finite number >= 0")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise InputError("'meta' must be an object")
        residual = d.get("residual")
        if residual is not None:
            residual = _check_residual(residual, space)
        return cls(space=space, level=level, names=list(names), coef=[float(c) for c in coef],
                   disconnected_ms=float(disc), residual_data=residual, pruning=pruning, meta=dict(meta))


def _is_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_residual(r, space: str) -> dict:
    cell = wholenet_features(space)
    if cell is None or not cell.residual:
        raise InputError(f"a learned correction is not defined for {space} models (their features are op-key counts)")
    if not isinstance(r, dict) or r.get("estimator") != RESIDUAL_ESTIMATOR:
        raise InputError(f"'residual.estimator' must be {RESIDUAL_ESTIMATOR!r}")
    archs, lat, params = r.get("train_arch"), r.get("train_latency_ms"), r.get("params")
    if not isinstance(archs, list) or not isinstance(lat, list) or len(archs) != len(lat) or not 30 <= len(lat) \
            <= _MAX_TRAIN:
        raise InputError("'residual.train_arch' and 'residual.train_latency_ms' must be lists of the same length "
                         f"(30..{_MAX_TRAIN})")
    if not all(_is_finite(v) and v > 0 for v in lat):
        raise InputError("'residual.train_latency_ms' must hold finite latencies > 0")
    from edgenas.errors import EdgeNASError

    for k, a in enumerate(archs):
        try:
            if not isinstance(a, str) or not cell.connected(cell.parse(a)):
                raise InputError("not a connected cell")
        except EdgeNASError as e:
            raise InputError(f"'residual.train_arch[{k}]' is not a connected {space} cell ({e})") from None
    expected = _residual_params(len(lat), 0)
    if not isinstance(params, dict) or set(params) != set(expected) or not all(_is_finite(v) for v in params.values()):
        raise InputError(f"'residual.params' must be exactly {sorted(expected)} (numbers)")
    return {"estimator": RESIDUAL_ESTIMATOR, "params": dict(params), "train_arch": list(archs),
            "train_latency_ms": [float(v) for v in lat]}


def _one_thread():
    """Run the learned correction on one OpenMP thread: on a few hundred networks threads gain nothing, and
    on a loaded machine their spinning made a fit ~15x slower (measured: 11 s vs 157 s for 500 networks)."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1, user_api="openmp")


def _residual_key(model: WholeNetModel) -> str:
    import hashlib
    import json

    blob = json.dumps([model.level, model.pruning, model.names, [float(c) for c in model.coef], model.residual_data],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fit_residual(model: WholeNetModel):
    """Fit the gradient-boosted correction of log(measured / linear part) from ``model.residual_data``.

    Deterministic: the same data, coefficients, hyper-parameters and seed give the same estimator, so a
    model refitted on load predicts exactly what it predicted when it was saved."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    r = model.residual_data
    archs = [model.cell.parse(a) for a in r["train_arch"]]
    y = np.asarray(r["train_latency_ms"], dtype=float)
    base = model.linear_many(archs)
    target = np.log(y / np.maximum(base, 1e-9))
    codes = model._codes(archs)
    p = dict(r["params"])
    params = {k: (int(v) if k in ("max_iter", "max_leaf_nodes", "min_samples_leaf", "random_state") else float(v))
              for k, v in p.items()}
    with _one_thread():
        return HistGradientBoostingRegressor(categorical_features=list(range(codes.shape[1])),
                                             **params).fit(codes, target)


def fit_wholenet(archs, latency_ms, space: str | None = None, level: str = "auto", ridge: float | None = None,
                 prior: dict[str, float] | None = None, seed: int = 0, pruning: str = "auto") -> WholeNetModel:
    """Fit a model to measured whole networks.

    ``archs``: cell arch objects of a space with cell features (``Nb201Arch``; ``space`` None: the space
    whose cells they are) or op-key count dicts (``net_features``; give ``space``). ``prior``: per-feature
    latencies (e.g. from an op table) the ridge term shrinks toward instead of toward 0. ``pruning``:
    which dead edges the device's runtime removes (``path``, ``output``), or ``auto`` to pick the one
    that cross-validates better on these measurements (spaces whose cell features know several).
    """
    archs = list(archs)
    if space is None:
        space = _space_of(archs)
    cell = wholenet_features(space)
    if level == "auto":
        level = "residual" if cell is not None and cell.residual and len(archs) >= RESIDUAL_FROM_N else "additive"
    if pruning == "auto":
        if cell is None or len(cell.prunings) == 1:
            pruning = cell.prunings[0] if cell is not None else "path"
        else:
            # Pick the pruning on the linear part (cheap), then fit the requested level once.
            # Chosen on the edges alone: a pruning's refinement terms (cell.refinements) must not let it
            # mimic another (measured: path + zero terms then beat output on a few HW-NAS-Bench-360 splits
            # in CV, and lost 0.5-0.8 points on held-out networks).
            lin = "fusion" if level == "fusion" else "additive"
            plain = bool(cell.refinements)
            fits = [_fit_one(archs, latency_ms, space, lin, ridge, prior, seed, p, plain) for p in cell.prunings]
            pruning = min(fits, key=lambda m: m.meta["cv_key"]).pruning
            if level == lin and not plain:
                return next(m for m in fits if m.pruning == pruning)
    if pruning not in PRUNINGS:
        raise InputError(f"unknown pruning {pruning!r} (auto, {', '.join(PRUNINGS)})")
    return _fit_one(archs, latency_ms, space, level, ridge, prior, seed, pruning)


def _space_of(archs) -> str:
    cell = wholenet_features(arch=archs[0]) if archs else None
    if cell is not None and all(isinstance(a, cell.arch_cls) for a in archs):
        return cell.space
    raise InputError("fit_wholenet: give space= (networks given as op-key counts, or cells of no one space)")


def _fit_one(archs, latency_ms, space, level, ridge, prior, seed, pruning, plain=False) -> WholeNetModel:
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
    if plain:  # without the refinement terms (only to choose the pruning)
        rows = [{k: v for k, v in f.items() if not k.startswith(proto.cell.refinements)} for f in rows]
    y = y_all[conn]
    if np.any(y <= 0):
        raise InputError("a connected network measured at 0 ms: check the measurement file")
    cell = proto.cell
    if cell is not None:
        names = cell.feature_names(level)
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
    model = WholeNetModel(space=space, level=level, names=names, coef=[float(c) for c in coef],
                          disconnected_ms=float(np.median(disc)) if len(disc) else 0.0, pruning=pruning)
    if level == "residual" and cell is not None and cell.residual and len(y) >= 30:
        conn_archs = [a for a, f in zip(archs, feats) if f is not None]
        model.residual_data = {"estimator": RESIDUAL_ESTIMATOR, "params": _residual_params(len(y), seed),
                               "train_arch": [cell.to_text(a) for a in conn_archs],
                               "train_latency_ms": [float(v) for v in y]}
    pred = model.predict_many(archs)
    model.meta.update({"n": len(archs), "n_disconnected": int((~conn).sum()), "ridge": lams, "pruning": pruning,
                       "cv_key": list(cv_key), "cv_within_10pct": -cv_key[0],
                       "fit_within_10pct": float(within(pred[conn], y, 0.10)),
                       "fit_mape_pct": float(mape(pred[conn], y))})
    return model


def _group(name: str) -> str:
    """Which ridge penalty a feature gets: ``base`` (constant, per-op), ``edge`` (per-edge deviations and
    per-node structure such as ``zero<n>``, shrunk toward 0 with one strength) or ``pair`` (fusion terms)."""
    if name == "const" or name.startswith("op:"):
        return "base"
    return "edge" if name.startswith(("e", "zero")) else "pair"


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
