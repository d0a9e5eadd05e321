"""``edgenas plugins``: every backend, space and strategy, built-in or from an installed plug-in."""

from __future__ import annotations

import typer
from rich.table import Table

from edgenas.cli._output import console, emit


def _extension_points() -> dict:
    from edgenas.profiling.base import backend_class, list_backends
    from edgenas.search.base import list_strategies, strategy_class
    from edgenas.search.blackbox.base import blackbox_class, list_blackbox
    from edgenas.spaces import list_spaces, space_class

    return {"backends": {n: backend_class(n) for n in list_backends()},
            "spaces": {n: space_class(n) for n in list_spaces()},
            "strategies": {n: strategy_class(n) for n in list_strategies()},
            "blackbox_strategies": {n: blackbox_class(n) for n in list_blackbox()}}


def plugins(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """List the backends, spaces and strategies edgenas knows, with the module that provides each.

    Third-party packages add them through the entry-point groups edgenas.backends, edgenas.spaces and
    edgenas.strategies (see the README's "Extending edgenas").
    """
    result = {kind: [{"name": n, "module": cls.__module__, "builtin": cls.__module__.startswith("edgenas.")}
                     for n, cls in named.items()] for kind, named in _extension_points().items()}

    def render(r):
        table = Table(title="extension points")
        for col in ("kind", "name", "module"):
            table.add_column(col)
        for kind, rows in r.items():
            for row in rows:
                table.add_row(kind, row["name"], row["module"] + ("" if row["builtin"] else "  (plug-in)"))
        console.print(table)

    emit(result, as_json, render)
