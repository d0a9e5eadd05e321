"""One output path for human and ``--json`` modes: commands build a dict, then render it."""

from __future__ import annotations

import json
import math
import sys
from typing import Callable

from rich.console import Console

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


def _clean(obj):
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _clean(obj.item())
    return obj


def emit(result: dict, as_json: bool, render: Callable[[dict], None]) -> None:
    """Print ``result`` as one JSON object (``--json``) or through ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(_clean(result), indent=2) + "\n")
        sys.stdout.flush()
    else:
        render(result)
