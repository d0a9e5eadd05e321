"""``edgenas tables``: list, show, find missing entries, import and export latency tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgenas.cli._output import console, emit, err_console
from edgenas.cli.common import JSON
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
    precision: str = typer.Option("fp32", "--precision"), tables_dir: Optional[Path] = TABLES_DIR,
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
    merged = store.load(device, backend).merge(new)
    path = store.save(merged, device, backend)
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
