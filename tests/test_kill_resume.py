"""kill -9 during profile, then --resume: nothing finished is lost, and the table stays readable
(issue 13 keeps this held now that tables carry a hash in their meta)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from edgenas.latency.store import TableStore
from edgenas.latency.table import LatencyTable


def test_a_crash_between_the_meta_and_the_csv_write_leaves_a_readable_table(tmp_path, monkeypatch):
    """The meta is replaced first; a crash before the CSV's rename leaves the old CSV, which the meta's
    previous hash still vouches for."""
    from edgenas.paths import REPO_ROOT
    import edgenas.latency.table as table_mod

    store = TableStore(tmp_path)
    old = LatencyTable.read(REPO_ROOT / "latency_tables" / "pixel-1" / "tflite.csv")
    store.save(old, "pixel-1", "tflite")
    smaller = LatencyTable(old.df.iloc[:10].copy(), old.runs)

    def crash(*a, **k):
        raise KeyboardInterrupt  # the process dies here: new meta on disk, old CSV in place

    monkeypatch.setattr(table_mod, "atomic_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(smaller, "pixel-1", "tflite")
    monkeypatch.undo()
    assert len(store.load("pixel-1", "tflite")) == len(old)  # the old table, still accepted
    (tmp_path / "pixel-1" / "tflite.csv").write_text("garbage\n")
    with pytest.raises(Exception, match="does not match the hash"):
        store.load("pixel-1", "tflite")


@pytest.mark.slow
def test_cli_profile_killed_with_sigkill_mid_chunk_then_resumed(tmp_path):
    env = {**os.environ, "EDGENAS_CACHE": str(tmp_path / "cache"), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "edgenas", "profile", "--device", "x86-64-host", "--backend", "onnxruntime",
           "--space", "darts", "--preset", "small", "--batch", "1,8", "--quick", "--tables-dir", str(tmp_path / "t")]
    table = tmp_path / "t" / "x86-64-host" / "onnxruntime.csv"
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if table.exists() and len(pd.read_csv(table)) >= 12:
            break
        time.sleep(0.2)
    assert p.poll() is None, f"profile ended before it could be killed: {p.stderr.read()[-500:]}"
    time.sleep(0.5)  # into the next chunk
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    before = LatencyTable.read(table).df  # still valid: hash, rows, latencies
    assert 12 <= len(before) < 84

    done = subprocess.run(cmd + ["--resume", "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-800:]
    report = json.loads(done.stdout)["backends"][0]
    after = LatencyTable.read(table).df
    assert len(after) == 84 and report["already_present"] == len(before)
    old = after.set_index(["op_key", "batch"]).loc[list(zip(before["op_key"], before["batch"]))]
    assert (old["run_id"].to_numpy() == before["run_id"].to_numpy()).all()  # nothing finished was re-measured
