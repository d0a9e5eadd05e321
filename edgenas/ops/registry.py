"""String-keyed registry of op types: how to build each from its OpSpec and how its key reads.

One front door (``build_op``) so profiling, export and the spaces build the very same module
for a given spec; a new op family registers itself with ``@register_op`` in its own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from edgenas.registry import Registry


@dataclass(frozen=True)
class OpType:
    name: str
    build: Callable  # (OpSpec, **kwargs) -> nn.Module taking (N, C, H, W)
    key_fields: tuple[str, ...] = ("stride",)
    flat_output: bool = False  # key shows only the output channel count (classifier)
    implied: dict = field(default_factory=dict)  # fields fixed by the op type (kernel, dilation...)
    zero_cost: object = False  # bool, or spec -> bool: nothing executes, never profiled, 0 ms

    def complete(self, spec):
        """Fill fields implied by the op type and derive stride from shapes where not keyed."""
        changes = dict(self.implied)
        if "stride" not in self.key_fields and not self.flat_output:
            ih, oh = spec.in_shape[0], spec.out_shape[0]
            changes["stride"] = max(1, ih // oh) if oh else 1
        return replace(spec, **changes) if changes else spec


# Built-in families, then plug-in spaces (``edgenas.spaces`` entry points): a space brings its ops.
_OPS: Registry[OpType] = Registry("op type", tuple(f"edgenas.ops.{m}" for m in ("darts_ops", "mbconv", "nb201_ops")),
                                  group="edgenas.spaces")

#: Part of every cached artifact's key (op models, whole networks). Bump it whenever an op's
#: implementation changes while its key does not, so stale .onnx/.tflite files are not reused.
ARTIFACT_VERSION = 2


def register_op(name: str, *, key_fields=("stride",), flat_output=False, zero_cost=False, **implied):
    def deco(fn):
        _OPS.add(name, OpType(name, fn, tuple(key_fields), flat_output, dict(implied), zero_cost))
        return fn

    return deco


def op_type(name: str) -> OpType:
    return _OPS.get(name)


def list_ops() -> list[str]:
    return _OPS.names()


def is_zero_cost(spec) -> bool:
    """True for ops that execute nothing (zero, stride-1 identity): 0 ms by definition."""
    z = op_type(spec.op).zero_cost
    return bool(z(spec)) if callable(z) else bool(z)


def build_op(spec, **kwargs):
    """Build the nn.Module for one op instance (eval-ready, NCHW input of ``spec.in_shape``)."""
    return op_type(spec.op).build(spec, **kwargs)
