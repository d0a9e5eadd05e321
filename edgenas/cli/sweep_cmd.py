"""``edgenas sweep``: targets x seeds x strategies as one resumable experiment with a combined report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgenas.cli._output import console, emit, err_console
from edgenas.cli.common import JSON
from edgenas.cli.common_lists import str_list
from edgenas.cli.executor_opts import EXECUTOR, RAY_ADDRESS, executor_from_flags
from edgenas.errors import InputError, MeasurementError


def sweep(
    targets: str = typer.Option(..., "--targets", help="Latency targets in ms, comma-separated (e.g. 0.1,0.15)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds, comma-separated."),
    strategies: str = typer.Option("proxyless", "--strategies", help="Strategies, comma-separated."),
    out: Path = typer.Option(..., "--out", help="Sweep directory; rerun the same command to continue it."),
    device: str = typer.Option("x86-64-host", "--device", "-d", help="Target device (its table prices every op)."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="Backend of the device's table."),
    space: str = typer.Option("proxyless", "--space", help="darts, proxyless or nb201."),
    preset: str = typer.Option("small", "--preset", help="Space preset."),
    data: str = typer.Option("fashion-mnist", "--data", help="As for 'edgenas search'."),
    budget: int = typer.Option(300, "--budget", min=1, max=10_000_000, help="Search steps per trial."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, max=65536, help="Training batch size."),
    top_k: int = typer.Option(3, "--top-k", min=1, max=1000, help="Candidates retrained per trial."),
    retrain_epochs: float = typer.Option(2.0, "--retrain-epochs", min=0.001, max=10000.0, help="Retraining epochs."),
    population: int = typer.Option(40, "--population", min=1, max=1_000_000, help="Candidates ranked per trial."),
    eval_examples: int = typer.Option(2000, "--eval-examples", min=1, max=100_000_000, help="Ranking examples."),
    train_size: int = typer.Option(12000, "--train-size", min=1, max=100_000_000, help="Weights split size."),
    arch_size: int = typer.Option(4000, "--arch-size", min=1, max=100_000_000, help="Architecture split size."),
    test_size: Optional[int] = typer.Option(None, "--test-size", min=1, max=100_000_000, help="Test images used."),
    trial_threads: int = typer.Option(1, "--trial-threads", min=1, max=1024,
                                      help="Torch threads (and CPUs reserved) per trial, the same on every node so a "
                                           "trial's result does not depend on where it ran."),
    measure: bool = typer.Option(True, "--measure/--no-measure",
                                 help="Measure each trial's network on the device (the front's latency)."),
    executor: str = EXECUTOR,
    ray_address: Optional[str] = RAY_ADDRESS,
    as_json: bool = JSON,
):
    """Run every (target, seed, strategy) search, measure each chosen network, and report the front.

    Examples:
      edgenas sweep --targets 0.1,0.15 --seeds 0,1,2 --strategies proxyless,spos --out sweeps/a
      edgenas sweep --targets 0.1,0.15 --strategies proxyless,spos --out sweeps/a --executor ray --ray-address HEAD:6379
    """
    from edgenas.search.base import list_strategies
    from edgenas.search.pipeline import SearchConfig
    from edgenas.sweep import Sweep, SweepPlan

    tlist = [float(t) for t in _floats(targets)]
    glist = str_list(strategies)
    for g in glist:
        if g not in list_strategies():
            raise InputError(f"unknown strategy {g!r}; known: {', '.join(list_strategies())}")
    base = SearchConfig(device=device, backend=backend, target_ms=tlist[0], space=space, preset=preset, data=data,
                        budget=dict(steps=budget, batch_size=batch_size, top_k=top_k, retrain_epochs=retrain_epochs,
                                    population=population, eval_examples=eval_examples),
                        weights_size=train_size, arch_size=arch_size, test_size=test_size)
    plan = SweepPlan(base, tlist, _seeds(seeds), glist, trial_threads)
    sw = Sweep(out, plan, measure=measure)
    already = len(sw.finished()) if (out / "sweep.json").exists() else 0

    def on_trial(tid, rec, error):
        if error:
            err_console.print(f"[yellow]{tid}: {error}[/yellow]")
        elif not as_json:
            console.print(f"{tid}: test {100 * rec['test_acc']:.2f}%, predicted {rec['predicted_ms']:.3f} ms"
                          + (f", measured {rec['measured_ms']:.3f} ms" if "measured_ms" in rec else ""))

    with executor_from_flags(executor, ray_address) as runner:
        rep = sw.run(runner, on_trial)
    rep["skipped_finished"] = already

    def render(r):
        console.print(f"{r['finished']} of {r['total']} trials finished ({r['skipped_finished']} from before); "
                      f"front: {', '.join(r['front'])}")
        for k, v in r["files"].items():
            if v:
                console.print(f"  {k}: {v}")

    emit(rep, as_json, render)
    if rep["missing"]:
        raise MeasurementError(f"{len(rep['missing'])} of {rep['total']} trials not finished "
                               f"({', '.join(rep['missing'][:4])}{'...' if len(rep['missing']) > 4 else ''}); "
                               f"rerun the same command to run only those")


def _floats(text: str) -> list[float]:
    import math

    vals = []
    for part in str_list(text):
        try:
            v = float(part)
        except ValueError:
            raise InputError(f"--targets: {part!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"--targets: each target must be a positive number of ms, got {part}")
        vals.append(v)
    if not vals:
        raise InputError("--targets needs at least one target")
    return vals


def _seeds(text: str) -> list[int]:
    parts = str_list(text)
    if not parts or not all(p.isdigit() and int(p) < 2**32 for p in parts):
        raise InputError(f"--seeds must be comma-separated integers from 0 to 2**32-1 (e.g. 0,1,2), got {text!r}")
    return list(dict.fromkeys(int(p) for p in parts))
