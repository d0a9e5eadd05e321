"""``edgenas spaces``: the search spaces, their presets and choice points."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from edgenas.cli._output import console, emit
from edgenas.spaces import create_space, list_spaces, space_class


def spaces(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """List search spaces and their presets (with op-instance and choice counts)."""
    result = {"spaces": []}
    for name in list_spaces():
        cls = space_class(name)
        presets = []
        for preset in cls.presets:
            sp = create_space(name, preset)
            cps = sp.choice_points()
            presets.append({
                "preset": preset, "default": preset == cls.default_preset,
                "description": cls.preset_help.get(preset, ""), "config": sp.config_dict(),
                "choice_points": len(cps), "op_instances": len(sp.all_op_specs()),
                "input_shape": list(sp.input_shape),
            })
        result["spaces"].append({"space": name, "doc": _first_line(sys.modules[cls.__module__].__doc__),
                                 "presets": presets})

    def render(r):
        table = Table(title="search spaces", show_lines=False)
        for col in ("space", "preset", "input (CxHxW)", "choices", "table keys", "description"):
            table.add_column(col)
        for s in r["spaces"]:
            for p in s["presets"]:
                star = " (default)" if p["default"] else ""
                table.add_row(s["space"], p["preset"] + star, "x".join(map(str, p["input_shape"])),
                              str(p["choice_points"]), str(p["op_instances"]), p["description"])
        console.print(table)

    emit(result, as_json, render)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
