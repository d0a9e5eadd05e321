"""Options and helpers shared by several commands."""

from __future__ import annotations

from typing import Optional

import typer

from edgenas.spaces import load_genotype

def finite(value):
    """Typer callback: a float option must be a finite number (click's ranges let nan and inf through)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def precision_value(value):
    """Typer callback: ``--precision`` must be one edgenas knows (one line before any work, else)."""
    from edgenas.quant.precision import check_precision

    return check_precision(value)


JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
SPACE = typer.Option(None, "--space", help="Search space (darts, proxyless, nb201); see 'edgenas spaces'.")
PRESET = typer.Option(None, "--preset", help="Space preset (e.g. small, mobile, cifar10); see 'edgenas spaces'.")
CHANNELS = typer.Option(None, "--channels", min=1, max=8192, help="DARTS: initial channels C (e.g. 36 for the paper's CIFAR-10 net).")
LAYERS = typer.Option(None, "--layers", min=1, max=256, help="DARTS: number of cells (e.g. 20 for the paper's CIFAR-10 net).")
INPUT_SIZE = typer.Option(None, "--input-size", min=1, max=2048, help="Input height and width in pixels.")
IN_CHANNELS = typer.Option(None, "--in-channels", min=1, max=64, help="Input image channels (1 grey, 3 RGB).")
PRECISION = typer.Option("fp32", "--precision", callback=precision_value,
                         help="fp32, fp16 or int8: the table and artifacts at that precision (which a backend runs: "
                              "'edgenas devices show D').")
CLASSES = typer.Option(None, "--classes", min=1, max=100_000, help="Number of output classes.")


def config_overrides(channels: Optional[int] = None, layers: Optional[int] = None, input_size: Optional[int] = None,
                     in_channels: Optional[int] = None, classes: Optional[int] = None) -> dict:
    return {k: v for k, v in dict(channels=channels, layers=layers, input_size=input_size,
                                 in_channels=in_channels, num_classes=classes).items() if v is not None}


def resolve_genotype(source: str, space=None, preset=None, **overrides):
    """(Genotype, SearchSpace) from a file, run directory, JSON or DARTS text."""
    g = load_genotype(source, space=space, preset=preset, overrides=config_overrides(**overrides))
    return g, g.resolve()
