"""One output path for human and ``--json`` modes: commands build a dict, then render it."""

from __future__ import annotations

import json
import sys
from typing import Callable

from rich.console import Console

from edgenas.io import json_safe

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


def emit(result: dict, as_json: bool, render: Callable[[dict], None]) -> None:
    """Print ``result`` as one JSON object (``--json``) or through ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(json_safe(result), indent=2) + "\n")
        sys.stdout.flush()
    else:
        render(result)
