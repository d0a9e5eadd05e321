"""Executors without a cluster: the local executor's contract, and --executor ray where Ray is not installed.

The Ray cluster tests are in tests/test_ray.py (skipped without Ray); these run everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgenas.errors import InputError
from edgenas.executors import LocalExecutor, Resources, create_executor

ROOT = Path(__file__).resolve().parents[1]


def _half(x):
    if x < 0:
        raise InputError(f"negative {x}")
    return x / 2


def test_local_executor_reports_each_task_and_keeps_order():
    ex = create_executor("local")
    assert isinstance(ex, LocalExecutor)
    done = list(ex.run(_half, [4, -1, 6], Resources(device="x86-64-host")))
    assert [(d.index, d.value) for d in done if d.ok] == [(0, 2.0), (2, 3.0)]
    assert [str(d.error) for d in done if not d.ok] == ["negative -1"]
    assert ex.map(_half, [2, 8]) == [1.0, 4.0]
    with pytest.raises(InputError, match="negative"):
        ex.map(_half, [2, -8])


def test_unknown_executor_and_stray_address():
    with pytest.raises(InputError, match="unknown executor 'dask'"):
        create_executor("dask")
    with pytest.raises(InputError, match="--ray-address goes with --executor ray"):
        create_executor("local", "127.0.0.1:6379")


def test_ray_not_installed_is_one_line(tmp_path):
    """A real process where ``import ray`` fails (a package named ray that raises ImportError shadows any install)."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "edgenas", "search", "--target-ms", "1", "--executor", "ray"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 3, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed here: pip install 'edgenas[ray]' (or pip install ray)"]
