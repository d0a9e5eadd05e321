"""The precisions a table, a backend or an export can be at: one list, one check."""

from __future__ import annotations

from edgenas.errors import InputError

#: every precision edgenas knows; a backend says which of them it can run (``Backend.precisions``)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


def check_precision(precision: str) -> str:
    """``precision`` when edgenas knows it, else one clear line (InputError)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision
