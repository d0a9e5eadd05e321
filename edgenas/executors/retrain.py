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
    stop: int | None = None  # train up to this step (None: to the end)
    resume: dict | None = None  # go on from the state a stopped task returned
    test: bool = True  # evaluate the test split too


@dataclass
class Retrained:
    """One task's outcome: the weights after ``step`` of ``steps`` steps, the state to go on from
    (None once finished), the arch-split accuracy and the test accuracy (None when not evaluated)."""

    weights: dict
    state: dict | None
    step: int
    steps: int
    arch_acc: float
    test_acc: float | None


def _retrain_task(task: RetrainTask, on_progress: Callable | None = None) -> Retrained:
    from edgenas.search.pipeline import retrain, retrain_steps

    if torch.get_num_threads() != task.threads:
        torch.set_num_threads(task.threads)
    on_step = (lambda s, n: on_progress(f"retrain {task.index + 1}/{task.of}", s, n)) if on_progress else None
    model, state, arch_acc, test_acc = retrain(task, task.arch, task.epochs, seed=task.seed, on_step=on_step,
                                               stop=task.stop, resume=task.resume, test=task.test)
    steps = retrain_steps(task, task.epochs)
    return Retrained({k: v.contiguous() for k, v in model.state_dict().items()}, state,
                     steps if state is None else state["step"], steps, arch_acc, test_acc)


def retrain_top(executor: Executor | None, ctx, top: list, indices: list[int], epochs: float, seed: int,
                on_progress: Callable | None = None, stop: int | None = None, resume: dict | None = None,
                test: bool = True) -> Iterator[tuple[int, Retrained]]:
    """Retrain ``top[i]`` for each i of ``indices`` (up to step ``stop``, on from ``resume[i]`` where given,
    the test split evaluated when ``test``); yields (i, Retrained) in the order of ``indices``, each as soon
    as every earlier one is done (the run's checkpoint keeps a prefix)."""
    executor = executor or LocalExecutor()
    resume = resume or {}
    tasks = [RetrainTask(ctx.space, ctx.data, ctx.budget, ctx.device, top[i].arch, epochs, seed + i,
                         torch.get_num_threads(), i, len(top), stop, resume.get(i), test) for i in indices]
    fn = functools.partial(_retrain_task, on_progress=on_progress) if executor.name == "local" else _retrain_task
    res = Resources(num_cpus=1, num_gpus=1 if str(ctx.device).startswith("cuda") else 0)
    waiting: dict[int, Retrained] = {}
    nxt = 0
    for d in executor.run(fn, tasks, res):
        if not d.ok:
            raise d.error
        waiting[d.index] = d.value
        while nxt in waiting:
            yield indices[nxt], waiting.pop(nxt)
            nxt += 1
