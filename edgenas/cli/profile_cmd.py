"""``edgenas profile``: build latency tables here, over SSH on a board, or as a bundle for a phone."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from edgenas.api import op_instances, plan_profile, protocol, run_profile, specs_to_measure
from edgenas.cli._output import console, emit, err_console
from edgenas.cli.common import JSON, PRECISION, finite
from edgenas.cli.common_lists import int_list, str_list
from edgenas.cli.executor_opts import EXECUTOR, RAY_ADDRESS
from edgenas.cli.progress import progress_bar
from edgenas.devices import get_profile
from edgenas.errors import InputError
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend


def profile(
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device profile name (see 'edgenas devices list')."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b",
                                          help="Backend(s), comma-separated; default: the device's backends available here."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, comma-separated (e.g. 1,8)."),
    space: str = typer.Option("darts,proxyless", "--space", help="Space(s) whose ops to profile, comma-separated."),
    preset: str = typer.Option("small", "--preset", help="Preset of each space (see 'edgenas spaces')."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="Runtime threads; default: the device profile's."),
    precision: str = PRECISION,
    resume: bool = typer.Option(False, "--resume", help="Measure only the entries the table lacks."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Measure every entry again, replacing old rows."),
    quick: bool = typer.Option(False, "--quick", help="Short protocol (smoke tests; entries more often unstable)."),
    time_cap: Optional[float] = typer.Option(None, "--time-cap", min=0.001, max=1e7, callback=finite, help="Seconds per chunk of ops before stopping."),
    tables_dir: Optional[Path] = typer.Option(None, "--tables-dir", help="Table root (default: ./latency_tables)."),
    ops: Optional[str] = typer.Option(None, "--ops", help="Op keys, comma-separated, instead of --space "
                                                           "(e.g. those 'edgenas tables missing' lists)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Write an on-device bundle (.zip) for a device "
                                                                  "edgenas cannot run on, instead of measuring here."),
    host: Optional[str] = typer.Option(None, "--host", help="USER@HOST of a board: bundle, run it there over SSH, "
                                                             "fetch and import the results."),
    ssh_port: Optional[int] = typer.Option(None, "--ssh-port", min=1, max=65535, help="SSH port (default: ssh's, usually 22)."),
    identity: Optional[Path] = typer.Option(None, "--identity", help="SSH private key (default: ssh's)."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts",
                                               help="known_hosts file holding the board's key (default: ssh's)."),
    remote_python: str = typer.Option("python3", "--remote-python", help="Python 3.8+ on the board that has numpy "
                                                                         "and the runtime."),
    keep_remote: bool = typer.Option(False, "--keep-remote", help="Leave the bundle and results on the board."),
    fleet: Optional[Path] = typer.Option(None, "--fleet", help="fleet.yaml: profile every device in it where it is "
                                                                "(local, SSH or a Ray node; docs/scaling.md)."),
    executor: str = EXECUTOR,
    ray_address: Optional[str] = RAY_ADDRESS,
    as_json: bool = JSON,
):
    """Measure every op instance of a space on a device and store it in the device's latency table.

    Examples:
      edgenas profile --device x86-64-host --backend onnxruntime --space darts --batch 1
      edgenas profile --device x86-64-host --batch 1,8 --resume
      edgenas profile --device pixel-7 --bundle pixel-7.zip      (then run it on the phone, see docs/mobile-teams.md)
      edgenas profile --device jetson-nano --backend onnxruntime --host me@nano.local
      edgenas profile --fleet fleet.yaml --executor ray --ray-address HEAD:6379
    """
    if fleet is not None:
        from edgenas.cli.fleet_cmd import profile_fleet
        return profile_fleet(fleet, tables_dir, executor, ray_address, as_json)
    if device is None:
        raise InputError("--device is required (or --fleet fleet.yaml)")
    batches = int_list(batch, "--batch")
    command = "edgenas " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if bundle is not None or host is not None:
        specs = op_instances(str_list(space), preset, str_list(ops) if ops else None)
        return _elsewhere(get_profile(device), backend, batches, specs, threads, precision, resume, overwrite,
                          protocol(quick, time_cap), tables_dir, bundle, host, ssh_port, identity, known_hosts,
                          remote_python, keep_remote, command, as_json)
    for flag, value in (("--ssh-port", ssh_port), ("--identity", identity), ("--known-hosts", known_hosts)):
        if value is not None:
            raise InputError(f"{flag} goes with --host USER@HOST")
    plan = plan_profile(device, str_list(backend) or None, str_list(space), preset, batches, threads, precision,
                        quick, time_cap, str_list(ops) if ops else None)
    for s in plan.skipped:
        err_console.print(f"[yellow]skipping {s['backend']}: {s['reason']}[/yellow]")
    with progress_bar() as bar:
        tasks = {be.name: _on_event(bar, be) for be in plan.backends}
        result = run_profile(plan, tables_dir, resume, overwrite, lambda be, ev: tasks[be.name](ev), command)

    def render(res):
        for b in res["backends"]:
            console.print(f"{b['backend']}: measured {b['measured']} entries, {b['already_present']} already present, "
                          f"{b['elapsed_s']:.1f} s ({b['convert_s']:.1f} s converting), "
                          f"max host drift {100 * b['max_drift']:.0f}% -> {b['table']}")

    emit(result, as_json, render)


def _elsewhere(prof, backend, batches, specs, threads, precision, resume, overwrite, settings, tables_dir, bundle,
               host, ssh_port, identity, known_hosts, remote_python, keep_remote, command, as_json):
    """--bundle (build only) and --host (build, run over SSH, import): no local-device check."""
    from edgenas.profiling.bundle import build_bundle, check_bundle_backend, runner_backends

    if bundle is not None and host is not None:
        raise InputError("use --bundle (run it on the device yourself) or --host (edgenas runs it over SSH), not both")
    if host is not None and "ssh" not in prof.reach:
        raise InputError(f"{prof.name} is not reached over SSH (reach: {', '.join(prof.reach)}); "
                         f"build a bundle with --bundle {prof.name}.zip instead")
    runnable = [b for b in prof.backends if b in runner_backends()]
    names = str_list(backend) or runnable[:1]
    if len(names) != 1:
        raise InputError(f"a bundle holds one backend: pass --backend with one of "
                         f"{', '.join(runnable or runner_backends())}")
    check_bundle_backend(prof, names[0])
    be = create_backend(names[0], threads=threads or prof.threads_for(names[0]), precision=precision)
    store = TableStore(tables_dir)
    specs = specs_to_measure(store, prof, be, specs, batches, resume, overwrite, guard=host is not None)
    if resume and not overwrite:
        if not specs:
            emit({"device": prof.name, "backend": be.name, "measured": 0, "message": "nothing missing"}, as_json,
                 lambda r: console.print(f"{r['device']} / {r['backend']}: the table has every entry; nothing to do"))
            return
    if bundle is not None:
        with progress_bar(transient=True) as bar:
            made = build_bundle(prof, be, specs, batches, bundle, settings, store=store, on_event=_on_event(bar, be))
    else:
        from edgenas.profiling.ssh import SSHTarget, board, profile_over_ssh

        target = SSHTarget(host, ssh_port, identity, known_hosts)
        with board(target, remote_python, be.runner_runtime, keep=keep_remote) as on_board:  # fails fast, before converting
            with progress_bar(transient=True) as bar:
                report = profile_over_ssh(on_board, prof, be, specs, batches, store, settings, command=command,
                                          on_event=_on_event(bar, be))
        if keep_remote:
            report.notes.append(f"remote files kept in {on_board.workdir}")
    if bundle is not None:
        result = {"device": prof.name, "backend": be.name, "threads": be.threads, "batches": batches,
                  "bundle": str(made.path), "bundle_id": made.bundle_id, "entries": made.entries,
                  "size_bytes": made.path.stat().st_size, "manifest_copy": str(made.manifest_copy),
                  "next": [f"python3 edgenas_device_runner.py run {made.path.name} --out results.json",
                           "edgenas tables import results.json"]}
        emit(result, as_json, lambda r: console.print(
            f"wrote {r['bundle']}: {r['entries']} {r['backend']} models for {r['device']} ({r['threads']} thread(s), "
            f"batch {','.join(map(str, r['batches']))}), bundle {r['bundle_id']}, {r['size_bytes'] / 1e6:.1f} MB\n"
            f"on the device:  {r['next'][0]}\n"
            f"  (Android without Python: sh android_benchmark.sh {Path(r['bundle']).name} ./benchmark_model)\n"
            f"then here:      {r['next'][1]}"))
        return
    imp = report.imported
    result = {"device": prof.name, "backend": be.name, "host": report.host, "remote_python": report.remote_python,
              "python_version": report.python_version, "bundle_id": report.bundle_id,
              "runtime_version": imp.runtime_version, "threads": be.threads, "batches": batches,
              "imported": imp.imported, "table": str(imp.table), "table_entries": imp.table_entries,
              "run_id": imp.run_id, "results_copy": str(report.results_copy), "warnings": imp.warnings,
              "notes": report.notes}
    for w in imp.warnings:
        err_console.print(f"[yellow]warning: {w}[/yellow]")

    def render(r):
        console.print(f"{r['host']} ({r['runtime_version']}, Python {r['python_version']}): measured {r['imported']} "
                      f"entries of bundle {r['bundle_id']} -> {r['table']} ({r['table_entries']} entries in all)")
        for n in r["notes"]:
            console.print(n)

    emit(result, as_json, render)


def _on_event(bar, be):
    """One bar per backend; it restarts when the run goes from converting models to measuring them
    (they count different things), so the ETA column estimates the phase at hand."""
    task = bar.add_task(f"{be.name} t{be.threads}", total=None, detail="")
    phase = {"convert": None}

    def on_event(ev):
        converting = ev.phase == "convert"
        if phase["convert"] is not None and converting != phase["convert"]:
            bar.reset(task)
        phase["convert"] = converting
        bar.update(task, total=ev.total, completed=ev.done, detail=f"b{ev.batch} {ev.phase} {ev.key}"[:70])

    return on_event
