"""``edgenas predict``, ``edgenas calibrate`` and ``edgenas verify``: latency you can trust."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgenas.cli import common
from edgenas.cli._output import console, emit
from edgenas.cli.progress import progress_bar
from edgenas.devices import get_profile
from edgenas.latency.predictor import LatencyPredictor
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.spaces import create_space

DEVICE = typer.Option(..., "--device", "-d", help="Device whose table to use (see 'edgenas tables list').")
BACKEND = typer.Option(..., "--backend", "-b", help="Backend of the table (onnxruntime, tflite, torch-cpu, ...).")
BATCH = typer.Option(1, "--batch", min=1, max=65536, help="Batch size.")
THREADS = typer.Option(None, "--threads", min=1, max=1024, help="Threads (default: the device profile's).")
TABLES = typer.Option(None, "--tables-dir", help="Table root (default: ./latency_tables).")


def _progress_cb(bar, task):
    def cb(phase, done, total):
        bar.update(task, total=total, completed=done, detail=phase)

    return cb


def predict(
    genotype: str = typer.Argument(..., help="Genotype file, run directory, JSON or DARTS text."),
    device: str = DEVICE, backend: str = BACKEND, batch: int = BATCH, threads: Optional[int] = THREADS,
    precision: str = typer.Option("fp32", "--precision"), space: Optional[str] = common.SPACE,
    preset: Optional[str] = common.PRESET, channels: Optional[int] = common.CHANNELS,
    layers: Optional[int] = common.LAYERS, tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Predicted latency of a genotype on a device, with the per-op breakdown.

    Example: edgenas predict run/genotype.json --device x86-64-host --backend onnxruntime --batch 1
    """
    g, sp = common.resolve_genotype(genotype, space, preset, channels=channels, layers=layers)
    pred = LatencyPredictor.load(device, backend, sp, batch, threads, precision, TableStore(tables_dir))
    p = pred.predict(sp, g.arch)
    result = {"device": device, "backend": backend, "batch": batch, "threads": pred.sel.threads,
              "precision": precision, "space": sp.name, "predicted_ms": p.predicted_ms, "sum_ms": p.sum_ms,
              "ops_executed": p.ops_executed, "calibrated": p.calibrated,
              "calibration": {k: getattr(pred.calibration, k) for k in ("model", "a", "b", "c", "n_networks",
                                                                        "fit_mape")},
              "drift_corrected": pred.uses_reference, "breakdown": p.breakdown}

    def render(r):
        tag = "calibrated" if r["calibrated"] else "UNCALIBRATED plain op sum (run edgenas calibrate)"
        console.print(f"[bold]predicted {r['predicted_ms']:.3f} ms[/bold] on {device}/{backend} batch {batch} "
                      f"({tag}; op sum {r['sum_ms']:.3f} ms over {r['ops_executed']} ops)")
        t = Table(title="per-op breakdown (table values, before calibration)")
        for col in ("ms total", "count", "ms each", "op key"):
            t.add_column(col)
        for row in r["breakdown"][:25]:
            t.add_row(f"{row['ms_total']:.4f}", str(row["count"]), f"{row['ms_each']:.4f}", row["op_key"])
        console.print(t)

    emit(result, as_json, render)


def calibrate(
    device: str = DEVICE, backend: str = BACKEND, space: str = typer.Option("darts", "--space"),
    preset: str = typer.Option("small", "--preset"), batch: int = BATCH, threads: Optional[int] = THREADS,
    n: int = typer.Option(10, "--n", min=3, max=10_000, help="Whole networks to measure for the fit."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1), quick: bool = typer.Option(False, "--quick"),
    tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Measure N random whole networks and fit the predictor's correction (stored beside the table)."""
    from edgenas.latency.verify import calibrate as run_calibrate
    from edgenas.profiling.runner import check_local_device

    prof = get_profile(device)
    check_local_device(prof)
    sp = create_space(space, preset)
    store = TableStore(tables_dir)
    pred = LatencyPredictor.load(device, backend, sp, batch, threads, "fp32", store)
    be = create_backend(backend, threads=pred.sel.threads)
    settings = ProtocolSettings.quick() if quick else ProtocolSettings()
    with progress_bar() as bar:
        task = bar.add_task(f"calibrate {backend} b{batch}", total=n, detail="")
        cal, path, nets = run_calibrate(be, sp, pred, store, n, seed, settings, _progress_cb(bar, task))
    result = {"device": device, "backend": backend, "batch": batch, "space": space, "preset": preset,
              "calibration": cal.__dict__, "file": str(path), "networks": nets}
    emit(result, as_json, lambda r: console.print(
        f"calibrated on {cal.n_networks} networks: model {cal.model} (a={cal.a:.3f}, b={cal.b:.4f}, c={cal.c:.5f}); "
        f"leave-one-out MAPE {100 * cal.fit_mape:.1f}%, {100 * cal.fit_within_10pct:.0f}% within ±10% -> {path}"))


def verify(
    device: str = DEVICE, backend: str = BACKEND, space: str = typer.Option("darts", "--space"),
    preset: str = typer.Option("small", "--preset"), batch: int = BATCH, threads: Optional[int] = THREADS,
    n: int = typer.Option(50, "--n", min=1, max=10_000, help="Held-out random networks to measure and score."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    calibration_n: int = typer.Option(10, "--calibration-n", min=3, max=10_000,
                                      help="Networks to calibrate on first, when no calibration is stored."),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Fit a new calibration before verifying."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Scatter plot PNG (default: verify-<device>-<backend>-b<batch>.png)."),
    quick: bool = typer.Option(False, "--quick"), tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Measure N held-out random networks and score the predictor (±5%, ±10%, MAPE, RMSE, Kendall tau).

    Example: edgenas verify --device x86-64-host --backend onnxruntime --space darts --batch 1 --n 50
    """
    from edgenas.latency.verify import calibrate as run_calibrate, verify as run_verify
    from edgenas.profiling.runner import check_local_device

    prof = get_profile(device)
    check_local_device(prof)
    sp = create_space(space, preset)
    store = TableStore(tables_dir)
    pred = LatencyPredictor.load(device, backend, sp, batch, threads, "fp32", store)
    be = create_backend(backend, threads=pred.sel.threads)
    settings = ProtocolSettings.quick() if quick else ProtocolSettings()
    plot = plot or Path(f"verify-{device}-{backend}-{space}-b{batch}.png")
    with progress_bar() as bar:
        if recalibrate or not pred.calibration.calibrated:
            task = bar.add_task(f"calibrate {backend} b{batch}", total=calibration_n, detail="")
            run_calibrate(be, sp, pred, store, calibration_n, seed, settings, _progress_cb(bar, task))
        task = bar.add_task(f"verify {backend} b{batch}", total=n, detail="")
        rep = run_verify(be, sp, pred, n, seed, settings, plot, _progress_cb(bar, task))
    result = {"device": device, "backend": backend, "batch": batch, "threads": pred.sel.threads, "space": space,
              "preset": preset, **rep.metrics, "raw_op_sum": rep.raw_sum_metrics, "calibration": rep.calibration,
              "plot": rep.plot, "networks": rep.networks}

    def render(r):
        console.print(f"[bold]{device}/{backend} batch {batch}, {space} {preset}: {r['n']} held-out networks[/bold]")
        console.print(f"  within ±5%: {100 * r['within_5pct']:.0f}%   within ±10%: {100 * r['within_10pct']:.0f}%   "
                      f"MAPE {100 * r['mape']:.1f}%   RMSE {r['rmse_ms']:.4f} ms   Kendall tau {r['kendall_tau']:.3f}")
        raw = r["raw_op_sum"]
        console.print(f"  (plain op sum: {100 * raw['within_10pct']:.0f}% within ±10%, MAPE {100 * raw['mape']:.1f}%, "
                      f"bias {100 * raw['bias']:+.0f}%)")
        console.print(f"  calibration: {r['calibration']['model']} on {r['calibration']['n_networks']} networks; "
                      f"plot: {r['plot']}")

    emit(result, as_json, render)
