"""The latency gate: time the exported artifact on the device's backend, against the target.

The artifact that ships (the one of the backend's ``export_format``: ``model.onnx`` for
onnxruntime, say; the module itself for eager backends) is timed by ``measure_networks``, the
path ``edgenas search`` times its networks with, paired with the op tables' reference op, so its ``ref_ratio`` puts it on the predictor's scale: ``measured_ms``
is ``ref_ratio`` times the reference's quiet-state time (``latency/anchor.py``), what the
runtime's own benchmark tool shows on the quiet device, when the device's table uses the
reference (raw p50 otherwise), and is what meets or misses the target. The raw p50 and p90
of this process are reported beside it.

The comparison allows the protocol's noise explicitly: measured <= target x (1 + tolerance),
tolerance ``TARGET_TOLERANCE`` (5%) by default, the allowance ``edgenas search`` picks its winner with.
Devices other than this machine are not measured; the result says how to measure them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgenas.errors import DeviceError, EdgeNASError
from edgenas.profiling.protocol import TARGET_TOLERANCE, ProtocolSettings


@dataclass
class GateResult:
    device: str
    backend: str
    batch: int
    threads: int
    target_ms: float | None
    tolerance: float = TARGET_TOLERANCE
    precision: str = "fp32"
    artifact: str | None = None
    measured: bool = False
    measured_ms: float | None = None  # on the predictor's scale when possible (see ``scale``)
    scale: str = ""
    p50_ms: float | None = None  # raw, this process
    p90_ms: float | None = None
    ref_ratio: float | None = None
    stable: bool | None = None
    host_drift: float | None = None
    predicted_ms: float | None = None
    calibrated: bool | None = None
    within_target: bool | None = None  # None: no target, or not measured
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def latency_gate(space, arch, module, artifacts: dict, device: str, backend: str, batch: int,
                 threads: int | None = None, target_ms: float | None = None, measure: bool = True,
                 settings: ProtocolSettings = ProtocolSettings(), tolerance: float = TARGET_TOLERANCE,
                 store=None, precision: str = "fp32") -> GateResult:
    """Predict, and (on this machine) measure, the exported network; compare with ``target_ms``.

    ``precision``: the table that predicts it and the precision the backend runs the artifact at.
    """
    from edgenas.devices import get_profile
    from edgenas.latency.predictor import LatencyPredictor

    prof = get_profile(device)  # an unknown device is the user's error: let it raise
    predictor = None
    try:
        predictor = LatencyPredictor.load(device, backend, space, batch, threads, precision, store=store)
    except EdgeNASError as e:
        note = f"no prediction: {e}"
    else:
        note = ""
    if threads is None:
        threads = predictor.sel.threads if predictor else _profile_threads(prof, backend)
    res = GateResult(device, backend, batch, threads, target_ms, tolerance, precision=precision)
    if note:
        res.notes.append(note)
    if predictor is not None:
        p = predictor.predict(space, arch) if _has_entries(predictor, space, arch, res) else None
        if p is not None:
            res.predicted_ms, res.calibrated = p.predicted_ms, p.calibrated
            if not p.calibrated:
                res.notes.append(f"predicted_ms is the plain op sum (uncalibrated; it overpredicts whole networks): "
                                 f"edgenas calibrate --device {device} --backend {backend} --space {space.name} "
                                 f"--batch {batch}" + (f" --precision {precision}" if precision != "fp32" else ""))
    if measure:
        _measure(res, prof, module, artifacts, batch, space, arch, settings, predictor)
    else:
        res.notes.append("not measured (--no-measure)")
    if res.measured and target_ms is not None:
        res.within_target = bool(res.measured_ms <= target_ms * (1 + tolerance))
    return res


def _has_entries(predictor, space, arch, res) -> bool:
    try:
        predictor.op_ms(space.op_specs(arch))
        return True
    except EdgeNASError as e:
        res.notes.append(f"no prediction: {e}")
        return False


def _profile_threads(prof, backend) -> int:
    try:
        return prof.threads_for(backend)
    except EdgeNASError:
        return 1


def _measure(res: GateResult, prof, module, artifacts, batch, space, arch, settings, predictor) -> None:
    from edgenas.profiling.base import backend_class, create_backend
    from edgenas.profiling.networks import measure_networks
    from edgenas.profiling.runner import check_local_device

    try:
        check_local_device(prof)
    except DeviceError as e:
        res.notes.append(f"not measured: {e}")
        return
    cls = backend_class(res.backend)
    ok, why = cls.availability()
    if not ok:
        res.notes.append(f"not measured: backend {res.backend} is not available here: {why}")
        return
    if cls.suffix:
        artifact = artifacts.get(cls.export_format) if cls.export_format else None
        if artifact is None:
            res.notes.append(f"not measured: backend {res.backend} runs {cls.suffix} files, which edgenas export "
                             + (f"did not write (add {cls.export_format} to --format)" if cls.export_format
                                else "does not build"))
            return
    else:
        artifact = module
    be = create_backend(res.backend, threads=res.threads, precision=res.precision)
    shape = (batch, *space.input_shape)
    [m] = measure_networks(be, space, [arch], batch, settings, source="gate",
                           prepare=lambda _: be.load(artifact, shape))
    st = m.stats
    res.artifact = str(artifact) if cls.suffix else f"PyTorch module ({res.backend})"
    res.measured = True
    res.p50_ms, res.p90_ms, res.ref_ratio, res.stable = st.median_ms, st.p90_ms, st.ref_ratio, st.stable
    res.host_drift = m.drift
    if predictor is not None and predictor.uses_reference:
        res.measured_ms = predictor.measured_ms(st.ref_ratio, st.median_ms)
        res.scale = (f"quiet-state ms: ref_ratio {st.ref_ratio:.3f} x reference {predictor.anchor_ms:.4f} ms "
                     f"({predictor.scale_note}); raw p50 of this process {st.median_ms:.4f} ms")
    else:
        res.measured_ms = st.median_ms
        res.scale = "raw p50 of this process (no reference-paired table to correct drift with)"
