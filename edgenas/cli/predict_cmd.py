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
from edgenas.errors import EdgeNASError, InputError
from edgenas.latency.predictor import LatencyPredictor
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
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
    genotype: Optional[str] = typer.Argument(None, help="Genotype file, run directory, JSON, DARTS text or NB201 "
                                                        "arch_str."),
    many: Optional[Path] = typer.Option(None, "--many", help="CSV with a 'genotype' column: predict every row in "
                                                             "one process (other columns are kept)."),
    out: Optional[Path] = typer.Option(None, "--out", help="--many: write the predictions as CSV here."),
    device: str = DEVICE, backend: str = BACKEND, batch: int = BATCH, threads: Optional[int] = THREADS,
    precision: str = common.PRECISION, space: Optional[str] = common.SPACE,
    preset: Optional[str] = common.PRESET, channels: Optional[int] = common.CHANNELS,
    layers: Optional[int] = common.LAYERS, tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Predicted latency of a genotype on a device, with the per-op breakdown.

    A whole-network model fitted with 'edgenas tables fit' for this device, backend, space and batch is
    used when there is one; otherwise the op table with its calibration.

    Examples:
      edgenas predict run/genotype.json --device x86-64-host --backend onnxruntime --batch 1
      edgenas predict --many nets.csv --device my-board --backend tflite --out predicted.csv
    """
    if many is not None:
        return _predict_many(many, out, device, backend, batch, threads, precision, space, preset, tables_dir, as_json)
    if genotype is None:
        raise InputError("give a GENOTYPE or --many FILE.csv")
    from edgenas.latency.measurements import parse_genotype_text
    from edgenas.latency.wholenet_store import WholeNetStore
    from edgenas.spaces.base import wholenet_features

    # a cell of a space with whole-network cell features (an arch_str, or any genotype with --space nb201):
    # its fitted whole-network model answers when there is one, torch-free
    cell = wholenet_features(text=genotype) or (wholenet_features(space) if space else None)
    if cell is not None:
        text = Path(genotype).read_text().strip() if Path(genotype).is_file() else genotype
        sp_name, arch = parse_genotype_text(text, cell.space)
        found = WholeNetStore(TableStore(tables_dir)).get(device, backend, cell.space, batch, threads)
        if found is not None:
            model, prov = found
            ms = model.predict(arch)
            result = {"device": device, "backend": backend, "batch": batch, "space": cell.space,
                      "genotype": cell.to_text(arch), "predicted_ms": ms, "model": "wholenet",
                      "level": model.level, "pruning": model.pruning, "provenance":
                          {k: v for k, v in prov.items() if k != "training_genotypes"}}
            emit(result, as_json, lambda r: console.print(
                f"[bold]predicted {r['predicted_ms']:.3f} ms[/bold] on {device}/{backend} batch {batch} "
                f"(whole-network {r['level']} model fitted on {prov.get('n')} networks of {prov.get('source')})"))
            return
    g, sp = common.resolve_genotype(genotype, space, preset, channels=channels, layers=layers)
    pred = LatencyPredictor.load(device, backend, sp, batch, threads, precision, TableStore(tables_dir))
    p = pred.predict(sp, g.arch)
    result = {"device": device, "backend": backend, "batch": batch, "threads": pred.sel.threads,
              "precision": precision, "space": sp.name, "predicted_ms": p.predicted_ms, "sum_ms": p.sum_ms,
              "ops_executed": p.ops_executed, "calibrated": p.calibrated,
              "calibration": {k: getattr(pred.calibration, k) for k in ("model", "a", "b", "c", "n_networks",
                                                                        "fit_mape")},
              "drift_corrected": pred.uses_reference, "scale": pred.anchor.as_dict() if pred.anchor else None,
              "breakdown": p.breakdown}

    def render(r):
        tag = "calibrated" if r["calibrated"] else "UNCALIBRATED plain op sum (run edgenas calibrate)"
        fit = r["calibration"]["fit_mape"]
        sure = f", fit error {100 * fit:.1f}% MAPE" if r["calibrated"] and fit == fit else ""
        console.print(f"[bold]predicted {r['predicted_ms']:.3f} ms[/bold] on {device}/{backend} batch {batch} "
                      f"({tag}{sure}; op sum {r['sum_ms']:.3f} ms over {r['ops_executed']} ops)")
        console.print(f"  scale: {pred.scale_note}")
        t = Table(title="per-op breakdown (table values, before calibration)")
        for col in ("ms total", "count", "ms each", "op key"):
            t.add_column(col)
        for row in r["breakdown"][:25]:
            t.add_row(f"{row['ms_total']:.4f}", str(row["count"]), f"{row['ms_each']:.4f}", row["op_key"])
        console.print(t)

    emit(result, as_json, render)


def _predict_many(path, out, device, backend, batch, threads, precision, space, preset, tables_dir, as_json):
    import csv
    import io

    from edgenas.latency.measurements import MeasuredNet, net_features, parse_genotype_text
    from edgenas.latency.wholenet_store import WholeNetStore
    from edgenas.spaces.genotype import Genotype

    if not Path(path).is_file():
        raise InputError(f"no such file: {path}")
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    if not rows or "genotype" not in rows[0]:
        raise InputError(f"{path}: needs a header with a 'genotype' column")
    parsed, bad = [], []
    for ln, r in enumerate(rows, start=2):
        try:
            parsed.append(parse_genotype_text(r["genotype"], space))
        except EdgeNASError as e:
            bad.append(f"line {ln}: {e}")
    if bad:
        raise InputError(f"{path}: {len(bad)} row(s) do not parse ({'; '.join(bad[:5])}); nothing was predicted")
    spaces = {s for s, _ in parsed}
    if len(spaces) != 1:
        raise InputError(f"{path} mixes spaces {sorted(spaces)}")
    sp_name = spaces.pop()
    found = WholeNetStore(TableStore(tables_dir)).get(device, backend, sp_name, batch, threads)
    if found is not None:
        model, prov = found
        feats = [net_features(MeasuredNet(r["genotype"], 0.0, a, s, batch)) for r, (s, a) in zip(rows, parsed)]
        preds = [float(v) for v in model.predict_many(feats)]
        how = f"whole-network {model.level} model ({prov.get('n')} networks of {prov.get('source')})"
    else:
        pred = None
        preds = []
        for s, g in parsed:
            if not isinstance(g, Genotype):  # a bare benchmark cell (arch_str): only a whole-network model reads it
                raise InputError(f"no whole-network model for {sp_name} on {device}/{backend} batch {batch}: "
                                 f"fit one with 'edgenas tables fit --device {device} --backend {backend} "
                                 "--measurements FILE'")
            sp = g.resolve()
            pred = pred or LatencyPredictor.load(device, backend, sp, batch, threads, precision, TableStore(tables_dir))
            preds.append(pred.predict(sp, g.arch).predicted_ms)
        how = "op table" + (" (calibrated)" if pred and pred.calibration.calibrated else "")
    for r, p in zip(rows, preds):
        r["predicted_ms"] = f"{p:.6g}"
    if out is not None:
        from edgenas.io import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(out, buf.getvalue())
    result = {"device": device, "backend": backend, "batch": batch, "space": sp_name, "n": len(rows), "model": how,
              "out": str(out) if out else None,
              "predictions": [{"genotype": r["genotype"], "predicted_ms": p} for r, p in zip(rows, preds)]}

    def render(r):
        if out is not None:
            console.print(f"predicted {r['n']} networks with the {how} -> {out}")
        else:
            for row in r["predictions"]:
                console.print(f"{row['predicted_ms']:.4f}  {row['genotype']}")

    emit(result, as_json, render)


def calibrate(
    device: str = DEVICE, backend: str = BACKEND, space: str = typer.Option("darts", "--space"),
    preset: str = typer.Option("small", "--preset"), batch: int = BATCH, threads: Optional[int] = THREADS,
    precision: str = common.PRECISION,
    n: int = typer.Option(10, "--n", min=3, max=10_000, help="Whole networks to measure for the fit."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1), quick: bool = typer.Option(False, "--quick"),
    truth: str = typer.Option("auto", "--truth",
                              help="What to fit: plain (the exported files timed plainly with their runtime, fastest "
                                   "of 3 fresh processes: what its benchmark tool shows; run it on a quiet machine), "
                                   "protocol (edgenas's paired measurement: robust on a busy host), auto (plain where "
                                   "the backend runs a model file)."),
    tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Measure N random whole networks and fit the predictor's correction (stored beside the table)."""
    from edgenas.latency.verify import calibrate as run_calibrate

    sp, store, pred, be, settings = _measure_here(device, backend, space, preset, batch, threads, precision,
                                                  tables_dir, quick)
    with progress_bar() as bar:
        task = bar.add_task(f"calibrate {backend} b{batch}", total=n, detail="")
        cal, path, nets = run_calibrate(be, sp, pred, store, n, seed, settings, _progress_cb(bar, task),
                                        truth="plain" if truth == "auto" and be.suffix else
                                        "protocol" if truth == "auto" else truth)
    from edgenas.latency.predictor import calibration_advice

    result = {"device": device, "backend": backend, "batch": batch, "precision": precision, "space": space,
              "preset": preset, "calibration": cal.__dict__, "advice": calibration_advice(cal), "file": str(path),
              "networks": nets}

    def render(r):
        console.print(
            f"calibrated on {cal.n_networks} networks: model {cal.model} (a={cal.a:.3f}, b={cal.b:.4f}, c={cal.c:.5f}"
            + "".join(f", {t} x{m:.2f}" for t, m in sorted(cal.type_scale.items()))
            + (f", {len(cal.key_scale)} op keys x{min(cal.key_scale.values()):.2f}-{max(cal.key_scale.values()):.2f}"
               if cal.key_scale else "") + "); "
            f"leave-one-out MAPE {100 * cal.fit_mape:.1f}%, {100 * cal.fit_within_10pct:.0f}% within ±10% -> {path}")
        if r["advice"]:
            console.print(f"[yellow]{r['advice']}[/yellow]")

    emit(result, as_json, render)


def verify(
    device: str = DEVICE, backend: str = BACKEND, space: str = typer.Option("darts", "--space"),
    measurements: Optional[Path] = typer.Option(None, "--measurements", "-m", help="Score the whole-network model "
                                                "fitted for this device on these measured networks instead of "
                                                "measuring here (networks it was fitted on are left out)."),
    fmt: str = typer.Option("generic", "--format", help="--measurements format: generic, nnmeter, hwnasbench."),
    configs: Optional[Path] = typer.Option(None, "--configs", help="nnmeter: nasbench201-configs.json."),
    arch_strings: Optional[Path] = typer.Option(None, "--arch-strings", help="hwnasbench: arch_idx,arch_str CSV."),
    row: Optional[str] = typer.Option(None, "--row", help="hwnasbench: DEVICE/FRAMEWORK/TASK."),
    learning_curve: bool = typer.Option(False, "--learning-curve", help="--measurements: also fit on N = 20, 50, "
                                        "100, 200, 500 networks of the file and score the rest (3 splits each)."),
    preset: str = typer.Option("small", "--preset"), batch: int = BATCH, threads: Optional[int] = THREADS,
    precision: str = common.PRECISION,
    n: int = typer.Option(50, "--n", min=1, max=10_000, help="Held-out random networks to measure and score."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    calibration_n: int = typer.Option(10, "--calibration-n", min=3, max=10_000,
                                      help="Networks to calibrate on first, when no calibration is stored."),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Fit a new calibration before verifying."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Scatter plot PNG (default: verify-<device>-<backend>-b<batch>.png)."),
    truth: str = typer.Option("auto", "--truth",
                              help="What to score against: plain (the exported file timed plainly with its runtime, "
                                   "fastest of --truth-processes fresh processes, as benchmark_model or "
                                   "onnxruntime_perf_test would), protocol (edgenas's paired measurement on the "
                                   "predictor's scale), auto (plain where the backend runs a model file)."),
    truth_processes: int = typer.Option(3, "--truth-processes", min=1, max=20,
                                        help="Fresh processes per network for --truth plain (the fastest counts)."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Only export (into the artifact cache) every "
                                      "model this verify would time, and stop: convert on a busy host, then run the "
                                      "same command without it on a quiet one, which only times."),
    quick: bool = typer.Option(False, "--quick"), tables_dir: Optional[Path] = TABLES, as_json: bool = common.JSON,
):
    """Measure N held-out random networks and score the predictor (±5%, ±10%, MAPE, RMSE, Kendall tau).

    By default the truth is independent of edgenas's own scale: each exported model timed plainly
    with its runtime in fresh processes (the fastest of 3), so a wrong millisecond scale is an error.

    Examples:
      edgenas verify --device x86-64-host --backend onnxruntime --space darts --batch 1 --n 50
      edgenas verify --device my-board --backend tflite --measurements held_out.csv --learning-curve
      edgenas verify --device x86-64-host --backend tflite --precision int8 --n 50 --recalibrate --prepare-only
    """
    if measurements is not None:
        return _verify_measurements(device, backend, measurements, fmt, configs, arch_strings, row, batch, threads,
                                    learning_curve, plot, tables_dir, as_json)
    from edgenas.latency.predictor import calibration_advice
    from edgenas.latency.verify import calibrate as run_calibrate, prepare as run_prepare, verify as run_verify

    sp, store, pred, be, settings = _measure_here(device, backend, space, preset, batch, threads, precision,
                                                  tables_dir, quick)
    if prepare_only:
        with progress_bar() as bar:
            task = bar.add_task(f"prepare {backend} {precision} b{batch}", total=n, detail="")
            paths = run_prepare(be, sp, pred, n, seed, calibration_n, recalibrate, _progress_cb(bar, task))
        return emit({"device": device, "backend": backend, "batch": batch, "precision": precision, "space": space,
                     "preset": preset, "prepared": len(paths), "artifacts": [str(p) for p in paths]}, as_json,
                    lambda r: console.print(f"prepared {r['prepared']} {backend} {precision} b{batch} models of "
                                            f"{space} {preset} in the artifact cache; run the same command without "
                                            f"--prepare-only to time them"))
    if truth == "auto":
        truth = "plain" if be.suffix else "protocol"
    plot = plot or Path(f"verify-{device}-{backend}-{space}-b{batch}.png")
    with progress_bar() as bar:
        if recalibrate or not pred.calibration.calibrated:
            task = bar.add_task(f"calibrate {backend} b{batch}", total=calibration_n, detail="")
            run_calibrate(be, sp, pred, store, calibration_n, seed, settings, _progress_cb(bar, task), truth=truth,
                          processes=truth_processes)
        task = bar.add_task(f"verify {backend} b{batch}", total=n, detail="")
        rep = run_verify(be, sp, pred, n, seed, settings, plot, _progress_cb(bar, task), truth=truth,
                         processes=truth_processes)
    result = {"device": device, "backend": backend, "batch": batch, "threads": pred.sel.threads,
              "precision": precision, "space": space,
              "preset": preset, **rep.metrics, "raw_op_sum": rep.raw_sum_metrics, "calibration": rep.calibration,
              "advice": calibration_advice(pred.calibration, "--calibration-n"), "plot": rep.plot,
              "networks": rep.networks}

    def render(r):
        console.print(f"[bold]{device}/{backend} {precision} batch {batch}, {space} {preset}: {r['n']} held-out "
                      f"networks[/bold]")
        console.print(f"  truth: {r['truth']}" + (f" ({r['truth_recipe']}); edgenas's own measurement on the "
                                                   f"predictor's scale / plain: {r['protocol_over_plain']:.3f}"
                                                   if r["truth"] == "plain" else
                                                   " (edgenas's paired measurement on the predictor's scale)"))
        console.print(f"  scale: {pred.scale_note}")
        console.print(f"  within ±5%: {100 * r['within_5pct']:.0f}%   within ±10%: {100 * r['within_10pct']:.0f}%   "
                      f"MAPE {100 * r['mape']:.1f}%   RMSE {r['rmse_ms']:.4f} ms   Kendall tau {r['kendall_tau']:.3f}")
        raw = r["raw_op_sum"]
        console.print(f"  (plain op sum: {100 * raw['within_10pct']:.0f}% within ±10%, MAPE {100 * raw['mape']:.1f}%, "
                      f"bias {100 * raw['bias']:+.0f}%)")
        console.print(f"  calibration: {r['calibration']['model']} on {r['calibration']['n_networks']} networks; "
                      f"plot: {r['plot']}")
        if r["advice"]:
            console.print(f"  [yellow]{r['advice']}[/yellow]")

    emit(result, as_json, render)


def _verify_measurements(device, backend, path, fmt, configs, arch_strings, row, batch, threads, learning_curve,
                         plot, tables_dir, as_json):
    from edgenas.latency.measurements import read_measurements
    from edgenas.latency.wholenet_store import WholeNetStore
    from edgenas.latency.verify import scatter_plot
    from edgenas.latency.wholenet_verify import learning_curve as run_curve, score_model

    ms = read_measurements(path, fmt, None, configs, arch_strings, row)
    found = WholeNetStore(TableStore(tables_dir)).get(device, backend, ms.space, batch, threads)
    result = {"device": device, "backend": backend, "batch": batch, "space": ms.space, "measurements": str(path),
              "sha256": ms.sha256}
    if found is not None:
        model, prov = found
        trained = set(prov.get("training_genotypes") or [])
        metrics, pred, true, nets = score_model(model, ms, exclude=trained)
        if not nets:
            raise InputError(f"every network of {path} was used to fit the model: give held-out measurements")
        plot = plot or Path(f"verify-{device}-{backend}-{ms.space}-b{batch}.png")
        scatter_plot(pred, true, plot, f"{device}/{backend} {ms.space}: {metrics['n']} held-out networks, "
                                       f"{100 * metrics['within_10pct']:.1f}% within ±10%")
        result.update({**metrics, "left_out_as_trained": len(ms.nets) - len(nets) if trained else 0,
                       "model": {"level": model.level, "pruning": model.pruning,
                                 **{k: v for k, v in prov.items() if k != "training_genotypes"}},
                       "plot": str(plot)})
    elif not learning_curve:
        raise InputError(f"no whole-network model for {ms.space} on {device}/{backend} batch {batch}: fit one with "
                         f"'edgenas tables fit --device {device} --backend {backend} --measurements FILE', "
                         "or pass --learning-curve")
    if learning_curve:
        result["learning_curve"] = run_curve(ms)

    def render(r):
        if "within_10pct" in r:
            console.print(f"[bold]{device}/{backend} {r['space']}: {r['n']} held-out networks[/bold] "
                          f"(left out {r['left_out_as_trained']} the model was fitted on)")
            console.print(f"  within ±5%: {100 * r['within_5pct']:.1f}%   within ±10%: {100 * r['within_10pct']:.1f}%   "
                          f"MAPE {r['mape_pct']:.1f}%   Spearman {r.get('spearman', float('nan')):.3f}   "
                          f"Kendall tau {r.get('kendall_tau', float('nan')):.3f}   plot: {r['plot']}")
        for c in r.get("learning_curve", []):
            console.print(f"  N={c['n']:>4}: {100 * c['within_10pct']:.1f}% within ±10% "
                          f"[{100 * c['within_10pct_min']:.1f}-{100 * c['within_10pct_max']:.1f}] over {c['seeds']} "
                          f"splits, MAPE {c['mape_pct']:.1f}%, {c['held_out']} held out")

    emit(result, as_json, render)


def _measure_here(device, backend, space, preset, batch, threads, precision, tables_dir, quick):
    """(space, store, predictor, backend, protocol) of a command that measures networks on this machine.

    The backend is made first, so a precision it cannot run is said before a table is looked for.
    """
    from edgenas.api import protocol
    from edgenas.profiling.runner import check_local_device

    prof = get_profile(device)
    check_local_device(prof)
    be = create_backend(backend, threads=threads or prof.threads_for(backend), precision=precision)
    prof.check_precision(backend, precision)
    sp = create_space(space, preset)
    store = TableStore(tables_dir)
    pred = LatencyPredictor.load(device, backend, sp, batch, threads, precision, store)
    return sp, store, pred, be, protocol(quick)
