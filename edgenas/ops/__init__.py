"""Candidate ops, one family per file, and OpSpec, the op+shape record that keys latency tables."""

from edgenas.ops.registry import build_op, is_zero_cost, list_ops, op_type, register_op
from edgenas.ops.spec import OpSpec

__all__ = ["OpSpec", "build_op", "is_zero_cost", "list_ops", "op_type", "register_op"]
