"""Where work runs: in this process (``local``) or on a Ray cluster (``ray``).

Callers hand an executor a function and a list of tasks with declared resources (CPUs, GPUs and
the device a measurement needs); the executor runs them and reports each outcome as it comes.
Ray is an optional extra (``pip install 'edgenas[ray]'``): asking for it without Ray installed,
or for an address where no cluster answers, is one ``InputError`` line.
"""

from __future__ import annotations

from edgenas.errors import InputError
from edgenas.executors.base import Done, Executor, Resources, TaskLost
from edgenas.executors.local import LocalExecutor

EXECUTORS = ("local", "ray")


def create_executor(name: str = "local", address: str | None = None) -> Executor:
    """The executor called ``name``; ``address`` (host:port of a Ray head) only with ``ray``."""
    if name == "local":
        if address:
            raise InputError("--ray-address goes with --executor ray")
        return LocalExecutor()
    if name == "ray":
        from edgenas.executors.ray_executor import RayExecutor

        return RayExecutor(address)
    raise InputError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")


__all__ = ["Done", "Executor", "LocalExecutor", "Resources", "TaskLost", "EXECUTORS", "create_executor"]
