"""Will the ``.tflite`` run well on a board? XNNPACK delegation, and loadability by older runtimes.

**Delegation** is read from the interpreter itself, not from a list: an interpreter built the
default way applies XNNPACK, and its node list (``_get_ops_details``) then holds the model's
original ops followed by one DELEGATE node per partition XNNPACK took. Walking back from each
DELEGATE node's outputs to its inputs through the original ops gives the ops it covers; every
other op runs on TFLite's reference kernels (slow, and on GPU/NPU delegates often a fallback to
the CPU). A stride-2 ``AvgPool2d(count_include_pad=False)`` converted by litert-torch is the
known counter-example (STABLEHLO_REDUCE_WINDOW), and the tests hold this check to it.

The same check reads int8 models: ``dtypes`` counts, per op, the element types of the
activations it takes, so a float op left in a quantized graph shows, and ops
whose non-delegation has a known cause carry it (``reasons``, from ``KNOWN_NOT_DELEGATED``).

**Older runtimes** are judged statically: each (builtin, version) the model uses is looked up in
the op table a real ``tflite_runtime`` 2.14.0 registers (``_tflite214_ops.py``, probed by
``legacy_runtime``), and the converter's ``min_runtime_version`` metadata is compared with 2.14.
This says what the op resolver will refuse; it is not a load test (``legacy_runtime.run_model``
is, where such a runtime is installed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgenas.errors import MeasurementError
from edgenas.export.tflite import read_model

LEGACY_RUNTIME_VERSION = (2, 14, 0)

#: (op, activation type) XNNPACK is known to refuse, and why: read in the delegate's source
#: (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc) and seen by this check
KNOWN_NOT_DELEGATED = {
    ("AVERAGE_POOL_2D", "int8"): "XNNPACK's TFLite delegate takes AVERAGE_POOL_2D on float tensors only "
                                 "(VisitAveragePool2DNode checks for float32); the int8 pool runs on TFLite's "
                                 "built-in int8 kernel and splits the XNNPACK graph",
    ("RELU", "int8"): "XNNPACK's TFLite delegate takes a standalone RELU on float tensors only (VisitReluNode "
                      "checks for a float type); the int8 RELU runs on TFLite's built-in int8 kernel",
}


@dataclass
class DelegationReport:
    delegate: str
    partitions: int  # DELEGATE nodes: 1 means the whole graph runs in one XNNPACK subgraph
    ops: dict[str, dict]  # op name -> {"count", "delegated"}
    not_delegated: dict[str, int]
    stablehlo_or_custom: list[str]
    reasons: dict[str, str] = field(default_factory=dict)  # not-delegated op -> known cause
    dtypes: dict[str, dict[str, int]] = field(default_factory=dict)  # op -> {activation type: count}

    @property
    def fully_delegated(self) -> bool:
        return not self.not_delegated

    def as_dict(self) -> dict:
        return {**asdict(self), "fully_delegated": self.fully_delegated}


def xnnpack_delegation(path, threads: int = 1) -> DelegationReport:
    """Which of the model's ops the default (XNNPACK) delegate of this interpreter takes."""
    from edgenas.profiling.tflite import interpreter_class, make_interpreter

    _, runtime, version = interpreter_class()
    it = make_interpreter(path, threads)
    details = getattr(it, "_get_ops_details", None)
    if details is None:
        raise MeasurementError(f"{runtime} {version} does not expose its execution plan (_get_ops_details); "
                               f"cannot check XNNPACK delegation with it")
    nodes = details()
    tensor_types = {int(t["index"]): np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    original = [n for n in nodes if n["op_name"] != "DELEGATE"]
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    producer = {int(t): n["index"] for n in original for t in n["outputs"]}
    by_index = {n["index"]: n for n in original}
    covered: set[int] = set()
    for d in delegates:
        stop = {int(t) for t in d["inputs"]}
        todo = [int(t) for t in d["outputs"]]
        seen: set[int] = set()
        while todo:
            t = todo.pop()
            if t in seen or t in stop or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            covered.add(node)
            todo += [int(x) for x in by_index[node]["inputs"] if int(x) >= 0]
    ops: dict[str, dict] = {}
    missing: Counter = Counter()
    reasons: dict[str, str] = {}
    types: dict[str, dict[str, int]] = {}
    for n in original:
        row = ops.setdefault(n["op_name"], {"count": 0, "delegated": 0})
        row["count"] += 1
        dtype = tensor_types.get(int(n["inputs"][0]), "none") if len(n["inputs"]) else "none"
        seen = types.setdefault(n["op_name"], {})
        seen[dtype] = seen.get(dtype, 0) + 1
        if n["index"] in covered:
            row["delegated"] += 1
        else:
            missing[n["op_name"]] += 1
            if (n["op_name"], dtype) in KNOWN_NOT_DELEGATED:
                reasons[n["op_name"]] = KNOWN_NOT_DELEGATED[(n["op_name"], dtype)]
    odd = sorted(name for name in ops if name.startswith("STABLEHLO_") or name in ("CUSTOM", "DELEGATE")
                 or not name.isupper())
    return DelegationReport(f"XNNPACK ({runtime} {version}, default delegate, {threads} thread(s))",
                            len(delegates), dict(sorted(ops.items())), dict(missing), odd, reasons,
                            dict(sorted(types.items())))


@dataclass
class LegacyCompat:
    runtime: str
    loadable: bool
    problems: list[str] = field(default_factory=list)
    min_runtime_version: str | None = None
    method: str = "static: op codes and versions against the op table tflite_runtime 2.14.0 registers (not a load test)"

    def as_dict(self) -> dict:
        return asdict(self)


def legacy_compat(path) -> LegacyCompat:
    """Statically, would ``tflite_runtime`` 2.14 resolve every op of this model?"""
    from edgenas.export._tflite214_ops import OPS, RUNTIME

    info = read_model(path)
    problems = []
    if info.schema_version != 3:
        problems.append(f"schema version {info.schema_version} (2.14 reads 3)")
    for oc in info.op_codes:
        if oc.custom:
            problems.append(f"custom op {oc.custom!r} (needs its kernel registered in the board's runtime)")
        elif oc.name not in OPS:
            problems.append(f"{oc.name} (builtin code {oc.code}) does not exist in {RUNTIME}")
        elif oc.version not in OPS[oc.name]:
            problems.append(f"{oc.name} version {oc.version} (2.14 registers versions {_ranges(OPS[oc.name])})")
    mrv = info.min_runtime_version
    if mrv and _version_tuple(mrv) > LEGACY_RUNTIME_VERSION:
        problems.append(f"the converter marked min_runtime_version {mrv}")
    return LegacyCompat(RUNTIME, not problems, problems, mrv)


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.strip().split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple((parts + [0, 0, 0])[:3])


def _ranges(versions) -> str:
    v = sorted(versions)
    return f"{v[0]}-{v[-1]}" if len(v) > 1 and v == list(range(v[0], v[-1] + 1)) else ", ".join(map(str, v))


def tflite_summary(path: Path) -> dict:
    """Op codes with versions and counts, schema and metadata: what the report lists."""
    info = read_model(path)
    return {"schema_version": info.schema_version, "subgraphs": info.subgraphs,
            "min_runtime_version": info.min_runtime_version,
            "op_codes": [{"op": oc.label, "version": oc.version} for oc in info.op_codes],
            "op_counts": dict(sorted(info.op_counts.items()))}
