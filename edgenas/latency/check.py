"""``edgenas tables check``: does a table's millisecond scale, and its shape, still hold here?

Two questions, answered separately because they have different fixes:
- **scale**: the reference op's quiet-state time here (fastest of a few fresh processes) against
  the one the table's own sessions recorded. A different machine of the same kind, a new
  runtime build, a thermal state: the whole table moves by one factor. Fix: re-anchor, which
  the check does by recording its sessions (``latency/anchor.py`` takes the fastest session seen
  on this host), or, for a phone or board, a fresh on-device run imported with ``tables import``.
- **shape**: a few entries re-measured here, paired with the reference as when the table was
  built; their ``ref_ratio`` against the table's. When ratios moved, no single factor fixes the
  table: rebuild it (``edgenas profile ... --overwrite``) and recalibrate.
For a device edgenas cannot run on, the check reads the on-device runner's ``results.json``,
whose chunks carry the reference's block statistics.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgenas.errors import InputError
from edgenas.latency import anchor as anchors

#: the scale and each entry's ratio "hold" within this
TOLERANCE = 0.10


@dataclass
class CheckReport:
    device: str
    backend: str
    batch: int
    threads: int
    table_anchor_ms: float
    table_note: str
    here_ms: float | None = None  # reference quiet-state time now (here, or in the results file)
    here_sessions: int = 0
    scale_ratio: float | None = None  # here / table
    scale_holds: bool | None = None
    entries: list = field(default_factory=list)
    shape_holds: bool | None = None
    anchor_now_ms: float | None = None  # what predictions use after this check
    verdict: str = ""
    advice: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def check_table(device: str, backend: str, batch: int = 1, threads: int | None = None, entries: int = 6,
                processes: int = 3, results: Path | None = None, store=None, seed: int = 0,
                quick: bool = False, precision: str = "fp32") -> CheckReport:
    from edgenas.devices import get_profile
    from edgenas.latency.store import TableStore
    from edgenas.latency.table import TableSelection

    prof = get_profile(device)
    store = store or TableStore()
    table = store.load(device, backend, missing_ok=False)
    threads = threads or prof.threads_for(backend)
    sel = TableSelection(device, backend, precision, threads, batch)
    rows = table.for_selection(sel).df
    if not len(rows):
        raise InputError(f"{store.path(device, backend)} has no {precision} entries for batch {batch}, "
                         f"{threads} thread(s)")
    if not rows["ref_ratio"].notna().all():
        raise InputError(f"{store.path(device, backend)} has no reference-paired entries (a published table): "
                         f"there is no scale to check")
    built = anchors.resolve(table, sel, local=False)
    rep = CheckReport(device, backend, batch, threads, built.ms, built.note)
    local = prof.matches_this_machine()[0]
    if results is not None:
        _from_results(rep, Path(results), batch)
    elif local:
        _measure_here(rep, table, sel, rows, entries, processes, seed, quick)
    else:
        raise InputError(f"{device} is not this machine: pass --results results.json from the on-device runner "
                         f"(edgenas profile --device {device} --bundle ...), or run the check on the device")
    if rep.here_ms:
        rep.scale_ratio = rep.here_ms / built.ms
        rep.scale_holds = abs(rep.scale_ratio - 1) <= TOLERANCE
    now = anchors.resolve(table, sel, local=local and results is None, auto=False)
    rep.anchor_now_ms = now.ms
    _verdict(rep, local and results is None)
    return rep


def _measure_here(rep, table, sel, rows, entries, processes, seed, quick):
    from edgenas.ops.spec import OpSpec
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.protocol import ProtocolSettings, measure
    from edgenas.profiling.runner import REFERENCE_OP, prepare_op

    key = anchors.anchor_key(sel.backend, rows["runtime_version"].iloc[0], sel.precision, sel.threads, sel.batch)
    obs = anchors.measure_fresh(sel.backend, sel.threads, sel.batch, sel.precision, processes, anchors.AnchorStore(),
                                key, source="check")
    if obs:
        rep.here_ms, rep.here_sessions = min(o.fast_ms for o in obs), len(obs)
    if entries <= 0:
        return
    be = create_backend(sel.backend, threads=sel.threads, precision=sel.precision)
    picked = rows.sample(min(entries, len(rows)), random_state=random.Random(seed).randrange(2 ** 31))
    timers = {}
    for r in picked.itertuples():
        timers[r.op_key] = prepare_op(be, OpSpec.from_key(r.op_key), sel.batch)
    reference = prepare_op(be, REFERENCE_OP, sel.batch)
    try:
        report = measure(timers, ProtocolSettings.quick() if quick else ProtocolSettings(), reference=reference)
    finally:
        for t in list(timers.values()) + [reference]:
            t.close()
    anchors.record(be, sel.batch, report.reference_ms, "check", report.other_load)
    for r in picked.itertuples():
        st = report.stats[r.op_key]
        rep.entries.append({"op_key": r.op_key, "table_ratio": float(r.ref_ratio), "here_ratio": st.ref_ratio,
                            "change": st.ref_ratio / float(r.ref_ratio) - 1, "here_rel_ci": st.rel_ci})
    changes = np.array([e["change"] for e in rep.entries])
    rep.shape_holds = bool(np.median(np.abs(changes)) <= TOLERANCE)


def _from_results(rep, path: Path, batch: int):
    from edgenas.schemas import load_json_file

    data = load_json_file(path, "results file", "pass results.json from tools/edgenas_device_runner.py")
    chunks = [c for c in (data.get("chunks") or []) if isinstance(data, dict) and isinstance(c, dict)
              and c.get("batch") in (batch, str(batch))] if isinstance(data, dict) else []
    p10 = [c["reference_ms_p10_p50_p90"][0] for c in chunks if isinstance(c.get("reference_ms_p10_p50_p90"), list)
           and len(c["reference_ms_p10_p50_p90"]) == 3 and isinstance(c["reference_ms_p10_p50_p90"][0], (int, float))
           and math.isfinite(c["reference_ms_p10_p50_p90"][0]) and c["reference_ms_p10_p50_p90"][0] > 0]
    if not p10:
        raise InputError(f"{path} has no reference statistics for batch {batch} (needs results.json from "
                         f"tools/edgenas_device_runner.py)")
    rep.here_ms, rep.here_sessions = float(np.median(p10)), 1


def _verdict(rep: CheckReport, local: bool):
    where = "this machine" if local else "the device's results"
    if rep.scale_holds:
        rep.verdict = (f"scale holds: reference {rep.here_ms:.4f} ms on {where} vs {rep.table_anchor_ms:.4f} ms "
                       f"in the table's sessions ({100 * (rep.scale_ratio - 1):+.0f}%)")
    elif rep.here_ms:
        faster = "faster" if rep.scale_ratio < 1 else "slower"
        rep.verdict = (f"scale moved: {where} runs the reference op {max(rep.scale_ratio, 1 / rep.scale_ratio):.2f}x "
                       f"{faster} ({rep.here_ms:.4f} ms) than the table's sessions ({rep.table_anchor_ms:.4f} ms)")
        if local:
            rep.advice.append(f"re-anchored: predictions on this machine now use {rep.anchor_now_ms:.4f} ms "
                              f"(the fastest session recorded here)")
        else:
            rep.advice.append("re-anchor by importing a fresh on-device run: edgenas tables import results.json")
    if rep.shape_holds is False:
        rep.advice.append(f"op ratios moved (median change {100 * np.median(np.abs([e['change'] for e in rep.entries])):.0f}%): "
                          f"rebuild the table (edgenas profile --device {rep.device} --backend {rep.backend} "
                          f"--batch {rep.batch} --overwrite) and recalibrate (edgenas calibrate)")
    elif rep.shape_holds:
        rep.advice.append(f"shape holds: {len(rep.entries)} re-measured entries' ratios within "
                          f"{100 * TOLERANCE:.0f}% of the table's (median)")
