"""TFLite artifacts: convert with litert-torch, and read what a ``.tflite`` file asks of a runtime.

The reader parses the flatbuffer with the schema ``ai_edge_litert`` ships, so it sees exactly
what an interpreter sees when it resolves ops: builtin codes, op versions, custom codes, the
schema version and the converter's ``min_runtime_version`` metadata.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgenas.errors import InputError
from edgenas.profiling.tflite import export_tflite  # noqa: F401 - the one converter, re-exported


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
