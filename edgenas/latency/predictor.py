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
    model: str = "identity"  # one of CALIBRATION_MODELS
    n_networks: int = 0
    fit_mape: float = float("nan")  # leave-one-out MAPE of the chosen model on its training networks
    fit_within_10pct: float = float("nan")
    fitted_at: str = ""
    arch_ids: list = field(default_factory=list)  # the calibration networks: never scored by verify
    runtime_version: str = ""
    anchor_ms: float = float("nan")  # the ms scale of ref_ratio values the fit used (kept fixed after)
    truth: str = "protocol"  # what the fit's networks were timed with: protocol (paired) or plain (runtime alone)
    cpu_model: str = ""  # the CPU it was fitted on, where the device is this machine kind (see calibration_key)
    type_scale: dict = field(default_factory=dict)  # scale+offset+per-type: op type -> multiplier of its op latencies
    key_scale: dict = field(default_factory=dict)  # scale+offset+per-key: op key -> multiplier of its op latency

    @property
    def calibrated(self) -> bool:
        return self.model != "identity"

    def weight(self, spec: OpSpec) -> float:
        """What one op's table latency counts for in ``s``: 1 but for the per-type and per-key models."""
        if spec.key in self.key_scale:
            return self.key_scale[spec.key]
        return self.type_scale.get(spec.op, 1.0)

    @property
    def weighted(self) -> bool:
        return bool(self.key_scale or self.type_scale)

    def apply(self, s, k, scale: float = 1.0):
        """Predicted ms from the (op-weighted) op sum ``s`` (ms) and op count ``k``; ``scale`` = anchor now /
        anchor at fit."""
        return self.a * s + scale * (self.b + self.c * k)


#: identity; a*S + b; a*S + b + c*K (K executed ops); a*sum_t m_t*S_t + b (S_t the op sum of op type t, m_t
#: shrunk toward 1): a runtime fuses some op types into their neighbours more than others (onnxruntime
#: folds a DARTS cell's ReLUs and adds into its convs, not its pools), which one scale cannot follow;
#: a*sum_k m_k*S_k + b per op key (m_k shrunk toward 1): some single ops cost in a network far from what
#: they cost alone (TFLite/XNNPACK's standalone 7x7 MBConvs at batch 8 run 1.6-10x their in-network time)
CALIBRATION_MODELS = ("identity", "scale+offset", "scale+offset+per-op", "scale+offset+per-type",
                      "scale+offset+per-key")

#: the per-key model is offered from this many calibration networks (TFLite proxyless b8, 2026-12-08: fitted
#: on random subsets of 50 measured networks and scored on the rest, 37% within ±10% from 10, 90% from 20,
#: 98% from 30; mean of 15 splits)
PER_KEY_MIN_NETWORKS = 20


def calibration_key(space, sel: TableSelection, cpu_model: str = "") -> str:
    """The key of a calibration; ``cpu_model`` for one fitted on this machine's CPU.

    Why per CPU: a device profile like ``x86-64-host`` names a kind of machine, and VMs of one kind
    come with different CPUs whose runtimes pick different kernels (measured 2026-12-02: the TFLite
    table built on an Intel Xeon VM predicted proxyless networks 1.56-1.65x above their plain timing
    on an AMD EPYC VM, where its onnxruntime rows held within 3%). A calibration fitted here is filed
    under this CPU and preferred on it; the CPU-less key is the fallback every CPU reads.
    """
    cfg = json.dumps(space.config_dict(), sort_keys=True)
    import hashlib

    key = (f"{space.name}:{getattr(space, 'preset', None) or 'custom'}:{hashlib.sha256(cfg.encode()).hexdigest()[:8]}"
           f"|b{sel.batch}|t{sel.threads}|{sel.precision}")
    return f"{key}|cpu={cpu_model}" if cpu_model else key


def this_cpu() -> str:
    from edgenas.devices import machine_facts

    return machine_facts().get("cpu_model") or ""


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
        cal = None
        if space is not None:
            stored = CalibrationStore(store).load_all(device, backend)  # one read: this CPU's key, else the CPU-less
            cpu = this_cpu() if is_this_machine(device) else ""
            d = (cpu and stored.get(calibration_key(space, sel, cpu))) or stored.get(calibration_key(space, sel))
            cal = Calibration(**d) if d else None
        hint = ""
        if space is not None:
            hint = (f"edgenas profile --device {device} --backend {backend} --space {space.name} "
                    f"--preset {getattr(space, 'preset', None) or 'small'} --batch {batch} --threads {threads}"
                    + (f" --precision {precision}" if precision != "fp32" else "") + " --resume")
        anchor, selected = None, table.for_selection(sel).df
        if len(selected) and selected["ref_ratio"].notna().all():
            anchor = resolve_anchor(table, sel, local=is_this_machine(device), auto=auto_anchor)
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

    def features(self, specs: list[OpSpec], weighted: bool = True) -> tuple[float, int]:
        """(S, K): sum of op latencies (each op type weighted as the calibration says, unless not
        ``weighted``) and number of executed (non-zero-cost) ops."""
        return self._features(specs, self.op_ms(specs), weighted)

    def _features(self, specs, ms: dict[str, float], weighted: bool = True) -> tuple[float, int]:
        w = self.calibration.weight if weighted else (lambda spec: 1.0)
        return sum(w(s) * ms[s.key] for s in specs), sum(1 for s in specs if not is_zero_cost(s))

    def type_sums(self, specs: list[OpSpec]) -> dict[str, float]:
        """Table latencies summed per op type (``OpSpec.op``), unweighted: what the per-type model fits."""
        ms, out = self.op_ms(specs), {}
        for s in specs:
            out[s.op] = out.get(s.op, 0.0) + ms[s.key]
        return out

    def key_sums(self, specs: list[OpSpec]) -> dict[str, float]:
        """Table latencies summed per op key, unweighted (zero-cost ops left out): what the per-key model fits."""
        ms, out = self.op_ms(specs), {}
        for s in specs:
            if not is_zero_cost(s):
                out[s.key] = out.get(s.key, 0.0) + ms[s.key]
        return out

    def predict(self, space, arch) -> Prediction:
        specs = space.op_specs(arch)
        ms = self.op_ms(specs)  # once: features and the breakdown both price from it
        s, k = self._features(specs, ms)
        raw = self._features(specs, ms, weighted=False)[0] if self.calibration.weighted else s
        counts: dict[str, int] = {}
        for sp in specs:
            counts[sp.key] = counts.get(sp.key, 0) + 1
        breakdown = sorted(({"op_key": key, "count": n, "ms_each": ms[key], "ms_total": ms[key] * n}
                            for key, n in counts.items()), key=lambda r: -r["ms_total"])
        return Prediction(self.calibration.apply(s, k, self.calibration_scale), raw, k, self.calibration.calibrated,
                          breakdown)

    def measured_ms(self, ref_ratio: float, median_ms: float) -> float:
        """A whole network's measurement on the predictor's scale (drift-corrected when possible)."""
        return ref_ratio * self.anchor_ms if self.uses_reference and not math.isnan(ref_ratio) else median_ms


def is_this_machine(device: str) -> bool:
    from edgenas.devices import get_profile

    try:
        return get_profile(device).matches_this_machine()[0]
    except InputError:
        return False


def calibration_advice(cal: Calibration, flag: str = "--n") -> str:
    """One line for a calibration that fits its own networks poorly (leave-one-out, under 90% within ±10%),
    naming what can help; empty when it fits. ``flag``: the option that sets the network count."""
    if not cal.calibrated or not cal.n_networks or not cal.fit_within_10pct < 0.9:
        return ""
    more = (f"; measure more networks ({flag} 30): from {PER_KEY_MIN_NETWORKS} the calibration can also "
            "weight single op keys, for ops that cost far less in a network than alone"
            if cal.n_networks < 30 else "; the op table may not describe this runtime's networks: "
            "`edgenas tables fit` learns a device from measured whole networks")
    return (f"the {cal.model} calibration puts only {100 * cal.fit_within_10pct:.0f}% of its {cal.n_networks} "
            f"networks within ±10% (leave-one-out){more}")


def fit_calibration(features: list[tuple[float, int]], measured: list[float], arch_ids=(), runtime_version="",
                    anchor_ms: float = float("nan"), type_sums: list[dict] | None = None,
                    key_sums: list[dict] | None = None) -> Calibration:
    """Choose and fit the correction by leave-one-out error on the calibration networks.

    Candidates: measured = a*S + b; a*S + b + c*K; and, given ``type_sums`` (each network's op sum
    per op type) and enough networks, a*sum_t m_t*S_t + b with the m_t shrunk toward 1 (ridge
    penalty chosen by leave-one-out); given ``key_sums`` and at least ``PER_KEY_MIN_NETWORKS``, the
    same per op key (more keys than networks: the ridge keeps every m_k near 1 that the networks do
    not pull away, and an op seen in no calibration network keeps weight 1). Fitted in relative
    terms (weights 1/y), so small and large networks count alike; chosen by leave-one-out share
    within ±10% (what '% within 10%' scores), then leave-one-out MAPE, a larger model only where it
    is better. ``features`` are unweighted.
    """
    from edgenas.latency.table import now_iso

    s = np.array([f[0] for f in features], dtype=float)
    k = np.array([f[1] for f in features], dtype=float)
    y = np.array(measured, dtype=float)
    if len(y) < 3:
        raise InputError(f"calibration needs at least 3 measured networks, got {len(y)}")
    one = np.ones_like(s)
    candidates = {"scale+offset": (np.column_stack([s, one]), 0, [0.0])}
    if len(y) >= 6 and np.ptp(k) > 0:
        candidates["scale+offset+per-op"] = (np.column_stack([s, one, k]), 0, [0.0])
    types, keys = [], []
    if type_sums is not None:
        types, cols = _varying_columns(type_sums)
        if types and len(y) >= 2 * (len(types) + 2):
            # columns: S, 1, then S_t per type: a*S + sum_t d_t*S_t = a*sum_t (1 + d_t/a)*S_t; ridge on the d_t
            candidates["scale+offset+per-type"] = (np.column_stack([s, one] + cols), 2, [0.01, 0.1, 1.0])
    if key_sums is not None and len(y) >= PER_KEY_MIN_NETWORKS:
        keys, cols = _varying_columns(key_sums)  # the same form per op key
        if keys:
            candidates["scale+offset+per-key"] = (np.column_stack([s, one] + cols), 2, [1e-4, 1e-3, 0.01, 0.1, 1.0])
    best = None
    for name, (x, free, lams) in candidates.items():
        for lam in lams:
            loo = []
            for i in range(len(y)):
                m = np.ones(len(y), bool)
                m[i] = False
                coef = _wls(x[m], y[m], lam, free)
                loo.append(abs(x[i] @ coef - y[i]) / y[i])
            loo = np.array(loo)
            key = (int((loo <= 0.10).sum()), -float(loo.mean()))
            if best is None or key[0] > best[0][0] or (key[0] == best[0][0] and key[1] > best[0][1] + 0.002):
                best = (key, name, lam, loo)
    _, name, lam, loo = best
    x, free, _ = candidates[name]
    coef = _wls(x, y, lam, free)
    a, b = float(coef[0]), float(coef[1])
    c = float(coef[2]) if name == "scale+offset+per-op" else 0.0
    type_scale = {t: float(1.0 + d / a) for t, d in zip(types, coef[2:])} if name == "scale+offset+per-type" else {}
    key_scale = {t: float(1.0 + d / a) for t, d in zip(keys, coef[2:])} if name == "scale+offset+per-key" else {}
    return Calibration(a=a, b=b, c=c, model=name, n_networks=len(y), fit_mape=float(loo.mean()),
                       fit_within_10pct=float((loo <= 0.10).mean()), fitted_at=now_iso(),
                       arch_ids=list(arch_ids), runtime_version=runtime_version, anchor_ms=anchor_ms,
                       type_scale=type_scale, key_scale=key_scale)


def _varying_columns(sums: list[dict]) -> tuple[list[str], list[np.ndarray]]:
    """Per-network sums (one dict per network) as columns, name-sorted, keeping only those that vary
    and are not all zero: a group every network has alike is the offset's."""
    names = sorted({t for d in sums for t in d})
    cols = {t: np.array([d.get(t, 0.0) for d in sums]) for t in names}
    kept = [t for t in names if np.ptp(cols[t]) > 0 and cols[t].max() > 0]
    return kept, [cols[t] for t in kept]


def _wls(x, y, lam: float = 0.0, free: int = 0):
    """Least squares on relative error; ``lam`` > 0: ridge on the coefficients after the first ``free``."""
    w = 1.0 / y
    xw, yw = x * w[:, None], y * w
    if lam > 0 and x.shape[1] > free:
        pen = np.zeros((x.shape[1] - free, x.shape[1]))
        pen[:, free:] = np.sqrt(lam) * np.eye(x.shape[1] - free)
        xw, yw = np.vstack([xw, pen]), np.concatenate([yw, np.zeros(len(pen))])
    coef, *_ = np.linalg.lstsq(xw, yw, rcond=None)
    return coef
