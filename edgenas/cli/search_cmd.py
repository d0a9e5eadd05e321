"""``edgenas search``: hardware-aware search against a latency table, end to end."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from edgenas.cli._output import console, emit
from edgenas.cli.common import JSON, PRECISION, finite
from edgenas.cli.executor_opts import EXECUTOR, RAY_ADDRESS, executor_from_flags
from edgenas.cli.progress import progress_bar
from edgenas.errors import InputError
from edgenas.profiling.protocol import TARGET_TOLERANCE
from edgenas.search.base import list_strategies, strategy_class


def search(
    device: str = typer.Option("x86-64-host", "--device", "-d", help="Target device (its table prices every op)."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="Backend of the device's table."),
    target_ms: float = typer.Option(..., "--target-ms", callback=finite, help="Latency target in ms (batch --batch on the device)."),
    strategy: str = typer.Option("proxyless", "--strategy", "-s",
                                 help="proxyless | darts | enas | spos | random"),
    space: str = typer.Option("proxyless", "--space", help="darts, proxyless or nb201."),
    preset: str = typer.Option("small", "--preset", help="Space preset; its ops must be in the table."),
    data: str = typer.Option("fashion-mnist", "--data",
                             help="fashion-mnist[:DIR] | cifar10:DIR | folder:DIR | synthetic (smoke tests)."),
    budget: int = typer.Option(300, "--budget", min=1, max=10_000_000, help="Weight-update steps of the search phase (same for every strategy)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, max=65536, help="Training batch size."),
    top_k: int = typer.Option(3, "--top-k", min=1, max=1000, help="Candidates retrained from scratch."),
    retrain_epochs: float = typer.Option(2.0, "--retrain-epochs", min=0.001, max=10000.0, callback=finite, help="Epochs over the weights split per candidate."),
    retrain_rung: float = typer.Option(1 / 3, "--retrain-rung", min=0.001, max=1.0, callback=finite,
                                       help="Successive halving: every top-k candidate trains this share of its steps, "
                                            "then only the best on the arch split trains on (1: all train fully)."),
    population: int = typer.Option(40, "--population", min=1, max=1_000_000, help="Candidates ranked at the end (samples / evolution)."),
    batch: int = typer.Option(1, "--batch", min=1, max=65536, help="Latency batch size (the table's)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="Table threads (default: the device profile's)."),
    precision: str = PRECISION,
    train_size: int = typer.Option(12000, "--train-size", min=1, max=100_000_000, help="Images in the weights split."),
    arch_size: int = typer.Option(4000, "--arch-size", min=1, max=100_000_000, help="Images in the architecture split."),
    test_size: Optional[int] = typer.Option(None, "--test-size", min=1, max=100_000_000, help="Test images used (default: the whole test set)."),
    eval_examples: int = typer.Option(2000, "--eval-examples", min=1, max=100_000_000,
                                      help="Arch-split images used to rank each candidate with shared weights."),
    latency_loss: Optional[str] = typer.Option(None, "--latency-loss",
                                               help="proxyless: mul#log | add#linear; darts: hinge | smooth."),
    lam: Optional[float] = typer.Option(None, "--lambda", min=0.0, max=1e6, callback=finite, help="Latency penalty weight (add#linear, hinge, smooth)."),
    order: int = typer.Option(1, "--order", min=1, max=2, help="DARTS: 1 (first order) or 2 (second order)."),
    partial_channels: int = typer.Option(1, "--partial-channels", min=1, max=1024,
                                         help="DARTS: PC-DARTS, ops on 1/K of each edge's channels plus edge "
                                              "normalisation (K must divide the supernet's channels; 1: plain DARTS)."),
    search_channels: Optional[int] = typer.Option(None, "--search-channels", min=1, max=8192,
                                                  help="DARTS: channels of the proxy supernet (the genotype is deployed at the preset's)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<strategy>-<space>-<device>-<T>ms-s<seed>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Measure the retrained top-k on this machine."),
    torch_device: str = typer.Option("auto", "--torch-device", help="auto (CUDA when present), cpu or cuda."),
    tolerance: float = typer.Option(TARGET_TOLERANCE, "--tolerance", callback=finite,
                                    help="Share by which a measured latency may exceed the target and still count as met "
                                         "(the measurement noise between processes; 0 for a hard limit)."),
    executor: str = EXECUTOR,
    ray_address: Optional[str] = RAY_ADDRESS,
    as_json: bool = JSON,
):
    """Search an architecture predicted (and measured) under --target-ms on a device.

    Examples:
      edgenas search --device x86-64-host --backend onnxruntime --target-ms 0.8 --strategy proxyless
      edgenas search --device x86-64-host --backend onnxruntime --space darts --target-ms 2 --strategy darts
      edgenas search --space darts --target-ms 2 --strategy darts --partial-channels 4
      edgenas search --backend onnxruntime --precision int8 --target-ms 0.15   (then: edgenas export RUN --precision int8)
      edgenas search --device pixel-1 --backend tflite --space proxyless --preset mobile --target-ms 80
    """
    from edgenas.search.pipeline import SearchConfig, default_run_dir, run_search

    from edgenas.profiling.base import backend_class

    backend_class(backend).check_precision(precision)
    if strategy not in list_strategies():
        raise InputError(f"unknown strategy {strategy!r}; known: {', '.join(list_strategies())}")
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,2})?", torch_device):
        raise InputError(f"--torch-device must be auto, cpu, cuda or cuda:N, got {torch_device!r}")
    if target_ms <= 0:
        raise InputError(f"--target-ms must be positive, got {target_ms}")
    if not 0 <= tolerance < 1:
        raise InputError(f"--tolerance must be a share in [0, 1), got {tolerance}")
    opts = {}
    if latency_loss:
        opts["latency_loss"] = latency_loss
    if lam is not None:
        opts["lam"] = lam
    if "order" in strategy_class(strategy).cli_options:
        opts["order"] = order
        if partial_channels > 1:
            opts["partial_channels"] = partial_channels
    elif partial_channels > 1:
        raise InputError(f"--partial-channels is an option of --strategy darts, not {strategy}")
    overrides = {"channels": search_channels} if search_channels else {}
    cfg = SearchConfig(device=device, backend=backend, target_ms=target_ms, strategy=strategy, space=space,
                       preset=preset, data=data, batch=batch, threads=threads, precision=precision, seed=seed,
                       budget=dict(steps=budget, batch_size=batch_size, top_k=top_k, retrain_epochs=retrain_epochs,
                                   retrain_rung=retrain_rung,
                                   population=population, eval_examples=eval_examples),
                       strategy_options=opts, search_overrides=overrides, weights_size=train_size,
                       arch_size=arch_size, test_size=test_size, measure=measure, torch_device=torch_device,
                       tolerance=tolerance)
    out = out or default_run_dir(cfg)
    runner = executor_from_flags(executor, ray_address)  # the top-k retrain there
    with runner, progress_bar() as bar:
        tasks: dict[str, int] = {}

        def on_progress(phase, done, total):
            key = phase.split(" (")[0]
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=total, detail="")
            bar.update(tasks[key], total=total, completed=done, detail=phase)

        summary = run_search(cfg, out, resume=resume, on_progress=on_progress, executor=runner)

    def render(s):
        c = s["chosen"]
        meas = (f"{c['measured_ms']:.3f} ms measured (raw median this run {c['measured_raw_ms']:.3f} ms)"
                if c["measured_ms"] is not None else s["measurement"])
        console.print(f"[bold]{s['strategy']}[/bold]: test accuracy {100 * c['test_acc']:.2f}%, predicted "
                      f"{c['predicted_ms']:.3f} ms, {meas} (target {s['target_ms']} ms: "
                      f"{('met' if c['measured_ms'] is not None else 'met by prediction') if c['meets_target'] else 'MISSED'})")
        for name in ("genotype", "weights", "plot", "summary"):
            console.print(f"  {name}: {s['files'][name]}")

    emit(summary, as_json, render)
