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


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgenas", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=600)


@pytest.mark.parametrize("args, says", [
    (["--targets", "fast"], "--targets: 'fast' is not a number"),
    (["--targets", "0.5", "--seeds", "-1"], "--seeds must be"),
    (["--targets", "0.5", "--strategies", "grid"], "unknown strategy 'grid'"),
    (["--targets", "0.5", "--executor", "dask"], "unknown executor 'dask'"),
])
def test_bad_sweep_input_is_one_line(tmp_path, args, says):
    p = _cli("sweep", "--out", tmp_path / "s", *args)
    assert p.returncode == 2 and says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "s").exists()


def test_local_sweep_writes_each_trial_once_and_a_restart_runs_only_the_rest(tmp_path):
    """No Ray: two trials, search only; one trial's file removed, the restart reruns that one alone."""
    import json

    args = ["sweep", "--targets", "0.6", "--seeds", "0,1", "--strategies", "random", "--out", tmp_path / "s",
            "--data", "synthetic", "--budget", "4", "--batch-size", "16", "--top-k", "1", "--retrain-epochs", "0.05",
            "--population", "2", "--eval-examples", "32", "--train-size", "200", "--arch-size", "100",
            "--test-size", "100", "--no-measure", "--json"]
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["finished"] == 2 and rep["latency"] == "predicted_ms" and rep["missing"] == []
    kept = tmp_path / "s" / "trials" / "random-t0.6ms-s0.json"
    stamp = kept.stat().st_mtime_ns
    (tmp_path / "s" / "trials" / "random-t0.6ms-s1.json").unlink()
    rep2 = json.loads(_cli(*args).stdout)
    assert rep2["skipped_finished"] == 1 and rep2["trials"] == rep["trials"] and kept.stat().st_mtime_ns == stamp
    md = (tmp_path / "s" / "report.md").read_text()
    assert "2 of 2 trials finished" in md and (tmp_path / "s" / "front.png").stat().st_size > 0
    p = _cli(*[a if a != "4" else "5" for a in args])  # other search settings in the same directory
    assert p.returncode == 2 and "other search settings" in p.stderr
