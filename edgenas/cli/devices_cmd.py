"""``edgenas devices``: the device profiles, and which one this machine is."""

from __future__ import annotations

import typer
from rich.table import Table

from edgenas.cli._output import console, emit
from edgenas.cli.common import JSON
from edgenas.devices import get_profile, list_profiles, machine_facts

app = typer.Typer(help="Device profiles: targets, their backends, how to prepare and reach them.",
                  no_args_is_help=True)


@app.command("list")
def list_devices(as_json: bool = JSON):
    """Every device profile, and whether this machine is it."""
    rows = []
    for p in list_profiles():
        ok, why = p.matches_this_machine()
        rows.append({**p.as_dict(), "this_machine": ok, "why_not": why})
    result = {"this_machine": machine_facts(), "devices": rows}

    def render(r):
        t = Table(title="device profiles")
        for col in ("device", "kind", "backends", "reach", "here?", "description"):
            t.add_column(col, overflow="fold")
        for d in r["devices"]:
            t.add_row(d["name"], d["kind"], ", ".join(d["backends"]), ", ".join(d["reach"]),
                      "yes" if d["this_machine"] else "no", d["description"])
        console.print(t)

    emit(result, as_json, render)


@app.command("show")
def show(name: str = typer.Argument(...), as_json: bool = JSON):
    """One profile: backends with threads, how to prepare the device for stable numbers."""
    p = get_profile(name)
    ok, why = p.matches_this_machine()
    result = {**p.as_dict(), "this_machine": ok, "why_not": why}

    def render(r):
        console.print(f"[bold]{r['name']}[/bold] ({r['kind']}, {r['arch']}): {r['description']}")
        console.print(f"os: {r['os']}; reach: {', '.join(r['reach'])}; this machine: "
                      f"{'yes' if r['this_machine'] else 'no (' + r['why_not'] + ')'}")
        for b, v in r["backends"].items():
            console.print(f"  backend {b}: threads {v['threads']}, precisions {', '.join(v['precisions'])}")
        if r["prepare"]:
            console.print("prepare for stable numbers:")
            for step in r["prepare"]:
                console.print(f"  - {step}")
        if r["notes"]:
            console.print(f"notes: {r['notes'].strip()}")

    emit(result, as_json, render)
