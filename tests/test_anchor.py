"""The quiet-state millisecond scale (latency/anchor.py), plain runtime truth and ``edgenas tables check``."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from edgenas.latency import anchor as anchors
from edgenas.latency.predictor import Calibration, LatencyPredictor
from edgenas.latency.table import LatencyTable, TableSelection, rows_from_stats
from edgenas.ops import is_zero_cost
from edgenas.spaces import create_space

SEL = TableSelection("dev", "onnxruntime", "fp32", 1, 1, "1.0")


def _table(space, runs: dict, ref_ms=0.05):
    rows = []
    for s in space.all_op_specs():
        if not is_zero_cost(s):
            ms = 0.01 + (sum(map(ord, s.key)) % 97) / 1000
            rows.append((s, {"median_ms": ms, "ref_ms": ref_ms, "ref_ratio": ms / 0.05, "stable": True}))
    run_id = next(iter(runs)) if runs else "r"
    return LatencyTable().upsert(rows_from_stats(rows, SEL, "1.0", run_id), runs)


def _run(p10s, host="elsewhere", cpu="Some CPU", batch=1, load=None):
    return {"kind": "profile", "environment": {"host_id": host, "cpu_model": cpu, "date": "2026-11-27T00:00:00"},
            "chunks": [{"batch": batch, "entries": 12, "rounds": 20, "reference_ms_p10_p50_p90": [p, 1.5 * p, 2 * p],
                        **({"other_load": load} if load is not None else {})} for p in p10s]}


def test_observation_is_the_fast_phase_not_the_median():
    slow_then_fast = [0.05] * 60 + [0.03] * 20  # a busy host most of the time, quiet a quarter of it
    o = anchors.observation(slow_then_fast, "test", other_load=0.0, host="h")
    assert o.median_ms == pytest.approx(0.05) and o.fast_ms == pytest.approx(0.03)
    assert anchors.observation([0.03] * (anchors.MIN_BLOCKS - 1), "test") is None  # too few blocks: no claim


def test_table_scale_is_its_fastest_session_not_the_rows_median():
    sp = create_space("proxyless", "small")
    table = _table(sp, {"r": _run([0.032, 0.031, 0.033])})
    a = anchors.resolve(table, SEL, local=False)
    assert a.basis == "table" and a.ms == pytest.approx(0.032)  # median of one run's chunk p10s
    assert "Some CPU" in a.note
    pred = LatencyPredictor(table, SEL, anchor=a)
    arch = sp.sample(random.Random(1))
    expected = sum(0.01 + (sum(map(ord, s.key)) % 97) / 1000 for s in sp.op_specs(arch) if not is_zero_cost(s))
    assert pred.predict(sp, arch).sum_ms == pytest.approx(expected * 0.032 / 0.05)


def test_this_host_sessions_win_and_busy_ones_only_when_nothing_else(tmp_path):
    sp = create_space("proxyless", "small")
    me = anchors.host_id()
    table = _table(sp, {"r": _run([0.05], host="other-vm")})
    store = anchors.AnchorStore(tmp_path / "anchors.json")
    key = anchors.anchor_key("onnxruntime", "1.0", "fp32", 1, 1)
    busy = anchors.AnchorObservation(0.012, 0.02, 40, me, "profile", other_load=1.8)
    store.add(key, [busy])
    a = anchors.resolve(table, SEL, local=True, auto=False, store=store)
    assert a.basis == "this-host" and a.ms == pytest.approx(0.012) and "busy" in a.note
    store.add(key, [anchors.AnchorObservation(0.017, 0.018, 40, me, "check", other_load=0.1),
                    anchors.AnchorObservation(0.016, 0.018, 40, "another-host", "check", other_load=0.0)])
    a = anchors.resolve(table, SEL, local=True, auto=False, store=store)
    assert a.ms == pytest.approx(0.017) and a.sessions == 2  # quiet sessions of this host only
    assert anchors.resolve(table, SEL, local=False, store=store).ms == pytest.approx(0.05)  # other devices: table


def test_a_calibration_holds_in_reference_units_when_the_anchor_moves():
    sp = create_space("proxyless", "small")
    table = _table(sp, {"r": _run([0.04])})
    arch = sp.sample(random.Random(2))
    cal = Calibration(a=0.6, b=0.05, c=0.002, model="scale+offset+per-op", anchor_ms=0.04)
    at_fit = LatencyPredictor(table, SEL, cal, anchor=anchors.resolve(table, SEL, local=False)).predict(sp, arch)
    faster = anchors.Anchor(0.02, "this-host", 3, 0.0, "")
    moved = LatencyPredictor(table, SEL, cal, anchor=faster).predict(sp, arch)
    assert moved.predicted_ms == pytest.approx(at_fit.predicted_ms / 2)  # every ms term scales with the anchor


def test_anchor_store_keeps_concurrent_writers(tmp_path):
    path = tmp_path / "anchors.json"
    code = ("import sys; from edgenas.latency.anchor import AnchorStore, AnchorObservation as O\n"
            "s = AnchorStore(sys.argv[1])\n"
            "for i in range(15): s.add('k', [O(0.01 + i / 1e4, 0.02, 10, sys.argv[2], 'test')])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), f"w{j}"]) for j in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    obs = anchors.AnchorStore(path).get("k")
    assert len(obs) == 45 and {o.host for o in obs} == {"w0", "w1", "w2"}


def test_load_meter_sees_another_busy_process():
    quiet = anchors.LoadMeter()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    meter = anchors.LoadMeter()
    busy.wait(timeout=60)
    assert meter.stop() > 0.5  # the spinning child held about one core
    assert quiet.stop() >= 0.0


def test_plain_timing_of_an_exported_file_in_fresh_processes(tmp_path):
    pytest.importorskip("onnxruntime")
    import torch

    from edgenas.profiling.onnxruntime_backend import export_onnx
    from edgenas.profiling.plain import time_fresh

    path = tmp_path / "m.onnx"
    export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval(), (1, 3, 16, 16), path)
    t = time_fresh(path, threads=1, processes=2, seconds=0.3)
    assert len(t.per_process_ms) == 2 and t.ms == min(t.per_process_ms) > 0
    # each process's figure is its fastest steady phase: at or below the median of all its blocks
    assert all(q <= m for q, m in zip(t.per_process_ms, t.per_process_median_ms)) and t.median_ms >= t.ms
    assert "10th percentile" in t.recipe
    assert t.runtime.startswith("onnxruntime")


def test_plain_timings_of_several_files_run_in_passes(tmp_path):
    """Each file's processes run a whole pass apart (a slow spell of the host hits one, not all)."""
    pytest.importorskip("onnxruntime")
    import torch

    from edgenas.profiling.onnxruntime_backend import export_onnx
    from edgenas.profiling.plain import time_fresh_many

    paths = []
    for k, ch in enumerate((4, 16)):
        paths.append(tmp_path / f"m{k}.onnx")
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, ch, 3, padding=1), torch.nn.ReLU()).eval(),
                    (1, 3, 16, 16), paths[-1])
    seen = []
    ts = time_fresh_many(paths, threads=1, processes=2, seconds=0.2, on_progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # 2 passes x 2 files, reported as they finish
    assert len(ts) == 2 and all(len(t.per_process_ms) == 2 and t.ms == min(t.per_process_ms) > 0 for t in ts)
    assert "in 2 passes over the 2 files" in ts[0].recipe and ts[0].recipe == ts[1].recipe


def test_tables_check_reanchors_this_machine(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENAS_CACHE", str(tmp_path / "cache"))
    common = ["--device", "x86-64-host", "--backend", "torch-cpu", "--tables-dir", tmp_path / "tables"]
    code, _, err = cli("profile", *common, "--space", "proxyless", "--preset", "small", "--quick",
                       "--time-cap", "5", "--json")
    assert code == 0, err
    code, out, err = cli("tables", "check", *common, "--entries", "2", "--processes", "1", "--quick", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["here_ms"] > 0 and r["here_sessions"] == 1 and len(r["entries"]) == 2
    assert r["scale_holds"] in (True, False) and r["verdict"]
    obs = anchors.AnchorStore().get(anchors.anchor_key("torch-cpu", json.loads(
        (tmp_path / "tables" / "x86-64-host" / "torch-cpu.meta.json").read_text())["runs"].popitem()[1]
        ["backend"]["runtime_version"], "fp32", 1, 1))
    assert {o.source for o in obs} >= {"check", "profile"}
    from edgenas.latency.store import TableStore

    table = TableStore(tmp_path / "tables").load("x86-64-host", "torch-cpu")
    now = anchors.resolve(table, TableSelection("x86-64-host", "torch-cpu", "fp32", 1, 1), local=True, auto=False)
    assert now.basis == "this-host" and r["anchor_now_ms"] == pytest.approx(now.ms)
    # the fast end of this host's quiet sessions (all of them when every session ran on a busy host)
    fast = [o.fast_ms for o in ([o for o in now.observations if not o.busy] or now.observations)]
    assert min(fast) <= now.ms <= float(np.median(fast))
    code, _, err = cli("tables", "check", "--device", "pixel-7", "--backend", "tflite", "--tables-dir",
                       tmp_path / "tables")
    assert code != 0 and len(err.strip().splitlines()) == 1


def test_verify_against_plain_truth_reports_both_scales(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgenas.latency.verify import verify
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.protocol import ProtocolSettings

    sp = create_space("proxyless", "small")
    table = _table(sp, {"r": _run([0.03])})
    pred = LatencyPredictor(table, SEL, anchor=anchors.resolve(table, SEL, local=False))
    be = create_backend("onnxruntime", threads=1)
    rep = verify(be, sp, pred, n=2, seed=5, settings=ProtocolSettings.quick(), truth="plain", processes=1)
    m = rep.metrics
    assert m["truth"] == "plain" and m["n"] == 2 and m["protocol_over_plain"] > 0
    for net in rep.networks:
        assert net["measured_ms"] == net["plain_ms"] == min(net["plain_per_process_ms"]) > 0
        assert net["protocol_ms"] == pytest.approx(net["ref_ratio"] * pred.anchor_ms)
    torch_be = create_backend("torch-cpu", threads=1)
    with pytest.raises(Exception, match="--truth protocol"):
        verify(torch_be, sp, pred, n=1, truth="plain")


def test_many_sessions_anchor_at_their_fast_end_not_their_minimum(tmp_path):
    sp = create_space("proxyless", "small")
    me = anchors.host_id()
    store = anchors.AnchorStore(tmp_path / "anchors.json")
    key = anchors.anchor_key("onnxruntime", "1.0", "fp32", 1, 1)
    fast = [0.0150, 0.0158, 0.0160, 0.0161, 0.0163, 0.0165, 0.0166, 0.0170]
    store.add(key, [anchors.AnchorObservation(f, f * 1.01, 40, me, "check", other_load=0.0) for f in fast])
    a = anchors.resolve(_table(sp, {"r": _run([0.05], host="other-vm")}), SEL, local=True, auto=False, store=store)
    assert a.ms == pytest.approx(np.percentile(fast, anchors.SESSION_QUANTILE)) and a.ms > min(fast)
