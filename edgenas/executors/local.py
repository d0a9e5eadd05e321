"""Tasks one after another in this process: the default, and the reference Ray results must equal."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from edgenas.errors import EdgeNASError
from edgenas.executors.base import Done, Executor, Resources


class LocalExecutor(Executor):
    """In order, in this process; a user error (``EdgeNASError``) ends one task, anything else is a bug and raises."""

    name = "local"

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
            resources: Resources | Callable[[Any], Resources] = Resources()) -> Iterator[Done]:
        for i, task in enumerate(tasks):
            try:
                value = fn(task)
            except EdgeNASError as e:
                yield Done(i, error=e)
                continue
            yield Done(i, value)
