"""Calibrate the predictor on a few measured networks, and verify it on held-out ones.

``calibrate`` measures N random whole networks (a seed stream of its own) and fits the
correction; ``verify`` measures N *other* random networks and scores predicted against
measured latency. Networks used for calibration are never scored: their ids are stored with
the calibration and excluded when sampling the verification set.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgenas.latency.predictor import (CalibrationStore, LatencyPredictor, is_this_machine, calibration_key,
                                      fit_calibration, this_cpu)
from edgenas.latency.store import TableStore
from edgenas.profiling.base import Backend
from edgenas.errors import InputError
from edgenas.profiling.networks import arch_id, measure_networks, network_artifact
from edgenas.profiling.protocol import ProtocolSettings

CALIBRATION_SEED_OFFSET = 1_000_003
TRUTHS = ("protocol", "plain")


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (ties handled), O(n^2): fine for the tens of networks verify scores."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 2:
        return float("nan")
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(n, 1)
    s = float((dx[iu] * dy[iu]).sum())
    tx, ty = float((dx[iu] != 0).sum()), float((dy[iu] != 0).sum())
    return s / math.sqrt(tx * ty) if tx and ty else float("nan")


def score(predicted, measured) -> dict:
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = (p - m) / m
    return {"n": int(len(m)), "within_5pct": float((np.abs(rel) <= 0.05).mean()),
            "within_10pct": float((np.abs(rel) <= 0.10).mean()), "mape": float(np.abs(rel).mean()),
            "rmse_ms": float(np.sqrt(((p - m) ** 2).mean())), "kendall_tau": kendall_tau(p, m),
            "bias": float(rel.mean()), "max_abs_rel_error": float(np.abs(rel).max())}


def sample_archs(space, n: int, seed: int, exclude: set[str] = frozenset()) -> list:
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    tries = 0
    while len(out) < n and tries < 100 * n:
        tries += 1
        arch = space.sample(rng)
        aid = arch_id(space, arch)
        if aid not in seen:
            seen.add(aid)
            out.append(arch)
    return out


def calibration_archs(space, n: int, seed: int) -> list:
    """The ``n`` networks ``calibrate`` measures: a seed stream of their own, apart from verify's."""
    return sample_archs(space, n, seed + CALIBRATION_SEED_OFFSET)


def held_out_archs(space, calibration_ids: set[str], n: int, seed: int) -> list:
    """The ``n`` networks ``verify`` scores: random, never one the calibration was fitted on."""
    return sample_archs(space, n, seed, calibration_ids)


def prepare(backend: Backend, space, predictor: LatencyPredictor, n: int = 50, seed: int = 0,
            calibration_n: int = 10, recalibrate: bool = False, on_progress: Callable | None = None) -> list[Path]:
    """Export every file a ``calibrate`` + ``verify`` with these arguments would time, timing nothing.

    Conversion (int8 above all: a quantizer pass per network) is CPU-heavy and insensitive to
    load, timing is the opposite; the artifact cache lets the two run apart: prepare on a busy
    host, then run the same ``verify`` on a quiet one and it only times. The networks are the
    ones ``calibrate`` (when it would run: ``recalibrate`` or none stored) and ``verify`` pick,
    plus the protocol's reference op. Returns the artifact paths (networks only), in that order.
    """
    from edgenas.profiling.runner import REFERENCE_OP, prepare_op

    if not backend.suffix:
        raise InputError(f"backend {backend.name!r} runs the PyTorch module itself: there is no file to prepare")
    batch = predictor.sel.batch
    fit_first = recalibrate or not predictor.calibration.calibrated
    cal = calibration_archs(space, calibration_n, seed) if fit_first else []
    exclude = {arch_id(space, a) for a in cal} if fit_first else set(predictor.calibration.arch_ids)
    archs = cal + held_out_archs(space, exclude, n, seed)
    prepare_op(backend, REFERENCE_OP, batch).close()
    out = []
    for i, a in enumerate(archs):
        if on_progress:
            on_progress("convert", i, len(archs))
        out.append(network_artifact(backend, space, a, batch))
    if on_progress:
        on_progress("converted", len(archs), len(archs))
    return out


def calibrate(backend: Backend, space, predictor: LatencyPredictor, store: TableStore, n: int = 10, seed: int = 0,
              settings: ProtocolSettings = ProtocolSettings(), on_progress: Callable | None = None,
              truth: str = "protocol", processes: int = 3):
    """Measure ``n`` random networks, fit the correction, store it beside the table.

    ``truth`` as in :func:`verify`: ``plain`` fits what the runtime's own benchmark tool shows (the
    exported file timed plainly, fastest of ``processes`` fresh processes; needs a quiet host),
    ``protocol`` fits edgenas's paired measurement (robust to a busy host; measured here to sit a
    few percent under the plain figure). The fit is stored in reference units either way.
    """
    _check_truth(backend, truth)
    archs = calibration_archs(space, n, seed)
    meas = measure_networks(backend, space, archs, predictor.sel.batch, settings, on_progress=on_progress,
                            source="calibrate")
    specs = [space.op_specs(a) for a in archs]
    feats = [predictor.features(sp, weighted=False) for sp in specs]
    y = [predictor.measured_ms(m.stats.ref_ratio, m.stats.median_ms) for m in meas]
    if truth == "plain":
        y = [t.ms for t in _plain_timings(backend, space, archs, predictor.sel.batch, processes, on_progress)]
    cal = fit_calibration(feats, y, [m.arch_id for m in meas], backend.runtime_version(), predictor.anchor_ms,
                          [predictor.type_sums(sp) for sp in specs], [predictor.key_sums(sp) for sp in specs])
    cal.truth = truth
    cal.cpu_model = this_cpu() if is_this_machine(predictor.sel.device) else ""
    key = calibration_key(space, predictor.sel, cal.cpu_model)
    path = CalibrationStore(store).put(predictor.sel.device, predictor.sel.backend, key, cal)
    predictor.calibration = cal
    return cal, path, [{"arch_id": m.arch_id, "sum_ms": f[0], "ops": f[1], "measured_ms": v}
                       for m, f, v in zip(meas, feats, y)]


def _check_truth(backend: Backend, truth: str) -> None:
    if truth not in TRUTHS:
        raise InputError(f"--truth must be one of {', '.join(TRUTHS)}, not {truth!r}")
    if truth == "plain" and not backend.suffix:
        raise InputError(f"--truth plain times an exported model file; backend {backend.name!r} runs the PyTorch "
                         f"module itself (use --truth protocol)")


def _plain_timings(backend: Backend, space, archs, batch: int, processes: int, on_progress=None) -> list:
    """Plain timings of each network's exported file, all files converted first and then timed in
    passes (``time_fresh_many``: a slow spell of the host hits one of a file's processes, not all)."""
    from edgenas.profiling.plain import time_fresh_many

    files = []
    for i, a in enumerate(archs):
        if on_progress:
            on_progress("convert", i, len(archs))
        files.append(network_artifact(backend, space, a, batch))
    progress = (lambda done, total: on_progress("plain timing", done, total)) if on_progress else None
    return time_fresh_many(files, backend.threads, processes, on_progress=progress)


@dataclass
class VerifyReport:
    metrics: dict
    raw_sum_metrics: dict
    calibration: dict
    networks: list
    plot: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def verify(backend: Backend, space, predictor: LatencyPredictor, n: int = 50, seed: int = 0,
           settings: ProtocolSettings = ProtocolSettings(), plot_path: Path | None = None,
           on_progress: Callable | None = None, title: str = "", truth: str = "protocol",
           processes: int = 3) -> VerifyReport:
    """Score the predictor on ``n`` held-out random networks.

    ``truth``: ``protocol`` scores against edgenas's own paired measurement on the predictor's
    scale (ratio to the reference x anchor: sees errors of shape, not of scale); ``plain`` times
    each exported file plainly with its runtime, the fastest of ``processes`` fresh processes
    (``profiling/plain.py``), as the runtime's own benchmark tool would, so an error of scale is
    an error too. Both are reported; ``truth`` picks the one scored.
    """
    _check_truth(backend, truth)
    archs = held_out_archs(space, set(predictor.calibration.arch_ids), n, seed)
    preds = [predictor.predict(space, a) for a in archs]  # table misses fail before any measuring
    meas = measure_networks(backend, space, archs, predictor.sel.batch, settings, on_progress=on_progress,
                            source="verify")
    protocol_ms = [predictor.measured_ms(m.stats.ref_ratio, m.stats.median_ms) for m in meas]
    plain = [None] * len(archs)
    if truth == "plain":
        plain = _plain_timings(backend, space, archs, predictor.sel.batch, processes, on_progress)
    measured = [t.ms for t in plain] if truth == "plain" else protocol_ms
    predicted = [p.predicted_ms for p in preds]
    nets = [{"arch_id": m.arch_id, "arch": space.arch_to_json(a), "predicted_ms": p.predicted_ms, "sum_ms": p.sum_ms,
             "measured_ms": y, "protocol_ms": pm, "measured_raw_median_ms": m.stats.median_ms,
             "measured_p90_ms": m.stats.p90_ms, "ref_ratio": m.stats.ref_ratio, "stable": m.stats.stable,
             **({"plain_ms": t.ms, "plain_per_process_ms": t.per_process_ms} if t else {})}
            for a, p, m, y, pm, t in zip(archs, preds, meas, measured, protocol_ms, plain)]
    metrics = score(predicted, measured)
    metrics["truth"] = truth
    metrics["scale"] = predictor.anchor.as_dict() if predictor.anchor else None
    if truth == "plain":
        metrics["truth_recipe"] = plain[0].recipe if plain else ""
        metrics["protocol_over_plain"] = float(np.median(np.asarray(protocol_ms) / np.asarray(measured)))
    raw = score([p.sum_ms for p in preds], measured)
    plot = None
    if plot_path:
        plot = str(scatter_plot(predicted, measured, plot_path, title or
                                f"{predictor.sel.describe()}\n{space.name} {getattr(space, 'preset', '')}: "
                                f"{100 * metrics['within_10pct']:.0f}% within ±10%, MAPE {100 * metrics['mape']:.1f}%"))
    return VerifyReport(metrics, raw, asdict(predictor.calibration), nets, plot)


def scatter_plot(predicted, measured, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, m = np.asarray(predicted), np.asarray(measured)
    lo, hi = 0.9 * min(p.min(), m.min()), 1.1 * max(p.max(), m.max())
    fig, ax = plt.subplots(figsize=(5.5, 5))
    xs = np.linspace(lo, hi, 50)
    ax.fill_between(xs, 0.9 * xs, 1.1 * xs, color="tab:green", alpha=0.15, label="±10% band")
    ax.plot(xs, xs, color="tab:green", lw=1)
    inside = np.abs((p - m) / m) <= 0.10
    size = 18 if len(m) <= 200 else 4  # thousands of measured networks (verify --measurements) stay readable
    ax.scatter(m[inside], p[inside], s=size, color="tab:blue", label="within ±10%")
    ax.scatter(m[~inside], p[~inside], s=size, color="tab:red", label="outside")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
