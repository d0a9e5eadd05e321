"""The millisecond scale of a table: the reference op's time in the device's quiet state.

Every entry edgenas measures is stored as ``ref_ratio``, its time over a reference op timed
right before it, which cancels the host's drift (see ``profiling/protocol.py``). Milliseconds
are ``ref_ratio x anchor``, so the anchor alone decides whether a prediction means what a user
means by "0.33 ms": what the runtime's own benchmark tool shows on the prepared, quiet device
(performance governor, nothing else running), the state every benchmark tool assumes.

Why not the reference's median (what edgenas used until 2026-11-30): the median is the state the
host happened to be in while a table was built. The shipped x86-64 tables were built on a busy
host whose reference median (0.0495 ms) sat 1.56x above the fastest steady phase of the same
chunks (0.0317 ms p10); and VMs of one kind differ far more than that (an Intel VM of this kind
ran the same reference op at 0.017 ms). A user's ``--target-ms`` was silently 1.5-2.9x off.

The estimate: every session that times the reference (a profile chunk, a calibrate / verify /
export-gate / search measurement, ``edgenas tables check``, or the automatic check below) yields
one :class:`AnchorObservation`: the 10th percentile of its reference block medians, i.e. the
fastest phase the host held for at least a tenth of the session, plus how much CPU other
processes used meanwhile. Sessions disagree by process (this VM kind runs up to 1.5x faster or
slower from one process to the next) and by load; the anchor is the **fastest session seen on
this host**, the figure "the fastest of a few fresh processes" gives, which is what a plain
runtime timing on a quiet device gives (with four or more sessions, their 25th percentile: the
expected fastest of three processes, which does not creep down as sessions accumulate). The
spread of the sessions says how sure it is.

Where observations live:
- a table's own build sessions are in its ``.meta.json`` run records (per chunk: reference p10,
  p50, p90, other processes' load, host id), so a table carries its device's quiet scale;
- sessions on this machine after the build are kept per machine in the cache
  (``<cache>/anchors.json``, keyed by backend, runtime, precision, threads, batch), since the
  reference's speed is a property of the machine and runtime, not of any table file.

For a device that is this machine, a table whose build ran elsewhere (another VM of the same
kind, or before a reboot) is re-anchored automatically: on first use edgenas times the reference
op in a few fresh processes (a few seconds, once per machine boot) and records them. A table
used for another device (a phone, a board) keeps the scale its own sessions recorded there;
``edgenas tables check`` re-anchors either on demand.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: an other-processes' CPU load (in cores) above this marks a session as taken on a busy host
BUSY_LOAD = 0.5
#: a session needs this many reference blocks for its 10th percentile to mean a steady phase
MIN_BLOCKS = 8
#: observations kept per key in the machine store (the newest)
KEEP = 64


# ---- host identity and load ---------------------------------------------------------------
def host_id() -> str:
    """This machine as booted now: a VM of the same kind, or this one after a reboot, is another host."""
    from edgenas.devices import _read, machine_facts

    boot = _read("/proc/sys/kernel/random/boot_id") or ""
    text = f"{boot}|{machine_facts().get('cpu_model')}|{os.uname().nodename}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _busy_jiffies() -> tuple[float, float] | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    vals = [float(x) for x in fields]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    return sum(vals[:8]) - idle, time.monotonic()


class LoadMeter:
    """CPU used by *other* processes between ``start`` and ``stop``, in cores (0 on a quiet host).

    Reads /proc/stat (all processes) and subtracts this process's own CPU time; NaN where
    /proc/stat is not readable (macOS, some phones).
    """

    def __init__(self):
        self._t0 = _busy_jiffies()
        self._own0 = sum(os.times()[:2])

    def stop(self) -> float:
        t1 = _busy_jiffies()
        if self._t0 is None or t1 is None:
            return float("nan")
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        wall = t1[1] - self._t0[1]
        if wall <= 0:
            return float("nan")
        others = (t1[0] - self._t0[0]) / hz - (sum(os.times()[:2]) - self._own0)
        return max(0.0, others / wall)


# ---- observations ------------------------------------------------------------------------
@dataclass
class AnchorObservation:
    fast_ms: float  # 10th percentile of the session's reference block medians
    median_ms: float
    blocks: int
    host: str
    source: str  # profile | calibrate | verify | gate | search | check | auto | import
    cpu_model: str = ""
    other_load: float = float("nan")  # other processes' CPU use meanwhile, in cores
    at: str = ""

    @property
    def busy(self) -> bool:
        return bool(self.other_load == self.other_load and self.other_load > BUSY_LOAD)


def observation(reference_block_ms, source: str, other_load: float = float("nan"),
                host: str | None = None) -> AnchorObservation | None:
    """One session's observation from its reference block medians (ms); None if too few blocks."""
    from edgenas.devices import machine_facts
    from edgenas.latency.table import now_iso

    r = np.asarray([x for x in reference_block_ms if x == x and x > 0], dtype=float)
    if len(r) < MIN_BLOCKS:
        return None
    return AnchorObservation(float(np.percentile(r, 10)), float(np.median(r)), int(len(r)), host or host_id(),
                             source, machine_facts().get("cpu_model") or "", float(other_load), now_iso())


def anchor_key(backend: str, runtime_version: str, precision: str, threads: int, batch: int) -> str:
    from edgenas.profiling.runner import REFERENCE_OP

    return f"{backend}|{runtime_version}|{precision}|t{threads}|b{batch}|{REFERENCE_OP.key}"


class AnchorStore:
    """Observations made on this machine, per backend/runtime/precision/threads/batch (``<cache>/anchors.json``)."""

    def __init__(self, path: Path | None = None):
        from edgenas.paths import cache_dir

        self.path = Path(path) if path else cache_dir() / "anchors.json"

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            obs = data.get("observations", {}) if isinstance(data, dict) else {}
            return obs if isinstance(obs, dict) else {}
        except (OSError, json.JSONDecodeError):
            return {}  # a cache: unreadable means empty, never an error

    def get(self, key: str) -> list[AnchorObservation]:
        out = []
        for d in self._read().get(key, []):
            try:
                o = AnchorObservation(**d)
            except TypeError:
                continue
            if o.fast_ms == o.fast_ms and o.fast_ms > 0:
                out.append(o)
        return out

    def add(self, key: str, obs: list[AnchorObservation]) -> None:
        from edgenas.io import atomic_write_text, locked

        obs = [o for o in obs if o is not None]
        if not obs:
            return
        with locked(self.path):  # re-read under the lock: concurrent writers lose nothing
            allo = self._read()
            allo[key] = (allo.get(key, []) + [asdict(o) for o in obs])[-KEEP:]
            atomic_write_text(self.path, json.dumps({"format": "edgenas.anchors", "version": 1,
                                                     "observations": allo}, indent=1) + "\n")


def record(backend, batch: int, reference_block_ms, source: str, other_load: float = float("nan")) -> None:
    """Add one session's observation for ``backend`` (a Backend) on this machine; never raises."""
    try:
        o = observation(reference_block_ms, source, other_load)
        if o is not None:
            AnchorStore().add(anchor_key(backend.name, backend.runtime_version(), backend.precision,
                                         backend.threads, batch), [o])
    except Exception:  # noqa: BLE001 - the scale cache must never break a measurement
        pass


# ---- observations a table carries -----------------------------------------------------------
def table_observations(table, sel) -> list[AnchorObservation]:
    """One observation per build/import run of the selected rows, from their meta run records.

    A run is one process: its chunks' reference 10th percentiles are combined by their median.
    """
    out = []
    rows = table.for_selection(sel).df
    for run_id in dict.fromkeys(rows["run_id"]):
        run = table.runs.get(run_id) if isinstance(table.runs, dict) else None
        if not isinstance(run, dict):
            continue
        env = run.get("environment") or run.get("device_facts") or {}
        chunks = [c for c in run.get("chunks") or [] if isinstance(c, dict) and int(c.get("batch", -1)) == sel.batch]
        p10s = [c["reference_ms_p10_p50_p90"] for c in chunks if len(c.get("reference_ms_p10_p50_p90") or []) == 3]
        if not p10s:
            continue
        loads = [c.get("other_load") for c in chunks if isinstance(c.get("other_load"), (int, float))]
        out.append(AnchorObservation(
            fast_ms=float(np.median([p[0] for p in p10s])), median_ms=float(np.median([p[1] for p in p10s])),
            blocks=sum(int(c.get("rounds", 0)) * int(c.get("entries", 0)) for c in chunks),
            host=str(env.get("host_id", "")), source=str(run.get("kind", "profile")),
            cpu_model=str(env.get("cpu_model") or ""),
            other_load=float(np.median(loads)) if loads else float("nan"),
            at=str(env.get("date") or env.get("started_at") or "")))
    return [o for o in out if o.fast_ms > 0]


# ---- the anchor ----------------------------------------------------------------------------
@dataclass
class Anchor:
    ms: float
    basis: str  # this-host | table | rows-median
    sessions: int
    spread: float  # (median session / fastest session) - 1: how far a typical process sits above it
    note: str
    observations: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {"anchor_ms": self.ms, "basis": self.basis, "sessions": self.sessions, "spread": self.spread,
                "note": self.note}


#: the anchor is this quantile of the sessions' estimates: the expected fastest of 3 fresh processes
#: (the minimum of 3 draws sits at about the 25th percentile), stable as sessions accumulate, where
#: the minimum of all sessions would creep down with every new one
SESSION_QUANTILE = 25


def _fastest(obs: list[AnchorObservation]) -> tuple[float, float]:
    quiet = [o for o in obs if not o.busy] or obs
    fast = np.array([o.fast_ms for o in quiet])
    best = float(fast.min() if len(fast) < 4 else np.percentile(fast, SESSION_QUANTILE))
    return best, float(np.median(fast) / best - 1)


def resolve(table, sel, local: bool, auto: bool = True, store: AnchorStore | None = None,
            processes: int = 3) -> Anchor:
    """The quiet-state reference time for ``sel`` (see the module doc for the rule)."""
    built = table_observations(table, sel)
    rows = table.for_selection(sel).df
    rv = sel.runtime_version or (rows["runtime_version"].iloc[0] if len(rows) else "")
    if local:
        store = store or AnchorStore()
        key = anchor_key(sel.backend, rv, sel.precision, sel.threads, sel.batch)
        me = host_id()
        here = [o for o in built + store.get(key) if o.host == me]
        if auto and not here:
            here += measure_fresh(sel.backend, sel.threads, sel.batch, sel.precision, processes, store, key)
        if here:
            ms, spread = _fastest(here)
            busy = all(o.busy for o in here)
            note = (f"quiet-state scale of this machine: reference op {ms:.4f} ms, the fast end of {len(here)} "
                    f"session(s) here (a typical process sits {100 * spread:.0f}% above it)"
                    + ("; every session here ran on a busy host: re-check on a quiet one (edgenas tables check)"
                       if busy else "") + _other_cpu(built))
            return Anchor(ms, "this-host", len(here), spread, note, here)
    if built:
        ms, spread = _fastest(built)
        where = built[0].cpu_model or "the device"
        dates = sorted(o.at[:10] for o in built if o.at)
        note = (f"quiet-state scale from the table's own {len(built)} session(s) on {where}"
                f"{' (' + dates[0] + ')' if dates else ''}: reference op {ms:.4f} ms"
                + ("" if not local else "; not checked on this machine (edgenas tables check)"))
        return Anchor(ms, "table", len(built), spread, note, built)
    ms = float(rows["ref_ms"].median()) if len(rows) else float("nan")
    return Anchor(ms, "rows-median", 0, float("nan"),
                  f"scale from the median reference time of the table's rows ({ms:.4f} ms): no session records "
                  f"to find the quiet state in; edgenas tables check re-anchors it", [])


def _other_cpu(built: list[AnchorObservation]) -> str:
    """A warning when the table's op ratios were measured on another CPU model than this one."""
    from edgenas.devices import machine_facts

    mine = machine_facts().get("cpu_model") or ""
    theirs = sorted({o.cpu_model for o in built if o.cpu_model and o.cpu_model != mine})
    if not theirs:
        return ""
    return (f"; the table's op ratios were measured on {', '.join(theirs)}, this machine is {mine or 'unknown'}: "
            f"ratios can differ between CPUs (edgenas tables check measures it; edgenas calibrate here corrects "
            f"most of it, edgenas profile --overwrite all of it)")


# ---- measuring the reference in fresh processes ----------------------------------------------
def measure_fresh(backend: str, threads: int, batch: int, precision: str = "fp32", processes: int = 3,
                  store: AnchorStore | None = None, key: str | None = None, seconds: float = 0.6,
                  source: str = "auto") -> list[AnchorObservation]:
    """Time the reference op in ``processes`` fresh processes; record and return their observations.

    Fresh processes because this VM kind's speed differs between processes by up to 1.5x; the
    fastest of a few is what a plain runtime timing on a quiet device gives.
    """
    out = []
    for _ in range(max(1, processes)):
        cmd = [sys.executable, "-m", "edgenas.latency.anchor", backend, str(threads), str(batch), precision,
               str(seconds), source]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            d = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
            d = None
        if d:
            out.append(AnchorObservation(**d))
    if out and store is not None and key is not None:
        store.add(key, out)
    return out


def _measure_here(backend: str, threads: int, batch: int, precision: str, seconds: float,
                  source: str) -> AnchorObservation | None:
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.protocol import ProtocolSettings, block_size, warm_up
    from edgenas.profiling.runner import REFERENCE_OP, prepare_op

    be = create_backend(backend, threads=threads, precision=precision)
    timer = prepare_op(be, REFERENCE_OP, batch)
    try:
        settings = ProtocolSettings()
        calls = block_size(warm_up(timer, settings), settings)
        meter, blocks, start = LoadMeter(), [], time.perf_counter()
        while len(blocks) < 2 * MIN_BLOCKS or time.perf_counter() - start < seconds:
            blocks.append(float(np.median(timer.time_block(calls))) * 1e3)
            if len(blocks) > 2000:
                break
        return observation(blocks, source, meter.stop())
    finally:
        timer.close()


if __name__ == "__main__":  # one fresh-process measurement: python -m edgenas.latency.anchor B T N P S SRC
    b, t, n, p, s, src = sys.argv[1:7]
    o = _measure_here(b, int(t), int(n), p, float(s), src)
    print(json.dumps(asdict(o) if o else None))
