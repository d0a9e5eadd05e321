"""The executor interface: run a function over tasks with declared resources, outcomes as they finish."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from edgenas.errors import EdgeNASError


@dataclass(frozen=True)
class Resources:
    """What one task holds while it runs.

    ``device``: the device profile a task measures on. On Ray it becomes one unit of the custom
    resource ``device:<name>``, which only the node holding that device offers (``ray start
    --resources='{"device:<name>": 1}'``), so measurements run there and never two at a time.
    """

    num_cpus: float = 1
    num_gpus: float = 0
    device: str | None = None

    def ray_resources(self) -> dict[str, float]:
        return {device_resource(self.device): 1} if self.device else {}


def device_resource(device: str) -> str:
    """The Ray custom resource a node offers for a device it holds."""
    return f"device:{device}"


class TaskLost(EdgeNASError):
    """A task that could not finish: its node died and no live node can run it."""

    exit_code = 5


@dataclass
class Done:
    """One finished task: ``index`` into the task list, and its value or the error it ended with."""

    index: int
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(ABC):
    """Runs ``fn(task)`` for every task; the only extension point callers see."""

    name: str = ""

    @abstractmethod
    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
            resources: Resources | Callable[[Any], Resources] = Resources()) -> Iterator[Done]:
        """Yield a ``Done`` per task as each finishes (any order); a failed task yields its error."""

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
            resources: Resources | Callable[[Any], Resources] = Resources()) -> list:
        """The values in task order; the first error is raised."""
        out: dict[int, Any] = {}
        for d in self.run(fn, tasks, resources):
            if not d.ok:
                raise d.error
            out[d.index] = d.value
        return [out[i] for i in range(len(tasks))]

    def close(self) -> None:
        """Release what the executor holds (a Ray connection); a no-op locally."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def resources_of(resources, task) -> Resources:
    return resources(task) if callable(resources) else resources
