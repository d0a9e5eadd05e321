"""Latency prediction from a table: the op sum, corrected by what whole networks show.

An op exported and run alone carries costs its network does not (layout reorders, boundary
transposes, no fusion with its neighbours, a session call per op), and the network has costs no
op has (dispatch between ops, the adds and concats of cells). Measured here: a plain sum
overpredicts about 2x on onnxruntime and 1.5x on TFLite. So the prediction is

    predicted = a * S + b + c * K

with S the sum of the table's op latencies and K the number of ops that execute, fitted on a
few measured whole networks per (device, backend, batch, threads, precision, space config) and
stored beside the table (``<backend>.calibration.json``) with its fit error and sample count.
Without a calibration the plain sum is returned and flagged as uncalibrated.

Units: tables measured by edgenas carry ``ref_ratio`` (op time / paired reference op time). The
predictor uses ``ref_ratio * anchor_ms``, the anchor being the reference op's time in the
device's quiet state (``latency/anchor.py``): the milliseconds a plain runtime timing shows on
the prepared device, whatever state the host was in while the table was built. A calibration
is fitted on that scale and remembers the anchor it was fitted with; when the anchor moves (a
quieter session, another machine of the device's kind), the fit's ms terms move with it, so
the calibration holds in reference units. Published tables without a reference use their
median (or mean) directly.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgenas.errors import InputError
from edgenas.io import atomic_write_text, locked
from edgenas.latency.anchor import Anchor, resolve as resolve_anchor
from edgenas.latency.store import TableStore
from edgenas.latency.table import LatencyTable, TableSelection, table_miss
from edgenas.ops.registry import is_zero_cost
from edgenas.ops.spec import OpSpec


@dataclass
class Calibration:
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    model: str = "identity"  # identity | scale+offset | scale+offset+per-op
    n_networks: int = 0
    fit_mape: float = float("nan")  # leave-one-out MAPE of the chosen model on its training networks
    fit_within_10pct: float = float("nan")
    fitted_at: str = ""
    arch_ids: list = field(default_factory=list)  # the calibration networks: never scored by verify
    runtime_version: str = ""
    anchor_ms: float = float("nan")  # the ms scale of ref_ratio values the fit used (kept fixed after)
    truth: str = "protocol"  # what the fit's networks were timed with: protocol (paired) or plain (runtime alone)

    @property
    def calibrated(self) -> bool:
        return self.model != "identity"

    def apply(self, s, k, scale: float = 1.0):
        """Predicted ms from the op sum ``s`` (ms) and op count ``k``; ``scale`` = anchor now / anchor at fit."""
        return self.a * s + scale * (self.b + self.c * k)


def calibration_key(space, sel: TableSelection) -> str:
    cfg = json.dumps(space.config_dict(), sort_keys=True)
    import hashlib

    return (f"{space.name}:{getattr(space, 'preset', None) or 'custom'}:{hashlib.sha256(cfg.encode()).hexdigest()[:8]}"
            f"|b{sel.batch}|t{sel.threads}|{sel.precision}")


class CalibrationStore:
    """``<tables>/<device>/<backend>.calibration.json``: one entry per calibration key."""

    def __init__(self, store: TableStore):
        self.store = store

    def path(self, device: str, backend: str) -> Path:
        return self.store.path(device, backend).with_suffix(".calibration.json")

    def load_all(self, device: str, backend: str) -> dict:
        p = self.store.readable(self.path(device, backend))
        if not p.exists():
            return {}
        from edgenas.schemas import CalibrationFile, load_json_file, validate

        fix = f"delete it and run edgenas calibrate --device {device} --backend {backend} again"
        data = validate(CalibrationFile, load_json_file(p, "calibration file", fix), f"calibration file {p}", fix)
        return {k: v.model_dump() for k, v in data.calibrations.items()}

    def get(self, device, backend, key) -> Calibration | None:
        d = self.load_all(device, backend).get(key)
        return Calibration(**d) if d else None

    def put(self, device, backend, key, cal: Calibration) -> Path:
        p = self.path(device, backend)
        with locked(p):  # re-read under the lock: a concurrent calibration of another key is kept
            allc = self.load_all(device, backend)
            allc[key] = asdict(cal)
            atomic_write_text(p, json.dumps({"format": "edgenas.calibration", "version": 1, "calibrations": allc},
                                            indent=2, default=float) + "\n")
        return p


@dataclass
class Prediction:
    predicted_ms: float
    sum_ms: float
    ops_executed: int
    calibrated: bool
    breakdown: list[dict]  # per op key: count, ms each, ms total

    def as_dict(self) -> dict:
        return asdict(self)


class LatencyPredictor:
    def __init__(self, table: LatencyTable, sel: TableSelection, calibration: Calibration | None = None,
                 profile_hint: str = "", anchor: Anchor | None = None):
        self.sel = sel
        self.table = table.for_selection(sel)
        if not len(self.table):
            raise table_miss(["(the whole table)"], sel, profile_hint)
        self.calibration = calibration or Calibration()
        self.profile_hint = profile_hint
        df = self.table.df
        self.uses_reference = bool(df["ref_ratio"].notna().all())
        if self.uses_reference:
            self.anchor = anchor or resolve_anchor(table, sel, local=False)
            self.anchor_ms = self.anchor.ms
            values = df["ref_ratio"].to_numpy() * self.anchor_ms
        else:
            self.anchor = None
            self.anchor_ms = float("nan")
            values = df["median_ms"].where(df["median_ms"].notna(), df["mean_ms"]).to_numpy()
        self._ms = dict(zip(df["op_key"], values.astype(float)))

    @property
    def calibration_scale(self) -> float:
        """Anchor now / anchor the calibration was fitted with (1 when either is unknown)."""
        fitted = self.calibration.anchor_ms
        if self.uses_reference and fitted == fitted and fitted > 0:
            return self.anchor_ms / fitted
        return 1.0

    @property
    def scale_note(self) -> str:
        return self.anchor.note if self.anchor is not None else "table values as published (no reference op)"

    @classmethod
    def load(cls, device: str, backend: str, space=None, batch: int = 1, threads: int | None = None,
             precision: str = "fp32", store: TableStore | None = None, auto_anchor: bool = True) -> "LatencyPredictor":
        """The predictor for a device's table; ``auto_anchor``: on this machine, time the reference op in fresh
        processes when no session here has (see ``latency/anchor.py``)."""
        from edgenas.devices import get_profile

        store = store or TableStore()
        if threads is None:
            from edgenas.paths import profiles_root

            try:
                threads = get_profile(device).threads_for(backend)
            except InputError:
                if (profiles_root() / f"{device}.yaml").exists():
                    raise  # a profile that is there but invalid is an error, not "1 thread"
                threads = 1
        sel = TableSelection(device, backend, precision, threads, batch)
        table = store.load(device, backend, missing_ok=False)
        cal = CalibrationStore(store).get(device, backend, calibration_key(space, sel)) if space is not None else None
        hint = ""
        if space is not None:
            hint = (f"edgenas profile --device {device} --backend {backend} --space {space.name} "
                    f"--preset {getattr(space, 'preset', None) or 'small'} --batch {batch} --threads {threads}"
                    + (f" --precision {precision}" if precision != "fp32" else "") + " --resume")
        anchor, selected = None, table.for_selection(sel).df
        if len(selected) and selected["ref_ratio"].notna().all():
            anchor = resolve_anchor(table, sel, local=_is_this_machine(device), auto=auto_anchor)
        return cls(table, sel, cal, hint, anchor)

    # ---- values -------------------------------------------------------------------------
    def op_ms(self, specs) -> dict[str, float]:
        """ms per op key for every spec; zero-cost ops are 0; a miss raises TableMissError."""
        out, missing = {}, []
        for s in specs:
            if s.key in out:
                continue
            if is_zero_cost(s):
                out[s.key] = 0.0
            elif s.key in self._ms and not math.isnan(self._ms[s.key]):
                out[s.key] = self._ms[s.key]
            else:
                missing.append(s.key)
        if missing:
            raise table_miss(list(dict.fromkeys(missing)), self.sel, self.profile_hint)
        return out

    def features(self, specs: list[OpSpec]) -> tuple[float, int]:
        """(S, K): sum of op latencies and number of executed (non-zero-cost) ops."""
        ms = self.op_ms(specs)
        return sum(ms[s.key] for s in specs), sum(1 for s in specs if not is_zero_cost(s))

    def predict(self, space, arch) -> Prediction:
        specs = space.op_specs(arch)
        ms = self.op_ms(specs)
        s, k = self.features(specs)
        counts: dict[str, int] = {}
        for sp in specs:
            counts[sp.key] = counts.get(sp.key, 0) + 1
        breakdown = sorted(({"op_key": key, "count": n, "ms_each": ms[key], "ms_total": ms[key] * n}
                            for key, n in counts.items()), key=lambda r: -r["ms_total"])
        return Prediction(self.calibration.apply(s, k, self.calibration_scale), s, k, self.calibration.calibrated,
                          breakdown)

    def measured_ms(self, ref_ratio: float, median_ms: float) -> float:
        """A whole network's measurement on the predictor's scale (drift-corrected when possible)."""
        return ref_ratio * self.anchor_ms if self.uses_reference and not math.isnan(ref_ratio) else median_ms


def _is_this_machine(device: str) -> bool:
    from edgenas.devices import get_profile

    try:
        return get_profile(device).matches_this_machine()[0]
    except InputError:
        return False


def fit_calibration(features: list[tuple[float, int]], measured: list[float], arch_ids=(), runtime_version="",
                    anchor_ms: float = float("nan")) -> Calibration:
    """Choose and fit the correction by leave-one-out error on the calibration networks.

    Candidates: measured = a*S + b, and a*S + b + c*K. Fitted in relative terms (weights 1/y), so
    small and large networks count alike, which is what '% within 10%' scores.
    """
    from edgenas.latency.table import now_iso

    s = np.array([f[0] for f in features], dtype=float)
    k = np.array([f[1] for f in features], dtype=float)
    y = np.array(measured, dtype=float)
    if len(y) < 3:
        raise InputError(f"calibration needs at least 3 measured networks, got {len(y)}")
    candidates = {"scale+offset": np.column_stack([s, np.ones_like(s)])}
    if len(y) >= 6 and np.ptp(k) > 0:
        candidates["scale+offset+per-op"] = np.column_stack([s, np.ones_like(s), k])
    best = None
    for name, x in candidates.items():
        loo = []
        for i in range(len(y)):
            m = np.ones(len(y), bool)
            m[i] = False
            coef = _wls(x[m], y[m])
            loo.append(abs(x[i] @ coef - y[i]) / y[i])
        loo = np.array(loo)
        score = float(loo.mean())
        if best is None or score < best[1] - 0.002:  # prefer the smaller model unless clearly better
            best = (name, score, loo)
    name, score, loo = best
    coef = _wls(candidates[name], y)
    a, b = float(coef[0]), float(coef[1])
    c = float(coef[2]) if len(coef) > 2 else 0.0
    return Calibration(a=a, b=b, c=c, model=name, n_networks=len(y), fit_mape=score,
                       fit_within_10pct=float((loo <= 0.10).mean()), fitted_at=now_iso(),
                       arch_ids=list(arch_ids), runtime_version=runtime_version, anchor_ms=anchor_ms)


def _wls(x, y):
    w = 1.0 / y
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return coef
