"""ONNX artifacts: export (dynamo, legacy fallback), the full checker, opset and operator list.

The dynamo exporter already runs onnxscript's optimizer (constant folding, dead-node and
redundant-cast removal); ``onnxsim`` is applied on top only when it is importable, and the
report says which of these happened.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from edgenas.errors import MeasurementError
from edgenas.profiling.base import ShippedArtifact
from edgenas.profiling.onnxruntime_backend import OPSET, export_onnx  # noqa: F401 - the one exporter


def ship(module, shape, path: Path, simplified: bool = True, calibration=None) -> ShippedArtifact:
    """Export ``module`` to ``path`` (atomically), checked before and after simplification.

    With a ``calibration`` (int8), the checked fp32 file is quantized (``quant.onnx_int8``) and
    the int8 one, checked again, is what lands at ``path``; the info keeps the fp32 file's size
    (``float_bytes``) and the quantizer's record (``quantization``).
    """
    errors: list[str] = []
    tmp = path.with_name(path.name + ".partial")
    t = time.perf_counter()
    quantized = path.with_name(path.name + ".int8.partial")
    extra: dict = {}
    try:
        exporter = export_onnx(module, shape, tmp, errors=errors)
        check(tmp)
        how = simplify(tmp) if simplified else "not simplified (disabled)"
        check(tmp)
        if calibration is not None:
            from edgenas.quant.onnx_int8 import quantize

            extra = {"float_bytes": tmp.stat().st_size, "quantization": quantize(tmp, quantized, calibration)}
            check(quantized)
            quantized.replace(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        quantized.unlink(missing_ok=True)  # a quantizer or checker failure leaves no half-made int8 file
    info = {"path": str(path), "bytes": path.stat().st_size, "exporter": exporter,
            "exporter_fallback_reason": errors[0] if exporter == "legacy" and errors else None,
            "checker": "passed (full_check)", "simplification": how,
            "export_s": round(time.perf_counter() - t, 2), **extra, **summary(path)}
    return ShippedArtifact(path, info)


def check(path) -> None:
    """``onnx.checker.check_model(full_check=True)``: structure, types and shape inference."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as e:  # noqa: BLE001 - checker errors are ValidationError or inference errors
        raise MeasurementError(f"the exported ONNX model fails onnx.checker: {' '.join(str(e).split())[:300]}") from None


def simplify(path) -> str:
    """Run onnxsim in place when installed; returns what was done, for the report."""
    try:
        import onnx
        import onnxsim  # type: ignore
    except ImportError:
        return "onnxsim not installed: not simplified beyond the exporter's own optimizer"
    model, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        return "onnxsim could not validate its result: kept the exporter's model"
    onnx.save(model, str(path))
    return f"simplified with onnxsim {getattr(onnxsim, '__version__', '')}".strip()


def summary(path) -> dict:
    """Opset imports, operator counts, inputs and outputs with shapes."""
    import onnx

    m = onnx.load(str(path))
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in m.graph.node)

    def shape(v):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

    return {"opset": {imp.domain or "ai.onnx": imp.version for imp in m.opset_import},
            "ir_version": m.ir_version, "producer": f"{m.producer_name} {m.producer_version}".strip(),
            "op_counts": dict(sorted(ops.items())), "nodes": len(m.graph.node),
            "inputs": {v.name: shape(v) for v in m.graph.input},
            "outputs": {v.name: shape(v) for v in m.graph.output}}


def markdown_lines(o: dict) -> list[str]:
    """The ONNX artifact's lines of ``report.md``."""
    q = o.get("quantization")
    int8 = ([f"  - int8: {q['quantizer']} ({q['format']}, per-channel {q['weight_type']} weights, "
             f"{q['activation_type']} activations) calibrated on {q['calibration']['source']}; onnxruntime runs "
             f"{q['int8_nodes']} nodes vs {q['float_nodes']} in fp32 ({q['int8_unfused_qdq']} unfused Q/DQ)"
             + (" - MORE than fp32" if q["more_nodes_than_float"] else "")] if q else [])
    return [f"- ONNX: {o['path']} ({o['bytes'] / 1e6:.2f} MB), {o['exporter']} exporter"
            + (f" (dynamo failed: {o['exporter_fallback_reason']})" if o.get("exporter_fallback_reason") else "")
            + f", opset {o['opset'].get('ai.onnx')}, checker {o['checker']}, {o['nodes']} nodes: "
            + ", ".join(f"{k} {v}" for k, v in o["op_counts"].items())] + int8
