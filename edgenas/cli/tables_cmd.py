"""``edgenas tables``: list, show, find missing entries, import and export latency tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgenas.cli._output import console, emit, err_console
from edgenas.cli.common import JSON, PRECISION
from edgenas.cli.common_lists import int_list, str_list
from edgenas.errors import InputError
from edgenas.io import atomic_write_text
from edgenas.latency.importers import FORMATS, export_proxylessnas, import_proxylessnas
from edgenas.latency.store import TableStore
from edgenas.latency.table import TableSelection

app = typer.Typer(help="List, show, check, import and export latency tables.", no_args_is_help=True)
TABLES_DIR = typer.Option(None, "--tables-dir", help="Table root (default: ./latency_tables).")


def _fmt(v, digits=4):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


@app.command("list")
def list_tables(tables_dir: Optional[Path] = TABLES_DIR, as_json: bool = JSON):
    """Every table group: device, backend, runtime, precision, threads, batch, entries, spread."""
    store = TableStore(tables_dir)
    groups = []
    for path in store.files():
        from edgenas.latency.table import LatencyTable

        t = LatencyTable.read(path)
        for row in t.groups().to_dict("records"):
            sources = sorted(set(t.df["source"]))
            groups.append({**row, "file": str(path), "sources": sources})
    result = {"root": str(store.root), "groups": groups}

    def render(r):
        table = Table(title=f"latency tables under {r['root']}")
        for col in ("device", "backend", "runtime", "prec", "threads", "batch", "entries", "stable", "median CV",
                    "last measured"):
            table.add_column(col)
        for g in r["groups"]:
            table.add_row(g["device"], g["backend"], g["runtime_version"], g["precision"], str(g["threads"]),
                          str(g["batch"]), str(g["entries"]), f"{100 * g['stable_share']:.0f}%",
                          _fmt(g["median_cv"], 2), str(g["last_measured"])[:19])
        console.print(table)

    emit(result, as_json, render)


@app.command("show")
def show(
    device: str = typer.Option(..., "--device", "-d"), backend: str = typer.Option(..., "--backend", "-b"),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, max=65536), op: Optional[str] = typer.Option(None, "--op",
                                                                                          help="Substring of the op key."),
    limit: int = typer.Option(50, "--limit", min=0, max=10_000_000, help="Rows to print (JSON prints all)."),
    tables_dir: Optional[Path] = TABLES_DIR, as_json: bool = JSON,
):
    """The entries of one device/backend table, with their statistics and provenance."""
    store = TableStore(tables_dir)
    t = store.load(device, backend, missing_ok=False).select(batch=batch)
    df = t.df
    if op:
        df = df[df["op_key"].str.contains(op, regex=False)]
    rows = df.to_dict("records")
    result = {"device": device, "backend": backend, "entries": len(rows), "rows": rows,
              "runs": {k: v for k, v in t.runs.items() if k in set(df["run_id"])}}

    def render(r):
        table = Table(title=f"{device} / {backend}: {r['entries']} entries")
        for col in ("batch", "threads", "op key", "median ms", "mean ms", "p10", "p90", "CV", "n", "stable"):
            table.add_column(col, overflow="fold")
        for row in r["rows"][:limit]:
            table.add_row(str(row["batch"]), str(row["threads"]), row["op_key"], _fmt(row["median_ms"]),
                          _fmt(row["mean_ms"]), _fmt(row["p10_ms"]), _fmt(row["p90_ms"]), _fmt(row["cv"], 2),
                          str(row["n"]), str(row["stable"]))
        console.print(table)
        if r["entries"] > limit:
            console.print(f"... {r['entries'] - limit} more (--limit, or --json for all)")
        for run_id, run in r["runs"].items():
            env = run.get("environment", {})
            what = run.get("command") or f"import of {run.get('file')} (sha256 {str(run.get('sha256'))[:12]})"
            console.print(f"[dim]run {run_id}: {what}; {env.get('cpu_model', '')} {env.get('date', '')}[/dim]")

    emit(result, as_json, render)


@app.command("missing")
def missing(
    device: str = typer.Option(..., "--device", "-d"), backend: str = typer.Option(..., "--backend", "-b"),
    space: str = typer.Option("darts,proxyless", "--space"), preset: str = typer.Option("small", "--preset"),
    batch: str = typer.Option("1", "--batch"), threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024),
    precision: str = PRECISION, tables_dir: Optional[Path] = TABLES_DIR,
    as_json: bool = JSON,
):
    """Which op keys of a space a table lacks, and the command that measures them."""
    from edgenas.devices import get_profile
    from edgenas.profiling.runner import space_specs

    prof = get_profile(device)
    threads = threads or prof.threads_for(backend)
    store = TableStore(tables_dir)
    table = store.load(device, backend)
    specs = space_specs(str_list(space), preset)
    per_batch = []
    for b in int_list(batch, "--batch"):
        sel = TableSelection(device, backend, precision, threads, b)
        miss = table.missing(specs, sel)
        per_batch.append({"batch": b, "needed": len({s.key for s in specs}), "missing": [s.key for s in miss]})
    total = sum(len(p["missing"]) for p in per_batch)
    cmd = (f"edgenas profile --device {device} --backend {backend} --space {space} --preset {preset} "
           f"--batch {batch} --threads {threads} --resume")
    result = {"device": device, "backend": backend, "threads": threads, "precision": precision,
              "batches": per_batch, "missing_total": total, "fill_command": cmd if total else None}

    def render(r):
        for p in r["batches"]:
            console.print(f"batch {p['batch']}: {len(p['missing'])} of {p['needed']} op keys missing")
            for k in p["missing"][:20]:
                console.print(f"  {k}")
            if len(p["missing"]) > 20:
                console.print(f"  ... {len(p['missing']) - 20} more")
        if r["fill_command"]:
            console.print(f"fill them with: {r['fill_command']}")

    emit(result, as_json, render)
    if total:
        raise typer.Exit(1)


@app.command("import")
def import_table(
    file: Path = typer.Argument(..., help="results.json from a device, or a published table (--format)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Published table format: {', '.join(FORMATS)} "
                                                             "(not needed for results.json)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device to file a published table under "
                                                                      "(e.g. pixel-1); results.json names its own."),
    backend: str = typer.Option("tflite", "--backend", "-b", help="Backend a published table was measured with."),
    threads: int = typer.Option(1, "--threads", min=1, max=1024),
    note: str = typer.Option("", "--note", help="Provenance note (source repository, commit, licence)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="The bundle zip the device ran (needed when the "
                                                                 "bundle was built on another machine)."),
    tables_dir: Optional[Path] = TABLES_DIR, as_json: bool = JSON,
):
    """Import a device's results.json (checked against its bundle) or a published lookup table.

    Examples:
      edgenas tables import results.json
      edgenas tables import mobile_trim.yaml --format proxylessnas --device pixel-1
    """
    from edgenas.profiling.results_import import import_results, is_results_file

    store = TableStore(tables_dir)
    if fmt is None and is_results_file(file):
        named = json.loads(Path(file).read_text()).get("device")  # is_results_file parsed it within bounds
        if device is not None and device != named:
            raise InputError(f"{file} holds results for {named}, not {device}; drop --device (results name their device)")
        rep = import_results(file, store, bundle=bundle, command="edgenas tables import " + str(file))
        result = {"file": str(file), "device": rep.device, "backend": rep.backend, "bundle_id": rep.bundle_id,
                  "measured_by": rep.measured_by, "runtime_version": rep.runtime_version, "imported": rep.imported,
                  "bundle_entries": rep.bundle_entries, "table_entries": rep.table_entries, "table": str(rep.table),
                  "run_id": rep.run_id, "warnings": rep.warnings}
        for w in rep.warnings:
            err_console.print(f"[yellow]warning: {w}[/yellow]")
        emit(result, as_json, lambda r: console.print(
            f"imported {r['imported']} of {r['bundle_entries']} entries of bundle {r['bundle_id']} "
            f"({r['measured_by']}, {r['runtime_version']}) -> {r['table']} ({r['table_entries']} entries in all)"))
        return
    if fmt is None:
        raise InputError(f"{file} is not an edgenas results.json; for a published table pass --format "
                         f"({', '.join(FORMATS)}) and --device")
    if fmt not in FORMATS:
        raise InputError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
    if device is None:
        raise InputError(f"--device is needed for a {fmt} table: the device to file it under (e.g. pixel-1)")
    new = import_proxylessnas(file, device=device, backend=backend, threads=threads, note=note)
    path, merged = store.update(device, backend, lambda t: t.merge(new))
    result = {"file": str(file), "device": device, "backend": backend, "imported": len(new),
              "table_entries": len(merged), "table": str(path)}
    emit(result, as_json, lambda r: console.print(
        f"imported {r['imported']} entries from {r['file']} -> {r['table']} ({r['table_entries']} entries in all)"))


@app.command("export")
def export_table(
    device: str = typer.Option(..., "--device", "-d"), backend: str = typer.Option(..., "--backend", "-b"),
    fmt: str = typer.Option("proxylessnas", "--format"), out: Path = typer.Option(..., "--out"),
    batch: int = typer.Option(1, "--batch", min=1, max=65536), tables_dir: Optional[Path] = TABLES_DIR,
):
    """Write a table in a published format (ProxylessNAS YAML) for other tools."""
    if fmt not in FORMATS:
        raise InputError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
    t = TableStore(tables_dir).load(device, backend, missing_ok=False).select(batch=batch)
    atomic_write_text(out, export_proxylessnas(t))
    console.print(f"wrote {len(t)} entries to {out}")


@app.command("check")
def check(
    device: str = typer.Option(..., "--device", "-d", help="Device whose table to check."),
    backend: str = typer.Option(..., "--backend", "-b", help="Backend of the table."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads (default: the device profile's)."),
    entries: int = typer.Option(6, "--entries", min=0, max=200, help="Table entries to re-measure (the shape check)."),
    processes: int = typer.Option(3, "--processes", min=1, max=20,
                                  help="Fresh processes timing the reference op (the fastest counts)."),
    results: Optional[Path] = typer.Option(None, "--results",
                                           help="results.json of the on-device runner, for a device that is not this machine."),
    quick: bool = typer.Option(False, "--quick", help="Short protocol for the entries."),
    precision: str = PRECISION, tables_dir: Optional[Path] = TABLES_DIR, as_json: bool = JSON,
):
    """Re-measure the reference op and a few entries: does the table's millisecond scale still hold here?

    The reference's quiet-state time here (fastest of a few fresh processes) against the table's own
    sessions says whether the scale holds; checking re-anchors predictions on this machine. A few
    re-measured entries say whether the op ratios (the table's shape) still hold.

    Examples:
      edgenas tables check --device x86-64-host --backend onnxruntime
      edgenas tables check --device pixel-7 --backend tflite --results results.json
    """
    from edgenas.latency.check import check_table

    rep = check_table(device, backend, batch, threads, entries, processes, results, TableStore(tables_dir),
                      quick=quick, precision=precision)

    def render(r):
        console.print(f"[bold]{device}/{backend} {precision} batch {batch}[/bold]: {r['verdict']}")
        console.print(f"  table: {r['table_note']}")
        for line in r["advice"]:
            console.print(f"  {line}")
        if r["entries"]:
            t = Table(title="re-measured entries (ratio to the reference op)")
            for col in ("table", "here", "change", "op key"):
                t.add_column(col)
            for e in r["entries"]:
                t.add_row(f"{e['table_ratio']:.3f}", f"{e['here_ratio']:.3f}", f"{100 * e['change']:+.1f}%", e["op_key"])
            console.print(t)

    emit(rep.as_dict(), as_json, render)


MEAS_FORMAT = typer.Option("generic", "--format", help="Measurements format: generic (genotype,latency_ms[,batch,"
                                                       "threads] CSV), nnmeter (nn-Meter *-nasbench201-log.csv), "
                                                       "hwnasbench (HW-NAS-Bench-360 dataset.parquet).")
CONFIGS = typer.Option(None, "--configs", help="nnmeter: nasbench201-configs.json (default: beside the log).")
ARCH_STRINGS = typer.Option(None, "--arch-strings", help="hwnasbench: CSV arch_idx,arch_str of NAS-Bench-201.")
ROW = typer.Option(None, "--row", help="hwnasbench: DEVICE/FRAMEWORK/TASK, e.g. pi5/litert/cifar100.")


@app.command("fit")
def fit(
    device: str = typer.Option(..., "--device", "-d", help="Device to file the model under (any name; "
                                                          "no device profile is needed)."),
    backend: str = typer.Option(..., "--backend", "-b", help="Runtime the networks were measured with."),
    measurements: Path = typer.Option(..., "--measurements", "-m", help="Whole-network measurements file."),
    space: Optional[str] = typer.Option(None, "--space", help="Space of the genotypes (nb201, darts, proxyless); "
                                                              "default: read from the file."),
    fmt: str = MEAS_FORMAT, configs: Optional[Path] = CONFIGS, arch_strings: Optional[Path] = ARCH_STRINGS,
    row: Optional[str] = ROW,
    level: str = typer.Option("auto", "--level", help="auto, additive, fusion or residual (see edgenas.latency.fit)."),
    batch: int = typer.Option(1, "--batch", help="Batch the networks were measured at (generic CSV: its column)."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    seed: int = typer.Option(0, "--seed"),
    prior_table: bool = typer.Option(False, "--prior-table", help="nb201: start from this device/backend's op table "
                                     "(profiled or imported): the fit shrinks toward its op latencies, as strongly "
                                     "as cross-validation says."),
    preset: Optional[str] = typer.Option(None, "--preset", help="--prior-table: the space preset the networks were "
                                         "measured at (nb201 default: cifar10)."),
    tables_dir: Optional[Path] = TABLES_DIR, as_json: bool = JSON,
):
    """Learn a device's latency from N measured whole networks; store the model beside its op table.

    The model is used by 'edgenas predict' (also --many) and scored by 'edgenas verify --measurements'.

    Examples:
      edgenas tables fit -d my-board -b tflite --measurements nets.csv
      edgenas tables fit -d pixel4-cpu -b tflite --format nnmeter -m cpu-nasbench201-log.csv
    """
    from edgenas.latency.fit import fit_wholenet
    from edgenas.latency.measurements import net_features, read_measurements
    from edgenas.latency.wholenet_store import WholeNetStore
    from edgenas.spaces.base import wholenet_features

    store = TableStore(tables_dir)
    store.path(device, backend)  # validates the names before any work
    ms = read_measurements(measurements, fmt, space, configs, arch_strings, row)
    if space and ms.space != space:
        raise InputError(f"{measurements} holds {ms.space} genotypes, not {space}")
    nets = ms.nets
    if fmt == "generic":
        batches = {n.batch for n in nets}
        tcounts = {n.threads for n in nets}
        if len(batches) > 1 or len(tcounts) > 1:
            raise InputError(f"{measurements} mixes batch sizes {sorted(batches)} or thread counts; "
                             "fit one file per (batch, threads)")
        batch, threads = batches.pop(), (tcounts.pop() or threads)
    prior = None
    cell = wholenet_features(ms.space)
    if prior_table:
        if cell is None:
            raise InputError(f"--prior-table needs a space with whole-network cell features, not {ms.space}")
        from edgenas.latency.predictor import LatencyPredictor
        from edgenas.spaces import create_space

        sp = create_space(ms.space, preset)
        pred = LatencyPredictor.load(device, backend, sp, batch, threads, "fp32", store)
        prior = cell.prior(sp, pred.op_ms)
    model = fit_wholenet([net_features(n, batch) for n in nets], [n.latency_ms for n in nets], space=ms.space,
                         level=level, seed=seed, prior=prior)
    prov = {**ms.provenance(), "space": ms.space, "batch": batch, "threads": threads, "level": model.level,
            "pruning": model.pruning, "fit_within_10pct": model.meta["fit_within_10pct"],
            "fit_mape_pct": model.meta["fit_mape_pct"], "cv_within_10pct": model.meta.get("cv_within_10pct"),
            "prior_table": bool(prior), "training_genotypes": sorted({n.genotype for n in nets})}
    path = WholeNetStore(store).put(device, backend, model, prov, batch, threads)
    result = {"device": device, "backend": backend, "space": ms.space, "batch": batch, "threads": threads,
              "file": str(path), **{k: v for k, v in prov.items() if k != "training_genotypes"}}
    over = f"{model.pruning} pruning" if cell is not None else "over op keys"
    emit(result, as_json, lambda r: console.print(
        f"fitted {r['level']} model ({over}) on {r['n']} {r['space']} networks "
        f"from {r['source']}: "
        f"fit {100 * r['fit_within_10pct']:.1f}% within ±10%, MAPE {r['fit_mape_pct']:.1f}%; "
        f"cross-validated (linear part) {100 * (r['cv_within_10pct'] or 0):.1f}% -> {r['file']}"))
