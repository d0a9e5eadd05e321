"""``edgenas genotype``: inspect, sample and convert genotypes."""

from __future__ import annotations

import random
from collections import Counter
from typing import Optional

import typer
from rich.table import Table

from edgenas.cli import common
from edgenas.cli._output import console, emit
from edgenas.ops.complexity import count_macs, count_params
from edgenas.spaces import create_space

app = typer.Typer(help="Inspect, sample and convert genotypes.", no_args_is_help=True)


def _summary(g, sp) -> dict:
    net = sp.build(g.arch)
    specs = sp.op_specs(g.arch)
    counts = Counter(s.key for s in specs)
    return {
        "space": g.space, "preset": g.preset, "config": g.config,
        "params": count_params(net), "macs": count_macs(net, sp.input_shape),
        "input_shape": list(sp.input_shape),
        "ops": sp.describe_arch(g.arch),
        "op_keys": [{"key": k, "count": n} for k, n in counts.items()],
        "genotype": g.to_dict(),
    }


def _render(r: dict) -> None:
    console.print(f"[bold]space[/bold] {r['space']}  [bold]preset[/bold] {r['preset'] or '-'}  "
                  f"[bold]input[/bold] {'x'.join(map(str, r['input_shape']))}")
    console.print("[bold]config[/bold] " + ", ".join(f"{k}={v}" for k, v in r["config"].items()))
    console.print(f"[bold]params[/bold] {r['params'] / 1e6:.3f} M   [bold]MACs[/bold] {r['macs'] / 1e6:.1f} M")
    console.print("[bold]ops[/bold]")
    for line in r["ops"]:
        console.print("  " + line)
    table = Table(title="op keys (latency-table entries this network needs)")
    table.add_column("count", justify="right")
    table.add_column("op key")
    for row in r["op_keys"]:
        table.add_row(str(row["count"]), row["key"])
    console.print(table)


@app.command("show")
def show(
    source: str = typer.Argument(..., help="Genotype file, run directory, JSON, or a DARTS 'Genotype(...)' string."),
    space: Optional[str] = common.SPACE, preset: Optional[str] = common.PRESET,
    channels: Optional[int] = common.CHANNELS, layers: Optional[int] = common.LAYERS,
    input_size: Optional[int] = common.INPUT_SIZE, in_channels: Optional[int] = common.IN_CHANNELS,
    classes: Optional[int] = common.CLASSES, as_json: bool = common.JSON,
):
    """Parameters, MACs, the op list and the op keys of a genotype.

    Example: edgenas genotype show "Genotype(normal=[...], ...)" --channels 36 --layers 20 --json
    """
    g, sp = common.resolve_genotype(source, space, preset, channels=channels, layers=layers,
                                    input_size=input_size, in_channels=in_channels, classes=classes)
    emit(_summary(g, sp), as_json, _render)


@app.command("sample")
def sample(
    space: str = typer.Option("darts", "--space", help="Search space."),
    preset: Optional[str] = common.PRESET,
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the genotype JSON here."),
    as_json: bool = common.JSON,
):
    """A uniformly random genotype of a space (for tests, baselines and examples)."""
    sp = create_space(space, preset)
    g = sp.genotype(sp.sample(random.Random(seed)))
    if out:
        g.save(out)
    emit(g.to_dict(), as_json, lambda r: console.print_json(g.to_json()) if not out else
         console.print(f"wrote {out}"))


@app.command("convert")
def convert(
    source: str = typer.Argument(..., help="Genotype in any accepted form (e.g. DARTS text)."),
    out: str = typer.Option(..., "--out", help="Where to write the edgenas genotype JSON."),
    space: Optional[str] = common.SPACE, preset: Optional[str] = common.PRESET,
    channels: Optional[int] = common.CHANNELS, layers: Optional[int] = common.LAYERS,
    input_size: Optional[int] = common.INPUT_SIZE, in_channels: Optional[int] = common.IN_CHANNELS,
    classes: Optional[int] = common.CLASSES,
):
    """Write any accepted genotype form as a versioned edgenas genotype file."""
    g, _ = common.resolve_genotype(source, space, preset, channels=channels, layers=layers,
                                   input_size=input_size, in_channels=in_channels, classes=classes)
    g.save(out)
    console.print(f"wrote {out} ({g.space}, preset {g.preset})")
