"""Retraining the top-k candidates as executor tasks: the same seeds and thread count wherever they run.

Candidate ``i`` of a run always trains with seed ``run seed + i`` and the driver's torch thread
count (a float sum over a different number of threads can round differently), so the local and
the Ray executor give the same weights and accuracies for the same seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from edgenas.executors.base import Executor, Resources
from edgenas.executors.local import LocalExecutor


@dataclass
class RetrainTask:
    """What one retraining needs; also stands in for the ``SearchContext`` that ``retrain`` reads."""

    space: Any
    data: Any
    budget: Any
    device: str
    arch: Any
    epochs: float
    seed: int
    threads: int
    index: int
    of: int


def _retrain_task(task: RetrainTask, on_progress: Callable | None = None):
    """(state dict, arch accuracy, test accuracy) of one candidate trained from scratch."""
    from edgenas.search.pipeline import retrain

    if torch.get_num_threads() != task.threads:
        torch.set_num_threads(task.threads)
    on_step = (lambda s, n: on_progress(f"retrain {task.index + 1}/{task.of}", s, n)) if on_progress else None
    model, arch_acc, test_acc = retrain(task, task.arch, task.epochs, seed=task.seed, on_step=on_step)
    return {k: v.contiguous() for k, v in model.state_dict().items()}, arch_acc, test_acc


def retrain_top(executor: Executor | None, ctx, top: list, start: int, epochs: float, seed: int,
                on_progress: Callable | None = None) -> Iterator[tuple[int, dict, float, float]]:
    """Retrain ``top[start:]``; yields (index, state dict, arch acc, test acc) in index order, each as soon as
    every earlier one is done (the run's checkpoint keeps a prefix)."""
    executor = executor or LocalExecutor()
    tasks = [RetrainTask(ctx.space, ctx.data, ctx.budget, ctx.device, top[i].arch, epochs, seed + i,
                         torch.get_num_threads(), i, len(top)) for i in range(start, len(top))]
    fn = functools.partial(_retrain_task, on_progress=on_progress) if executor.name == "local" else _retrain_task
    res = Resources(num_cpus=1, num_gpus=1 if str(ctx.device).startswith("cuda") else 0)
    waiting: dict[int, tuple] = {}
    nxt = start
    for d in executor.run(fn, tasks, res):
        if not d.ok:
            raise d.error
        waiting[start + d.index] = d.value
        while nxt in waiting:
            yield (nxt, *waiting.pop(nxt))
            nxt += 1
