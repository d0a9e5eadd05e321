"""Resumable table building: convert every op model first, then measure in chunks, saving after each.

Two phases. **Convert**: every artifact the run needs (each op instance at each batch size, and
the reference op) is written to the on-disk artifact cache, in a pool of worker processes
(``convert_artifacts``); converting is CPU-bound and nothing is timed meanwhile, because a busy
core ruins timings. **Measure**: chunk by chunk, the cached artifacts are loaded, measured with
the interleaved protocol against a reference op, and written atomically into the table before
the next chunk starts. An interrupted run therefore keeps every finished chunk and every
converted artifact; ``resume`` converts only what the cache lacks and measures only the op keys
the table lacks for this (device, backend, runtime, precision, threads, batch).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgenas import interrupt
from edgenas.devices import DeviceProfile
from edgenas.errors import DeviceError, InputError
from edgenas.latency.anchor import record as record_anchor
from edgenas.latency.store import TableStore
from edgenas.latency.table import TableSelection, rows_from_stats
from edgenas.ops.registry import ARTIFACT_VERSION, build_op, is_zero_cost
from edgenas.ops.spec import OpSpec
from edgenas.paths import cache_dir
from edgenas.profiling.base import Backend
from edgenas.profiling.environment import environment
from edgenas.profiling.protocol import ProtocolSettings, measure

#: timed right before every entry block (paired design); stored as ref_ms / ref_ratio
REFERENCE_OP = OpSpec.make("sep_conv_3x3", (14, 14, 32), (14, 14, 32), stride=1)


def nchw(spec: OpSpec, batch: int) -> tuple[int, int, int, int]:
    h, w, c = spec.in_shape
    return (batch, c, h, w)


def op_cache_key(spec: OpSpec) -> str:
    """Artifact cache key of an op model: shared by local profiling and bundles (same files)."""
    return f"op|v{ARTIFACT_VERSION}|{spec.key}"


def op_module(spec: OpSpec):
    """The eval-mode module of one op instance, tagged ``edgenas_op`` with its op kind.

    A backend may convert single ops of a kind with a faster converter proven exact for that
    kind (onnxruntime: ``edgenas.profiling.onnx_exporters``); whole networks carry no tag.
    """
    module = build_op(spec).eval()
    module.edgenas_op = spec.op
    return module


def prepare_op(backend: Backend, spec: OpSpec, batch: int, cache: Path | None = None):
    """A Timer for one op instance at a batch size (artifact cached by op key)."""
    return backend.prepare(op_module(spec), nchw(spec, batch), cache_dir=cache or cache_dir(),
                           cache_key=op_cache_key(spec))


@dataclass
class ProfileEvent:
    """Progress callbacks: phase is 'convert', 'measure' or 'saved'. In 'convert', done/total count
    artifacts and ``eta_s`` estimates the rest of the phase; otherwise they count op entries."""

    phase: str
    done: int
    total: int
    batch: int
    key: str = ""
    eta_s: float | None = None


def convert_artifacts(backend: Backend, jobs: list[tuple[OpSpec, int]], cache: Path | None = None,
                      workers: int | None = None,
                      on_event: Callable[[ProfileEvent], None] | None = None) -> dict:
    """Write the artifact of every (op spec, batch) the cache lacks, before anything is measured.

    Conversions run in ``workers`` spawned processes (default: one per CPU; 1 converts in this
    process, as it does for fewer than 4 models per worker): exporters are single-threaded Python,
    so a pool is the only way to use every core, and it must finish before measuring starts. An
    artifact the backend can make from another one of the run (``Backend.derived_from``: TFLite's
    batch-8 file from its batch-1 file) is made here as soon as that one is ready, and converted
    only where ``derive`` refuses. Each artifact lands in the cache atomically as it finishes, so an
    interrupted phase resumes with what is left. Returns counts, the workers used, the phase's time
    and which artifacts were derived (``derived_from``; the run record keeps it as their provenance).
    """
    start = time.perf_counter()
    cache = Path(cache or cache_dir())
    jobs = list(dict.fromkeys(jobs))

    def path(job):
        return backend.artifact_path(cache, op_cache_key(job[0]), nchw(*job))

    todo = [] if not backend.suffix else [j for j in jobs if not path(j).exists()]
    sources = {}  # derived job -> the job it is made from (one of this run, or cached)
    for spec, batch in todo:
        shape = backend.derived_from(spec.op, nchw(spec, batch))
        source = None if shape is None else (spec, shape[0])
        if source and nchw(*source) == tuple(shape) and (source in jobs or path(source).exists()):
            sources[(spec, batch)] = source
    convert = [j for j in todo if j not in sources]
    workers = max(1, min(workers or os.cpu_count() or 1, len(convert)))
    if len(convert) < 4 * workers:  # a worker's start (a fresh interpreter importing torch) takes seconds
        workers = 1
    done, derived = 0, []  # provenance: "op key|bB<-b1" for each artifact made without converting

    def finished(job) -> list:
        """Count ``job`` done; derive what waits on it; return the derived jobs that must convert."""
        nonlocal done
        done += 1
        if on_event:
            elapsed = time.perf_counter() - start
            on_event(ProfileEvent("convert", done, len(todo), job[1], job[0].key,
                                  eta_s=elapsed / done * (len(todo) - done)))
        return derive_from(job)

    def derive_from(job) -> list:
        refused = []
        for waiting in [j for j, src in sources.items() if src == job]:
            del sources[waiting]
            if backend.derive_artifact(nchw(*job), nchw(*waiting), cache, op_cache_key(waiting[0])):
                derived.append(f"{waiting[0].key}|b{waiting[1]}<-b{job[1]}")
                refused += finished(waiting)
            else:
                refused.append(waiting)
        return refused

    if todo and on_event:
        on_event(ProfileEvent("convert", 0, len(todo), todo[0][1], f"{len(todo)} models, {workers} workers"))
    for source in {src for src in sources.values() if src not in todo}:  # cached already
        convert += derive_from(source)
    if workers == 1:
        queue = list(convert)
        while queue:
            job = queue.pop(0)
            _convert_one(backend, *job, cache)
            interrupt.check()
            queue += finished(job)
    elif convert:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_quiet_worker)
        try:
            pending = {pool.submit(_convert_one, backend, *j, cache): j for j in convert}
            while pending:
                ready, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                interrupt.check()
                for f in ready:
                    f.result()  # a failed conversion fails the run here, as it would in-process
                    for j in finished(pending.pop(f)):
                        pending[pool.submit(_convert_one, backend, *j, cache)] = j
        finally:
            # on error or Ctrl-C: drop what has not started; conversions in flight finish their
            # atomic write (workers ignore SIGINT), so the cache holds no partial file
            pool.shutdown(wait=True, cancel_futures=True)
    return {"converted": len(todo) - len(derived), "derived": len(derived), "cached": len(jobs) - len(todo),
            "workers": workers, "elapsed_s": round(time.perf_counter() - start, 3), "derived_from": derived}


def _convert_one(backend: Backend, spec: OpSpec, batch: int, cache: Path) -> None:
    backend.artifact(op_module(spec), nchw(spec, batch), cache, op_cache_key(spec))


def _quiet_worker() -> None:
    """Conversion worker setup: Ctrl-C is the parent's to handle, converter chatter goes nowhere
    (failures still come back as exceptions through the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


@dataclass
class ProfileResult:
    table_path: Path
    measured: int = 0
    skipped_existing: int = 0
    elapsed_s: float = 0.0
    drift: list[float] = field(default_factory=list)
    run_id: str = ""
    per_batch: dict = field(default_factory=dict)
    convert_s: float = 0.0  # the conversion phase's share of elapsed_s


def check_local_device(device: DeviceProfile) -> None:
    """Refuse to profile hardware this is not, pointing at the flow that reaches it."""
    ok, why = device.matches_this_machine()
    if ok:
        return
    ways = []
    if "ssh" in device.reach:
        ways.append(f"over SSH: edgenas profile --device {device.name} --host USER@BOARD")
    if "bundle" in device.reach:
        ways.append(f"with an on-device bundle: edgenas profile --device {device.name} --bundle {device.name}.zip "
                    f"(then run tools/edgenas_device_runner.py on the device and edgenas tables import results.json)")
    if "published" in device.reach:
        ways.append(f"or use its published table (edgenas tables show --device {device.name})")
    hint = "; ".join(ways) if ways else "run edgenas on that device"
    raise DeviceError(f"this machine is not a {device.name} ({why}); profile it {hint}")


def profile_ops(device: DeviceProfile, backend: Backend, specs: list[OpSpec], batches: list[int],
                store: TableStore, resume: bool = False, overwrite: bool = False,
                settings: ProtocolSettings = ProtocolSettings(), chunk_size: int = 12,
                on_event: Callable[[ProfileEvent], None] | None = None, command: str = "",
                cache: Path | None = None, convert_workers: int | None = None) -> ProfileResult:
    """Measure every (non-zero-cost) spec at every batch size into the device's table for the backend.

    Every artifact is converted first (``convert_artifacts``, ``convert_workers`` processes), then
    the entries are measured chunk by chunk.
    """
    if backend.name not in device.backends:
        raise InputError(f"device {device.name} does not list backend {backend.name!r}; "
                         f"its backends: {', '.join(device.backends)} (edit {device.path} to add it)")
    start = time.perf_counter()
    table = store.load(device.name, backend.name)
    path = store.path(device.name, backend.name)
    runtime = backend.runtime_version()
    specs = [s for s in dict.fromkeys(specs) if not is_zero_cost(s)]
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    run = {"kind": "profile", "command": command, "environment": environment(), "backend": backend.describe(),
           "protocol": settings.as_dict(), "reference_op": REFERENCE_OP.key, "chunks": []}
    if backend.precision == "int8":  # what each op was calibrated on: the recipe and its value ranges
        run["calibration"] = backend.calibration_for(nchw(REFERENCE_OP, batches[0] if batches else 1)).describe()
    result = ProfileResult(path, run_id=run_id)

    plan = []
    for batch in batches:
        sel = TableSelection(device.name, backend.name, backend.precision, backend.threads, batch, runtime)
        existing = table.for_selection(sel)
        if len(existing) and not (resume or overwrite):
            raise InputError(f"{path} already has {len(existing)} entries for {sel.describe()}; "
                             f"add --resume to measure only the missing ones, or --overwrite to measure all again")
        todo = specs if overwrite else table.missing(specs, sel)
        result.skipped_existing += len(specs) - len(todo)
        result.per_batch[batch] = {"todo": len(todo), "existing": len(specs) - len(todo)}
        plan += [(batch, sel, todo[i:i + chunk_size]) for i in range(0, len(todo), chunk_size)]

    batches_todo = list(dict.fromkeys(batch for batch, _, _ in plan))
    jobs = [(REFERENCE_OP, b) for b in batches_todo] + [(s, batch) for batch, _, chunk in plan for s in chunk]
    run["conversion"] = convert_artifacts(backend, jobs, cache, convert_workers, on_event)
    result.convert_s = run["conversion"]["elapsed_s"]

    total = sum(len(chunk) for _, _, chunk in plan)
    done = 0
    for batch, sel, chunk in plan:
        timers = {}
        for spec in chunk:
            timers[spec.key] = prepare_op(backend, spec, batch, cache)  # cached by the convert phase: a load
            interrupt.check()
        reference = prepare_op(backend, REFERENCE_OP, batch, cache)
        interrupt.check()
        if on_event:
            on_event(ProfileEvent("measure", done, total, batch, f"{len(chunk)} ops"))
        report = measure(timers, settings, reference=reference)
        record_anchor(backend, batch, report.reference_ms, "profile", report.other_load)
        for t in list(timers.values()) + [reference]:
            t.close()
        rows = rows_from_stats(((s, report.stats[s.key].as_dict()) for s in chunk), sel, runtime, run_id)
        run["chunks"].append({"batch": batch, "entries": len(chunk), "rounds": report.rounds,
                              "elapsed_s": round(report.elapsed_s, 3), "drift": round(report.drift, 4),
                              "other_load": round(report.other_load, 3) if report.other_load == report.other_load
                              else None,
                              "reference_ms_p10_p50_p90": [round(float(x), 5) for x in
                                                            np.percentile(report.reference_ms, [10, 50, 90])]
                              if report.reference_ms else []})
        # re-read under the table's lock, so rows a concurrent writer added meanwhile are kept;
        # atomic: a kill after this loses nothing measured
        store.update(device.name, backend.name, lambda t: t.upsert(rows, {run_id: run}))
        result.drift.append(report.drift)
        done += len(chunk)
        result.measured += len(chunk)
        if on_event:
            on_event(ProfileEvent("saved", done, total, batch))
    result.elapsed_s = time.perf_counter() - start
    return result


def space_specs(space_names: list[str], preset: str | None, overrides: dict | None = None) -> list[OpSpec]:
    from edgenas.spaces import create_space

    specs: list[OpSpec] = []
    for name in space_names:
        specs += create_space(name, preset, **(overrides or {})).all_op_specs()
    return list(dict.fromkeys(specs))
