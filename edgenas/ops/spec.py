"""OpSpec: the frozen record of one op instance and its shapes, which is a latency-table key.

Every parameter that changes an op's cost is a typed field, so tables can be queried by
column. The string key (``op_key``) is a *rendering* of those fields; for the ProxylessNAS
family it is exactly the string the published ProxylessNAS / Once-for-All tables use, e.g.
``expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0``.
Batch size is not part of the spec: it is a table column.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from edgenas.errors import InputError

Shape = tuple[int, int, int]  # (H, W, C), the order the published keys use


@dataclass(frozen=True, order=True)
class OpSpec:
    op: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 0
    stride: int = 1
    expand: int = 0
    dilation: int = 1
    idskip: int = 0

    def __post_init__(self):
        # an absurd op (200,000 channels, a 13 TiB tensor) is refused here, before anything is allocated
        try:
            (ih, iw, ic), (oh, ow, oc) = self.in_shape, self.out_shape
            if (0 <= ic <= 1024 and 0 <= oc <= 1024 and 0 <= ih * iw * ic <= 1 << 24 and 0 <= oh * ow * oc <= 1 << 24
                    and ih >= 0 and oh >= 0 and 0 <= self.kernel <= 15 and 0 <= self.stride <= 16
                    and 0 <= self.expand <= 16 and 0 <= self.dilation <= 16):
                return  # fast path: every bound below holds for these (this runs for every op of every step)
        except (TypeError, ValueError):
            pass
        try:
            problem = op_shape_problem(self.in_shape, self.out_shape, self.kernel, self.stride, self.expand,
                                       self.dilation)
        except (TypeError, ValueError):
            problem = "its shapes are not (H, W, C) integers"
        if problem:
            raise InputError(f"op {self.op} {_shape(self.in_shape)} -> {_shape(self.out_shape)} is out of bounds: "
                             f"{problem}")

    @classmethod
    def make(cls, op: str, in_shape, out_shape, **fields_) -> "OpSpec":
        """Build a spec with the fields its op type implies filled in (use this, not the constructor)."""
        from edgenas.ops.registry import op_type

        return op_type(op).complete(cls(op, tuple(in_shape), tuple(out_shape), **fields_))

    # ---- rendering -------------------------------------------------------------
    @property
    def key(self) -> str:
        """The canonical string key; fields shown depend on the op type (see ``KEY_FIELDS``)."""
        from edgenas.ops.registry import op_type

        t = op_type(self.op)
        parts = [self.op, "input:" + _shape(self.in_shape)]
        out = str(self.out_shape[2]) if t.flat_output else _shape(self.out_shape)
        parts.append("output:" + out)
        for name in t.key_fields:
            parts.append(f"{name}:{getattr(self, name)}")
        return "-".join(parts)

    def to_row(self) -> dict:
        """Flat typed columns for a latency table row."""
        (ih, iw, ic), (oh, ow, oc) = self.in_shape, self.out_shape
        return {
            "op_key": self.key, "op": self.op,
            "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc,
            "kernel": self.kernel, "stride": self.stride, "expand": self.expand,
            "dilation": self.dilation, "idskip": self.idskip,
        }

    @classmethod
    def from_row(cls, row) -> "OpSpec":
        return cls(
            op=str(row["op"]),
            in_shape=(int(row["in_h"]), int(row["in_w"]), int(row["in_c"])),
            out_shape=(int(row["out_h"]), int(row["out_w"]), int(row["out_c"])),
            kernel=int(row["kernel"]), stride=int(row["stride"]), expand=int(row["expand"]),
            dilation=int(row["dilation"]), idskip=int(row["idskip"]),
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["in_shape"], d["out_shape"] = list(self.in_shape), list(self.out_shape)
        return d

    @classmethod
    def from_key(cls, key: str) -> "OpSpec":
        """Parse a rendered key back into a spec (inverse of ``key`` for every registered op)."""
        from edgenas.ops.registry import op_type

        op, in_shape, out_txt, items = split_key(key.strip())
        t = op_type(op)
        if t.flat_output:
            if not out_txt.isdigit():
                raise InputError(f"op key {key!r}: {op} output must be a channel count")
            out_shape = (1, 1, int(out_txt))
        else:
            out_shape = parse_shape(out_txt, key)
        extra = {}
        for item in items:
            name, _, value = item.partition(":")
            if name not in t.key_fields or not value.lstrip("-").isdigit():
                raise InputError(f"op key {key!r}: unexpected field {item!r} for op {op}")
            extra[name] = int(value)
        missing = [f for f in t.key_fields if f not in extra]
        if missing:
            raise InputError(f"op key {key!r}: missing field(s) {', '.join(missing)}")
        return t.complete(cls(op=op, in_shape=in_shape, out_shape=out_shape, **extra))


# op shapes: generous for edge networks, far below what would exhaust memory when an op is built
MAX_HW = 8192
MAX_CHANNELS = 65536
MAX_KERNEL = 31
MAX_STRIDE = 16
MAX_EXPAND = 65536  # a ratio in our keys, the expanded channel count in OFA keys
MAX_TENSOR_ELEMENTS = 1 << 27  # 512 MiB in fp32, per tensor at batch 1
MAX_WEIGHT_ELEMENTS = 1 << 28


def op_shape_problem(in_shape, out_shape, kernel: int, stride: int, expand: int, dilation: int) -> str | None:
    """Why an op instance is absurd (and would allocate absurdly), or None."""
    for name, shape in (("input", in_shape), ("output", out_shape)):
        h, w, c = shape
        if not (0 <= h <= MAX_HW and 0 <= w <= MAX_HW):
            return f"{name} {h}x{w} is outside 0..{MAX_HW} per side"
        if not 0 <= c <= MAX_CHANNELS:
            return f"{name} has {c} channels (at most {MAX_CHANNELS})"
        if h * w * c > MAX_TENSOR_ELEMENTS:
            return f"{name} {h}x{w}x{c} has over {MAX_TENSOR_ELEMENTS} elements"
    for name, v, hi in (("kernel", kernel, MAX_KERNEL), ("stride", stride, MAX_STRIDE), ("expand", expand, MAX_EXPAND),
                        ("dilation", dilation, MAX_STRIDE)):
        if not 0 <= v <= hi:
            return f"{name} {v} is outside 0..{hi}"
    cin, cout, k2 = max(in_shape[2], 1), max(out_shape[2], 1), max(kernel, 1) ** 2
    mid = expand if expand > MAX_STRIDE else cin * max(expand, 1)  # OFA keys give the expanded width itself
    weights = max(cin * cout * k2, cin * mid + mid * k2 + mid * cout)
    if weights > MAX_WEIGHT_ELEMENTS:
        return f"its weights would hold about {weights} elements (at most {MAX_WEIGHT_ELEMENTS})"
    return None


SPEC_COLUMNS = [f.name for f in fields(OpSpec)]
_KEY_RE = re.compile(r"^(?P<op>[A-Za-z_0-9]+?)-input:(?P<inp>[0-9x]+)-output:(?P<out>[0-9x]+)(?:-(?P<rest>.*))?$")


def split_key(key: str) -> tuple[str, Shape, str, list[str]]:
    """The one op-key parser: ``op-input:HxWxC-output:OUT[-name:value...]`` -> (op, input shape,
    OUT text (``HxWxC`` or a channel count), ``name:value`` items). What the items mean is the
    reader's business: ``OpSpec.from_key`` wants exactly its op's key fields, the table importers
    keep unknown ones (OFA's ``se``, ``hs``) verbatim."""
    m = _KEY_RE.match(key)
    if not m:
        raise InputError(f"cannot parse op key {key!r}: expected 'op-input:HxWxC-output:...'")
    return (m.group("op"), parse_shape(m.group("inp"), key), m.group("out"),
            [item for item in (m.group("rest") or "").split("-") if item])


def _shape(s: Shape) -> str:
    return "x".join(str(v) for v in s)


def parse_shape(txt: str, key: str) -> Shape:
    parts = txt.split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InputError(f"op key {key!r}: shape {txt!r} is not HxWxC")
    h, w, c = (int(p) for p in parts)
    return (h, w, c)
