"""Parsing of comma-separated CLI values with one clear error line."""

from __future__ import annotations

from edgenas.errors import InputError


def int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be comma-separated positive integers (e.g. 1,8), got {text!r}") from None
    if not values or any(v < 1 or v > 65536 for v in values):
        raise InputError(f"{what} must be comma-separated positive integers (e.g. 1,8), got {text!r}")
    return list(dict.fromkeys(values))


def str_list(text: str | None) -> list[str]:
    return [v.strip() for v in str(text or "").split(",") if v.strip()]
