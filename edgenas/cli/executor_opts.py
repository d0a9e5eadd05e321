"""``--executor local|ray`` and ``--ray-address``: the same two flags on every command that can fan out."""

from __future__ import annotations

from typing import Optional

import typer

EXECUTOR = typer.Option("local", "--executor",
                        help="Where tasks run: local (this process) or ray (a Ray cluster; pip install 'edgenas[ray]').")
RAY_ADDRESS: Optional[str] = typer.Option(None, "--ray-address",
                                          help="HOST:PORT of a Ray head (ray start --head); default with --executor "
                                               "ray: a one-machine Ray started here.")


def executor_from_flags(executor: str, ray_address: Optional[str]):
    """The executor the flags ask for (checked before any work starts)."""
    from edgenas.executors import create_executor

    return create_executor(executor, ray_address)
