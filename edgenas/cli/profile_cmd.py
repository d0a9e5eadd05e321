"""``edgenas profile``: build latency tables on the machine (or, later, the device) at hand."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from edgenas.cli._output import console, emit, err_console
from edgenas.cli.common import JSON
from edgenas.cli.common_lists import int_list, str_list
from edgenas.cli.progress import progress_bar
from edgenas.devices import get_profile
from edgenas.errors import BackendUnavailable
from edgenas.latency.store import TableStore
from edgenas.profiling.base import backend_class, create_backend
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.runner import check_local_device, profile_ops, space_specs


def profile(
    device: str = typer.Option(..., "--device", "-d", help="Device profile name (see 'edgenas devices list')."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b",
                                          help="Backend(s), comma-separated; default: the device's backends available here."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, comma-separated (e.g. 1,8)."),
    space: str = typer.Option("darts,proxyless", "--space", help="Space(s) whose ops to profile, comma-separated."),
    preset: str = typer.Option("small", "--preset", help="Preset of each space (see 'edgenas spaces')."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Runtime threads; default: the device profile's."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (GPU backends)."),
    resume: bool = typer.Option(False, "--resume", help="Measure only the entries the table lacks."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Measure every entry again, replacing old rows."),
    quick: bool = typer.Option(False, "--quick", help="Short protocol (smoke tests; entries more often unstable)."),
    time_cap: Optional[float] = typer.Option(None, "--time-cap", help="Seconds per chunk of ops before stopping."),
    tables_dir: Optional[Path] = typer.Option(None, "--tables-dir", help="Table root (default: ./latency_tables)."),
    as_json: bool = JSON,
):
    """Measure every op instance of a space on a device and store it in the device's latency table.

    Examples:
      edgenas profile --device x86-64-host --backend onnxruntime --space darts --batch 1
      edgenas profile --device x86-64-host --batch 1,8 --resume
    """
    prof = get_profile(device)
    check_local_device(prof)
    batches = int_list(batch, "--batch")
    specs = space_specs(str_list(space), preset)
    names = str_list(backend) or list(prof.backends)
    backends, skipped = [], []
    for name in names:
        cls = backend_class(name)
        ok, why = cls.availability()
        if not ok:
            if backend:  # asked for explicitly: that is an error
                raise BackendUnavailable(f"backend {name!r} is not available here: {why}")
            skipped.append({"backend": name, "reason": why})
            continue
        backends.append(create_backend(name, threads=threads or prof.threads_for(name), precision=precision))
    for s in skipped:
        err_console.print(f"[yellow]skipping {s['backend']}: {s['reason']}[/yellow]")
    settings = ProtocolSettings.quick() if quick else ProtocolSettings()
    if time_cap:
        settings = ProtocolSettings(**{**settings.as_dict(), "time_cap_s": time_cap})
    store = TableStore(tables_dir)
    command = "edgenas " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = []
    with progress_bar() as bar:
        for be in backends:
            task = bar.add_task(f"{be.name} t{be.threads}", total=None, detail="")

            def on_event(ev, task=task):
                bar.update(task, total=ev.total, completed=ev.done,
                           detail=f"b{ev.batch} {ev.phase} {ev.key}"[:70])

            r = profile_ops(prof, be, specs, batches, store, resume=resume, overwrite=overwrite,
                            settings=settings, on_event=on_event, command=command)
            bar.update(task, total=max(r.measured, 1), completed=max(r.measured, 1), detail="done")
            results.append({"backend": be.name, "runtime_version": be.runtime_version(), "threads": be.threads,
                            "precision": be.precision, "table": str(r.table_path), "measured": r.measured,
                            "already_present": r.skipped_existing, "elapsed_s": round(r.elapsed_s, 2),
                            "max_drift": round(max(r.drift), 4) if r.drift else 0.0, "run_id": r.run_id})
    result = {"device": prof.name, "batches": batches, "op_instances": len(specs), "backends": results,
              "skipped_backends": skipped}

    def render(res):
        for b in res["backends"]:
            console.print(f"{b['backend']}: measured {b['measured']} entries, {b['already_present']} already present, "
                          f"{b['elapsed_s']:.1f} s, max host drift {100 * b['max_drift']:.0f}% -> {b['table']}")

    emit(result, as_json, render)
