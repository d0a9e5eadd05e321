"""TFLite artifacts: convert with litert-torch, and read what a ``.tflite`` file asks of a runtime.

The reader parses the flatbuffer with the schema ``ai_edge_litert`` ships, so it sees exactly
what an interpreter sees when it resolves ops: builtin codes, op versions, custom codes, the
schema version and the converter's ``min_runtime_version`` metadata.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgenas.errors import InputError
from edgenas.profiling.base import ShippedArtifact
from edgenas.profiling.tflite import export_tflite  # noqa: F401 - the one converter, re-exported


def ship(module, shape, path: Path, nhwc: bool) -> ShippedArtifact:
    """Convert ``module`` to ``path`` (atomically); XNNPACK must delegate every op, 2.14 should load it."""
    return _checked(path, lambda tmp: export_tflite(module, shape, tmp, nhwc=nhwc))


def int8_path(path: Path) -> Path:
    """``model_int8.tflite`` for ``model.tflite``: an int8 export sits beside the fp32 one."""
    path = Path(path)
    return path if path.stem.endswith("_int8") else path.with_name(f"{path.stem}_int8{path.suffix}")


def ship_int8(module, shape, path: Path, calibration, io: str, nhwc: bool, float_path=None) -> ShippedArtifact:
    """``model_int8.tflite`` (every op int8, ``io`` "float" or "int8") with the fp32 path's checks.

    Besides delegation and the 2.14 checks, the report holds the quantization (I/O type, the I/O
    scale and zero point an int8-I/O app needs, the calibration data) and the op counts of the
    float graph beside the quantized one: a quantizer that adds ops (requantize steps, float
    islands) makes the int8 model slower than its table says, so ops beyond the QUANTIZE and
    DEQUANTIZE of a float-I/O boundary are a warning. ``float_path``: keep the fp32 model there.
    """
    from edgenas.quant.tflite_int8 import export_tflite_int8

    quant: dict = {}

    def write(tmp):
        quant.update(export_tflite_int8(module, shape, tmp, calibration, io=io, nhwc=nhwc, float_path=float_path).as_dict())

    path = int8_path(path)
    res = _checked(path, write, known_reasons_fail=False)
    quant["path"] = str(path)
    added = added_ops(quant["float_op_counts"], res.info["op_counts"], io)
    quant["added_ops"] = added
    if added:
        res.warnings.append(f"{path.name} has ops its float graph does not: "
                            + ", ".join(f"{k} +{v}" for k, v in added.items()))
    res.info["quantization"] = quant
    res.info["float_bytes"] = quant.get("float_bytes") or None  # the int8 checks' size ratio reads it here
    return res


def added_ops(float_counts, int8_counts, io: str) -> dict[str, int]:
    """Ops the quantized graph has beyond the float one, less the boundary QUANTIZE/DEQUANTIZE of float I/O."""
    expected = {"QUANTIZE": 1, "DEQUANTIZE": 1} if io == "float" else {}
    out = {}
    for op, n in int8_counts.items():
        extra = n - float_counts.get(op, 0) - expected.get(op, 0)
        if extra > 0:
            out[op] = extra
    return dict(sorted(out.items()))


def _checked(path: Path, write, known_reasons_fail: bool = True) -> ShippedArtifact:
    """``write(tmp)`` the model, move it to ``path``, and run the delegation and 2.14 checks on it.

    An op XNNPACK does not delegate fails the export; with ``known_reasons_fail`` off, one whose
    cause is known and unavoidable (``deployability.KNOWN_NOT_DELEGATED``) only fails ``--strict``.
    """
    from edgenas.export.deployability import legacy_compat, tflite_summary, xnnpack_delegation

    tmp = path.with_name(path.name + ".partial")
    t = time.perf_counter()
    write(tmp)
    tmp.replace(path)
    res = ShippedArtifact(path, {"path": str(path), "bytes": path.stat().st_size, "converter": _converter_version(),
                                 "export_s": round(time.perf_counter() - t, 2), **tflite_summary(path)})
    deleg = xnnpack_delegation(path)
    res.info["xnnpack"] = deleg.as_dict()
    if not deleg.fully_delegated:
        ops = ", ".join(f"{k} x{v}" for k, v in deleg.not_delegated.items())
        message = f"{path.name} has ops XNNPACK does not delegate: {ops}"
        if known_reasons_fail or set(deleg.not_delegated) - set(deleg.reasons):
            res.failures.append(("xnnpack", message + " (they fall back to slower TFLite kernels)"))
        else:
            res.warnings.append(message + ": " + "; ".join(deleg.reasons.values()))
            res.strict_failures.append(("xnnpack", message))
    legacy = legacy_compat(path)
    res.info["tflite_runtime_2_14"] = legacy.as_dict()
    if not legacy.loadable:
        res.warnings.append(f"tflite_runtime 2.14 (static check) would not load {path.name}: "
                            + "; ".join(legacy.problems))
        res.strict_failures.append(("tflite_runtime 2.14", f"{path.name} would not load in tflite_runtime 2.14: "
                                    + "; ".join(legacy.problems)[:300]))
    return res


def markdown_lines(t: dict) -> list[str]:
    """The TFLite artifact's lines of ``report.md``: ops, delegation, and the 2.14 checks."""
    x = t["xnnpack"]
    lg = t["tflite_runtime_2_14"]
    lt = lg.get("load_test")
    return [f"- TFLite: {t['path']} ({t['bytes'] / 1e6:.2f} MB), {t['converter']}: "
            + ", ".join(f"{k} {v}" for k, v in t["op_counts"].items()),
            f"  - XNNPACK: {'every op delegated' if x['fully_delegated'] else 'NOT delegated: ' + str(x['not_delegated'])}"
            f" ({x['partitions']} partition(s)); STABLEHLO/custom ops: {', '.join(x['stablehlo_or_custom']) or 'none'}",
            f"  - tflite_runtime 2.14: {'loadable' if lg['loadable'] else 'NOT loadable: ' + '; '.join(lg['problems'])}"
            f" (static check)" + (f"; real load test: {'loaded' if lt['loaded'] else 'FAILED: ' + str(lt['error'])}"
                                  f" ({lt['runtime']})" if lt else "")] + _int8_lines(t)


def _int8_lines(t: dict) -> list[str]:
    q = t.get("quantization")
    if not q:
        return []
    io = ", ".join(f"{kind} {i}: scale {sz[0]:.6g} zero point {sz[1]}" for kind in ("input", "output")
                   for i, sz in enumerate(q[f"{kind}_quant"]) if sz)
    why = "; ".join(f"{k}: {v}" for k, v in t["xnnpack"].get("reasons", {}).items())
    lines = [f"  - int8 ({q['flow']}): {q['io']} I/O" + (f" ({io})" if io else "")
             + f"; calibrated on {q['calibration'].get('source')} (n={q['calibration'].get('n')})",
             "  - ops of the float graph: " + ", ".join(f"{k} {v}" for k, v in q["float_op_counts"].items())
             + (f"; added by quantization: {q['added_ops']}" if q["added_ops"] else "; none added by quantization")]
    return lines + ([f"  - why not delegated: {why}"] if why else [])


def _converter_version() -> str:
    from edgenas.profiling.base import package_version

    v = package_version("litert-torch")
    return f"litert-torch {v}" if v else "litert-torch"


@dataclass(frozen=True)
class OpCode:
    """One operator code of a model: a builtin name (or CUSTOM) and its version."""

    name: str
    code: int
    version: int
    custom: str | None = None

    @property
    def label(self) -> str:
        return f"CUSTOM({self.custom})" if self.custom else self.name


@dataclass
class TFLiteModelInfo:
    schema_version: int
    op_codes: list[OpCode]
    op_counts: Counter  # label -> operators using it, over every subgraph
    metadata: dict[str, str] = field(default_factory=dict)
    subgraphs: int = 1

    @property
    def min_runtime_version(self) -> str | None:
        return self.metadata.get("min_runtime_version")


def builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def read_model(path) -> TFLiteModelInfo:
    """Operator codes, per-op counts, schema version and string metadata of a ``.tflite`` file."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
    model = schema.Model.GetRootAsModel(data, 0)
    names = builtin_names()
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # codes > 127 live in builtin_code only
        custom = oc.CustomCode().decode() if oc.CustomCode() else None
        codes.append(OpCode(names.get(code, f"BUILTIN_{code}"), code, oc.Version(), custom))
    counts: Counter = Counter()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for j in range(sg.OperatorsLength()):
            counts[codes[sg.Operators(j).OpcodeIndex()].label] += 1
    meta = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        buf = model.Buffers(md.Buffer())
        if buf is not None and buf.DataLength():
            meta[md.Name().decode()] = bytes(buf.DataAsNumpy()).rstrip(b"\x00").decode(errors="replace")
    return TFLiteModelInfo(model.Version(), codes, counts, meta, model.SubgraphsLength())
