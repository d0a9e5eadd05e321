"""Scoring fitted whole-network models on measured networks: held-out scores, learning curves (the scatter plot is verify.scatter_plot)."""

from __future__ import annotations

import numpy as np

from edgenas.latency.fit import fit_wholenet, scores, within
from edgenas.latency.measurements import MeasurementSet, net_features


def split_connected(ms: MeasurementSet):
    feats = [net_features(n) for n in ms.nets]
    y = np.array([n.latency_ms for n in ms.nets])
    return feats, y


def learning_curve(ms: MeasurementSet, ns=(20, 50, 100, 200, 500), seeds: int = 3, level: str = "auto") -> list[dict]:
    """Fit on N random networks of ``ms``, score on all the others; mean and spread over ``seeds`` splits.

    Cells disconnected from their input (a constant, not a latency question) are left out of the scores."""
    feats, y = split_connected(ms)
    keep = [k for k, f in enumerate(feats) if getattr(f, "connected", True)]
    feats, y = [feats[k] for k in keep], y[keep]
    space = ms.space
    out = []
    for n in ns:
        if n >= len(y) - 1:
            break
        accs, a5, mp = [], [], []
        for seed in range(seeds):
            perm = np.random.default_rng(1000 + seed).permutation(len(y))
            tr, te = perm[:n], perm[n:]
            m = fit_wholenet([feats[i] for i in tr], y[tr], space=space, level=level, seed=seed)
            pred = m.predict_many([feats[i] for i in te])
            accs.append(within(pred, y[te], 0.10))
            a5.append(within(pred, y[te], 0.05))
            mp.append(float(np.mean(np.abs(pred / y[te] - 1)) * 100))
        out.append({"n": n, "within_10pct": float(np.mean(accs)), "within_10pct_min": float(np.min(accs)),
                    "within_10pct_max": float(np.max(accs)), "within_5pct": float(np.mean(a5)),
                    "mape_pct": float(np.mean(mp)), "seeds": seeds, "held_out": int(len(y) - n)})
    return out


def score_model(model, ms: MeasurementSet, exclude: set[str] = frozenset()) -> tuple[dict, np.ndarray, np.ndarray, list]:
    """Scores of ``model`` on the networks of ``ms`` whose genotype is not in ``exclude``."""
    nets = [n for n in ms.nets if n.genotype not in exclude]
    feats = [net_features(n) for n in nets]
    keep = [k for k, f in enumerate(feats) if getattr(f, "connected", True)]
    nets, feats = [nets[k] for k in keep], [feats[k] for k in keep]
    y = np.array([n.latency_ms for n in nets])
    pred = model.predict_many(feats)
    return scores(pred, y), pred, y, nets
