"""Concurrent writers lose nothing: real processes update one table, calibration file and artifact cache at once.

Every writer re-reads the file under its lock (``edgenas.io.locked``) before writing, so rows,
calibrations and models added by another process in between are kept. Without the lock the table
test loses rows on most runs (each process would write back its own stale copy).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path


from edgenas.latency.predictor import Calibration, CalibrationStore
from edgenas.latency.store import TableStore
from edgenas.latency.table import KEY_COLUMNS, LatencyTable

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "latency_tables" / "pixel-1" / "tflite.csv"
PROCS, UPDATES = 3, 12


def _add_rows(root: str, proc: int, barrier) -> None:
    """One writer: UPDATES updates of the same table, each adding one row under its own batch size."""
    store = TableStore(root)
    row = LatencyTable.read(SHIPPED).df.head(1)
    barrier.wait()
    for i in range(UPDATES):
        new = row.assign(batch=100 * (proc + 1) + i, run_id=f"p{proc}")
        store.update("dev", "tflite", lambda t: t.upsert(new))


def _put_calibrations(root: str, proc: int, barrier) -> None:
    cals = CalibrationStore(TableStore(root))
    barrier.wait()
    for i in range(UPDATES):
        cals.put("dev", "tflite", f"p{proc}-{i}", Calibration(a=1.0 + proc, n_networks=i))


def _run_all(target, root) -> None:
    ctx = mp.get_context("spawn")  # children start clean (no forked torch threads)
    barrier = ctx.Barrier(PROCS)
    procs = [ctx.Process(target=target, args=(str(root), p, barrier)) for p in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * PROCS


def test_concurrent_table_updates_keep_every_row(tmp_path):
    _run_all(_add_rows, tmp_path)
    table = TableStore(tmp_path).load("dev", "tflite", missing_ok=False)  # also checks the meta's checksum
    assert len(table) == PROCS * UPDATES
    assert sorted(table.df["batch"]) == sorted(100 * (p + 1) + i for p in range(PROCS) for i in range(UPDATES))
    assert not table.df.duplicated(KEY_COLUMNS).any()


def test_concurrent_calibrations_keep_every_key(tmp_path):
    _run_all(_put_calibrations, tmp_path)
    got = CalibrationStore(TableStore(tmp_path)).load_all("dev", "tflite")
    assert set(got) == {f"p{p}-{i}" for p in range(PROCS) for i in range(UPDATES)}


def test_update_sees_rows_written_after_the_caller_read(tmp_path):
    """The lost-update case itself, in one process: a stale in-memory copy must not win."""
    store = TableStore(tmp_path)
    row = LatencyTable.read(SHIPPED).df.head(1)
    store.update("dev", "tflite", lambda t: t.upsert(row.assign(batch=1)))
    stale = store.load("dev", "tflite")
    store.update("dev", "tflite", lambda t: t.upsert(row.assign(batch=2)))  # another writer
    _, written = store.update("dev", "tflite", lambda t: t.upsert(row.assign(batch=3)))
    assert sorted(written.df["batch"]) == [1, 2, 3] and len(stale) == 1


def test_artifact_temp_files_are_unique_per_process(tmp_path):
    """Two processes exporting the very same op artifact into one cache at once both succeed."""
    script = ("import sys; from edgenas.ops.spec import OpSpec; from edgenas.profiling.base import create_backend;"
              "from edgenas.profiling.runner import prepare_op;"
              "spec = OpSpec.from_key(sys.argv[1]); be = create_backend('onnxruntime');"
              "t = prepare_op(be, spec, 1, sys.argv[2]); t(); t.close(); print('ok')")
    key = "skip_connect-input:8x8x4-output:4x4x4-stride:2"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, key, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    files = sorted(p.name for p in (tmp_path / "onnxruntime").iterdir())
    assert len(files) == 1 and files[0].endswith(".onnx"), files  # one artifact, no stray .partial files


def test_cli_profile_and_tables_import_on_one_table(tmp_path):
    """A ``profile`` and a ``tables import`` of a published table, started together on one table."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGENAS_TABLES": str(tmp_path), "EDGENAS_CACHE": str(tmp_path / "c")}
    yaml = tmp_path / "published.yaml"
    yaml.write_text('"skip_connect-input:8x8x4-output:4x4x4-stride:2": {mean: 0.5, std: 0.01, count: 10}\n')
    profile = [sys.executable, "-m", "edgenas", "profile", "--device", "x86-64-host", "--backend", "onnxruntime",
               "--ops", "max_pool_3x3-input:8x8x4-output:8x8x4-stride:1,avg_pool_3x3-input:8x8x4-output:8x8x4-stride:1",
               "--quick"]
    imp = [sys.executable, "-m", "edgenas", "tables", "import", str(yaml), "--format", "proxylessnas",
           "--device", "x86-64-host", "--backend", "onnxruntime"]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in (profile, imp)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-800:] for o in outs]
    table = TableStore(tmp_path).load("x86-64-host", "onnxruntime", missing_ok=False)
    assert {k.split("-")[0] for k in table.df["op_key"]} == {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}
