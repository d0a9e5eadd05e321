"""A small fitted latency model for the realistic benchmark mode (``--fit-n``).

Stand-in for ``edgenas tables fit`` of issue 14, which will replace it: the benchmark only uses
the ``LatencyModel`` interface (``fit(archs, ms)``, ``predict(archs)``).

``AdditiveLatencyModel``: latency = intercept + sum over *live* edges of a per-(edge, op) cost,
fitted by least squares (``numpy.linalg.lstsq``, a little ridge for the columns a small sample
leaves unseen). Dead edges (not on an input->output path of non-``none`` edges) are left out:
a converter prunes them, and the measured ~0 ms of disconnected cells shows it.

``cv_ratio_errors`` gives the K-fold cross-validated ratios true/predicted on the measured
networks; the benchmark's safety margin is a high quantile of them (see ``nb201.py``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgenas.spaces import nb201_arch as enc


class LatencyModel(Protocol):
    def fit(self, archs: np.ndarray, ms: np.ndarray) -> "LatencyModel": ...

    def predict(self, archs: np.ndarray) -> np.ndarray: ...


def _design(archs: np.ndarray) -> np.ndarray:
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, enc.N_EDGES)
    codes = archs @ (enc.N_OPS ** np.arange(enc.N_EDGES - 1, -1, -1))
    live = enc.all_live()[codes]
    x = np.zeros((len(archs), 1 + enc.N_EDGES * enc.N_OPS))
    x[:, 0] = 1.0
    rows = np.arange(len(archs))
    for e in range(enc.N_EDGES):
        x[rows, 1 + e * enc.N_OPS + archs[:, e]] = live[:, e]
    return x


class AdditiveLatencyModel:
    def __init__(self, ridge: float = 1e-3):
        self.ridge = ridge
        self.coef: np.ndarray | None = None

    def fit(self, archs, ms):
        x = _design(archs)
        y = np.asarray(ms, dtype=float)
        reg = np.sqrt(self.ridge) * np.eye(x.shape[1])
        reg[0, 0] = 0.0  # no shrinkage of the intercept
        self.coef = np.linalg.lstsq(np.vstack([x, reg]), np.concatenate([y, np.zeros(x.shape[1])]), rcond=None)[0]
        return self

    def predict(self, archs):
        return _design(archs) @ self.coef


def cv_ratio_errors(make_model, archs: np.ndarray, ms: np.ndarray, folds: int = 5,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """true / predicted on held-out folds, for every measured network (K-fold)."""
    rng = rng or np.random.default_rng(0)
    n = len(archs)
    order = rng.permutation(n)
    ratios = np.empty(n)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        pred = make_model().fit(archs[train], ms[train]).predict(archs[test])
        ratios[test] = ms[test] / np.maximum(pred, 1e-6)
    return ratios
