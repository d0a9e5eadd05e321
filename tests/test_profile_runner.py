"""Resumable profiling: interrupted runs keep finished entries; --resume measures only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from edgenas.devices import get_profile
from edgenas.errors import InputError
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.runner import profile_ops, space_specs

QUICK = ProtocolSettings.quick()


def _specs():
    return space_specs(["proxyless"], "small")[:14]


def test_interrupted_profile_keeps_finished_chunks_and_resume_fills_the_rest(tmp_path):
    store = TableStore(tmp_path)
    device, backend = get_profile("x86-64-host"), create_backend("torch-cpu")
    specs = _specs()

    def stop_after_first_chunk(ev):
        if ev.phase == "saved":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile_ops(device, backend, specs, [1], store, settings=QUICK, chunk_size=5, on_event=stop_after_first_chunk)
    first = store.load("x86-64-host", "torch-cpu").df
    assert len(first) == 5

    with pytest.raises(InputError, match="--resume"):
        profile_ops(device, backend, specs, [1], store, settings=QUICK, chunk_size=5)

    r = profile_ops(device, backend, specs, [1], store, resume=True, settings=QUICK, chunk_size=5)
    full = store.load("x86-64-host", "torch-cpu").df
    assert r.measured == len(specs) - 5 and r.skipped_existing == 5
    assert len(full) == len(specs)
    kept = full.set_index("op_key").loc[first["op_key"]]
    assert (kept["run_id"].to_numpy() == first["run_id"].to_numpy()).all()  # not re-measured
    assert (kept["median_ms"].to_numpy() == first["median_ms"].to_numpy()).all()

    again = profile_ops(device, backend, specs, [1], store, resume=True, settings=QUICK)
    assert again.measured == 0


def test_batches_are_separate_entries_with_environment_recorded(tmp_path):
    store = TableStore(tmp_path)
    specs = _specs()[:3]
    profile_ops(get_profile("x86-64-host"), create_backend("torch-cpu"), specs, [1, 4], store, settings=QUICK)
    t = store.load("x86-64-host", "torch-cpu")
    assert sorted(t.df["batch"].unique()) == [1, 4] and len(t) == 6
    run = next(iter(t.runs.values()))
    env = run["environment"]
    assert env["cpu_model"] and env["libraries"]["torch"] and run["protocol"]["min_rounds"] == QUICK.min_rounds
    assert run["reference_op"].startswith("sep_conv_3x3")


def test_backend_not_in_device_profile_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not list backend"):
        profile_ops(get_profile("pixel-1"), create_backend("onnxruntime"), _specs(), [1], TableStore(tmp_path),
                    settings=QUICK)


@pytest.mark.slow
def test_cli_profile_killed_halfway_then_resumed(tmp_path):
    """The issue's acceptance run: onnxruntime, DARTS small, SIGINT half way, --resume."""
    env = {**os.environ, "EDGENAS_CACHE": str(tmp_path / "cache"), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "edgenas", "profile", "--device", "x86-64-host", "--backend", "onnxruntime",
           "--space", "darts", "--preset", "small", "--batch", "1,8", "--quick", "--tables-dir", str(tmp_path / "t")]
    # two batch sizes: 84 entries, so after the first chunk of 12 lands most of the run is still ahead
    # (with one batch a loaded host could finish the last 30 before SIGINT arrived)
    table = tmp_path / "t" / "x86-64-host" / "onnxruntime.csv"
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if table.exists() and len(pd.read_csv(table)) >= 12:
            break
        time.sleep(0.2)
    assert p.poll() is None, f"profile ended before it could be interrupted: {p.stderr.read()[-500:]}"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err
    before = pd.read_csv(table)
    assert 12 <= len(before) < 84

    done = subprocess.run(cmd + ["--resume", "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-800:]
    report = json.loads(done.stdout)["backends"][0]
    after = pd.read_csv(table)
    assert len(after) == 84  # every non-zero-cost op instance of the DARTS small preset, at batch 1 and 8
    assert report["measured"] == 84 - len(before) and report["already_present"] == len(before)
    old = after.set_index(["op_key", "batch"]).loc[list(zip(before["op_key"], before["batch"]))]
    assert (old["run_id"].to_numpy() == before["run_id"].to_numpy()).all()
    assert "━" in done.stderr or "%" in done.stderr or "elapsed" in done.stderr  # the progress bar ran
