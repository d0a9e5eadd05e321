"""``edgenas profile --fleet fleet.yaml``: profile many devices, each where it is, into the checked tables.

Every device's missing entries are cut into bundles of ``chunk`` entries (converted here, as for
``--bundle``). Each bundle runs where its device is:

- ``local``: this machine is the device; the bundle's own runner runs here, one bundle at a time;
- ``ssh``: over SSH, as ``profile --host`` does (``edgenas.profiling.ssh``);
- ``ray``: a task holding the Ray resource ``device:<name>``, so it runs on the node started with
  that resource and never beside another measurement of the device.

Each results file is imported here through the checked, all-or-nothing import as soon as it
arrives, under one lock. A bundle whose node or board is lost is retried by Ray on another node
holding the device when there is one, else reported with its entries; a rerun measures only what
the tables still lack, so nothing is imported twice and nothing is imported half.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

from pydantic import Field

from edgenas.errors import EdgeNASError, InputError, MeasurementError
from edgenas.executors import Executor, LocalExecutor, Resources
from edgenas.schemas import _Strict, load_yaml_text, validate

RUNNER_TIMEOUT_S = 3600


class FleetDevice(_Strict):
    name: str = Field(min_length=1, max_length=100)
    backend: Literal["onnxruntime", "tflite"]
    reach: Literal["local", "ssh", "ray"]
    threads: Optional[int] = Field(None, ge=1, le=1024)
    host: Optional[str] = Field(None, min_length=3, max_length=300)  # USER@HOST, ssh only
    ssh_port: Optional[int] = Field(None, ge=1, le=65535)
    identity: Optional[str] = None
    known_hosts: Optional[str] = None
    remote_python: str = "python3"


class FleetFile(_Strict):
    space: list[str] = ["darts", "proxyless"]
    preset: str = "small"
    ops: Optional[list[str]] = None  # op keys instead of the spaces' ops
    limit: Optional[int] = Field(None, ge=1)  # the first N op instances only (smoke runs)
    batch: list[int] = Field([1], min_length=1)
    quick: bool = False
    chunk: int = Field(12, ge=1, le=100000)  # entries per bundle: the unit that is retried or reported
    devices: list[FleetDevice] = Field(min_length=1)


def load_fleet(path: Path) -> FleetFile:
    """A validated fleet file; one InputError line naming the file and field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"fleet file {path} not found")
    fix = "see docs/scaling.md for the fleet.yaml format"
    fleet = validate(FleetFile, load_yaml_text(path.read_text(errors="replace"), str(path), fix), str(path), fix)
    for d in fleet.devices:
        if (d.reach == "ssh") != (d.host is not None):
            raise InputError(f"{path}: device {d.name}: 'host: USER@HOST' goes with reach: ssh, and only with it")
    names = [(d.name, d.backend) for d in fleet.devices]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: a device and backend are listed twice; each is profiled once")
    if any(b < 1 or b > 65536 for b in fleet.batch):
        raise InputError(f"{path}: batch sizes must be 1..65536")
    return fleet


@dataclass
class BundleTask:
    """One bundle to run where its device is: the zip's bytes travel with the task."""

    device: str
    bundle_id: str
    data: bytes


def run_bundle(task: BundleTask) -> bytes:
    """Run a bundle with the runner it carries, in this machine's Python; the results file's bytes."""
    from edgenas.profiling.bundle import RUNNER

    with tempfile.TemporaryDirectory(prefix="edgenas-fleet-") as tmp:
        z = Path(tmp) / "bundle.zip"
        z.write_bytes(task.data)
        with zipfile.ZipFile(z) as zf:
            (Path(tmp) / RUNNER).write_bytes(zf.read(RUNNER))
        out = Path(tmp) / "results.json"
        p = subprocess.run([sys.executable, RUNNER, "run", str(z), "--out", str(out), "--quiet"], cwd=tmp,
                           capture_output=True, text=True, timeout=RUNNER_TIMEOUT_S)
        if p.returncode != 0 or not out.exists():
            last = (p.stderr.strip().splitlines() or ["no message"])[-1]
            raise MeasurementError(f"the runner failed on bundle {task.bundle_id[:8]} of {task.device} "
                                   f"(exit {p.returncode}): {last[:200]}")
        return out.read_bytes()


@dataclass
class DeviceOutcome:
    device: str
    backend: str
    reach: str
    planned: int = 0
    imported: int = 0
    already_present: int = 0
    table: str = ""
    missing: list[str] = field(default_factory=list)  # op@bBATCH entries not measured
    errors: list[str] = field(default_factory=list)


@dataclass
class _Chunk:
    dev: FleetDevice
    specs: list
    bundle: object = None  # edgenas.profiling.bundle.Bundle once built


def _specs(fleet: FleetFile) -> list:
    from edgenas.ops.spec import OpSpec
    from edgenas.profiling.runner import space_specs

    specs = [OpSpec.from_key(k) for k in fleet.ops] if fleet.ops else space_specs(fleet.space, fleet.preset)
    return specs[:fleet.limit] if fleet.limit else specs


def run_fleet(fleet: FleetFile, store, executor: Executor | None = None, command: str = "",
              on_event: Callable[[str], None] | None = None) -> list[DeviceOutcome]:
    """Profile every device of ``fleet`` where it is; one outcome per device (missing entries listed)."""
    from edgenas.devices import get_profile
    from edgenas.latency.table import TableSelection
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.bundle import build_bundle, check_bundle_backend
    from edgenas.profiling.protocol import ProtocolSettings
    from edgenas.profiling.runner import check_local_device

    executor = executor or LocalExecutor()
    say = on_event or (lambda msg: None)
    settings = ProtocolSettings.quick() if fleet.quick else ProtocolSettings()
    all_specs = _specs(fleet)
    outcomes: dict[str, DeviceOutcome] = {}
    chunks: list[_Chunk] = []
    backends = {}
    for d in fleet.devices:  # every check before anything is converted or run
        prof = get_profile(d.name)
        check_bundle_backend(prof, d.backend)
        if d.reach == "local":
            check_local_device(prof)
        if d.reach == "ray" and executor.name != "ray":
            raise InputError(f"device {d.name} is reached through Ray: add --executor ray [--ray-address HEAD]")
        if d.reach == "ssh" and "ssh" not in prof.reach:
            raise InputError(f"{prof.name} is not reached over SSH (reach: {', '.join(prof.reach)})")
        be = create_backend(d.backend, threads=d.threads or prof.threads_for(d.backend))
        backends[d.name, d.backend] = (prof, be)
        table = store.load(prof.name, be.name)
        sels = [TableSelection(prof.name, be.name, be.precision, be.threads, b) for b in fleet.batch]
        todo = [s for s in all_specs if any(table.missing([s], sel) for sel in sels)]
        key = f"{d.name}/{d.backend}"
        outcomes[key] = DeviceOutcome(d.name, d.backend, d.reach, planned=len(todo),
                                      already_present=len(all_specs) - len(todo), table=str(store.path(prof.name,
                                                                                                        be.name)))
        chunks += [_Chunk(d, todo[i:i + fleet.chunk]) for i in range(0, len(todo), fleet.chunk)]
    lock = threading.Lock()
    tmp = tempfile.TemporaryDirectory(prefix="edgenas-fleet-")
    root = Path(tmp.name)

    def lose(c: _Chunk, why: str) -> None:
        o = outcomes[f"{c.dev.name}/{c.dev.backend}"]
        with lock:
            o.missing += [f"{s.key}@b{b}" for b in fleet.batch for s in c.specs]
            o.errors.append(why)
        say(f"{c.dev.name}: {len(c.specs)} op(s) not measured: {why}")

    def credit(c: _Chunk, n: int) -> None:
        with lock:
            outcomes[f"{c.dev.name}/{c.dev.backend}"].imported += n

    def land(c: _Chunk, results: bytes) -> None:
        """Import one bundle's results (checked, all or nothing), under the lock."""
        from edgenas.io import atomic_write_bytes
        from edgenas.paths import cache_dir
        from edgenas.profiling.results_import import import_results

        copy = Path(cache_dir()) / "fleet-results" / f"{c.bundle.bundle_id}.json"
        atomic_write_bytes(copy, results)  # kept, so a rejected import can be inspected
        prof, be = backends[c.dev.name, c.dev.backend]
        with lock:
            rep = import_results(copy, store, bundle=c.bundle.path, command=command)
            outcomes[f"{c.dev.name}/{c.dev.backend}"].imported += rep.imported
            table = store.load(prof.name, be.name)
        say(f"{c.dev.name}: imported {rep.imported} entries of bundle {c.bundle.bundle_id[:8]}")
        left = [s for s in c.specs if any(table.missing([s], TableSelection(prof.name, be.name, be.precision,
                                                                            be.threads, b)) for b in fleet.batch)]
        if left:  # a partial results file (the runner stopped early): its imported rows stay, the rest is reported
            lose(_Chunk(c.dev, left), f"bundle {c.bundle.bundle_id[:8]} came back partial")

    try:
        for k, c in enumerate(chunks):
            if c.dev.reach != "ssh":  # ssh bundles are built by profile_over_ssh beside the board
                prof, be = backends[c.dev.name, c.dev.backend]
                c.bundle = build_bundle(prof, be, c.specs, fleet.batch, root / f"{k:04d}-{prof.name}.zip", settings,
                                        store=store, chunk_size=fleet.chunk)
        here = [c for c in chunks if c.dev.reach in ("local", "ssh")]
        remote = [c for c in chunks if c.dev.reach == "ray"]
        with ThreadPoolExecutor(max_workers=1) as pool:  # local and SSH devices while Ray runs the rest
            fut = pool.submit(_run_here, here, fleet, backends, store, settings, command, land, lose, credit, lock)
            tasks = [BundleTask(c.dev.name, c.bundle.bundle_id, c.bundle.path.read_bytes()) for c in remote]
            for d in executor.run(run_bundle, tasks, lambda t: Resources(num_cpus=1, device=t.device)):
                c = remote[d.index]
                if d.ok:
                    _land_or_lose(land, lose, c, d.value)
                else:
                    lose(c, str(d.error))
            fut.result()
    finally:
        tmp.cleanup()
    return list(outcomes.values())


def _land_or_lose(land, lose, c, results) -> None:
    try:
        land(c, results)
    except EdgeNASError as e:  # a rejected results file: nothing of it is in the table
        lose(c, f"import rejected: {e}")


def _run_here(chunks, fleet, backends, store, settings, command, land, lose, credit, lock) -> None:
    """Local devices: the bundle's runner in this machine's Python; SSH devices: each board, one bundle at a time."""
    from edgenas.profiling.ssh import SSHTarget, board, profile_over_ssh

    for c in [c for c in chunks if c.dev.reach == "local"]:
        try:
            _land_or_lose(land, lose, c, run_bundle(BundleTask(c.dev.name, c.bundle.bundle_id,
                                                               c.bundle.path.read_bytes())))
        except EdgeNASError as e:
            lose(c, str(e))
    by_dev: dict[str, list] = {}
    for c in chunks:
        if c.dev.reach == "ssh":
            by_dev.setdefault(f"{c.dev.name}/{c.dev.backend}", []).append(c)
    for cs in by_dev.values():
        d = cs[0].dev
        prof, be = backends[d.name, d.backend]
        try:
            target = SSHTarget(d.host, d.ssh_port, Path(d.identity) if d.identity else None,
                               Path(d.known_hosts) if d.known_hosts else None)
            with board(target, d.remote_python, be.name) as b:
                for c in cs:
                    try:
                        with lock:  # the import inside must not interleave with another one
                            rep = profile_over_ssh(b, prof, be, c.specs, fleet.batch, store, settings, command=command)
                        c.bundle = rep.bundle_id
                        credit(c, rep.imported.imported)
                    except EdgeNASError as e:
                        lose(c, str(e))
        except EdgeNASError as e:
            for c in cs:
                if c.bundle is None:
                    lose(c, str(e))
