"""benchmarks/int8.py's pure helpers, side-by-side plain timing, and ``verify --prepare-only``."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("int8_bench_under_test", ROOT / "benchmarks" / "int8.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paired_ratio_is_the_median_of_per_block_ratios_not_the_ratio_of_medians(bench):
    # a slow spell (block 2) hits both sides: per-block ratios stay 2, the medians' ratio would not
    r = bench.paired_ratio([1.0, 1.0, 5.0], [2.0, 3.0, 10.0])
    assert r["ratio"] == 2.0 and r["ratio_min"] == 2.0 and r["ratio_max"] == 3.0
    assert r["fp32_ms"] == 1.0 and r["int8_ms"] == 3.0
    with pytest.raises(ValueError):
        bench.paired_ratio([1.0], [1.0, 2.0])


def test_output_error_counts_flipped_top1_and_relative_rms(bench):
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    got = ref.copy()
    got[0] = [0.0, 1.0]  # one flipped decision
    e = bench.output_error(ref, got)
    assert e["top1_agreement"] == 0.75
    assert e["rel_rms_error"] == pytest.approx(np.sqrt(2 / 8) / np.sqrt(4 / 8))
    assert bench.output_error(ref, ref) == {"top1_agreement": 1.0, "rel_rms_error": 0.0}


def _row(backend, space, ratio, agreement=1.0, size=0.5, **kw):
    return {"backend": backend, "space": space, "latency": {"ratio": ratio, "fp32_ms": 1.0, "int8_ms": ratio},
            "size_ratio": size, "top1_agreement": agreement, "rel_rms_error": 0.01, **kw}


def test_summary_groups_by_backend_and_space_and_keeps_errors_apart(bench):
    rows = [_row("tflite", "darts", 3.0), _row("tflite", "darts", 0.8, agreement=0.9), _row("tflite", "darts", 2.0),
            {"backend": "tflite", "space": "darts", "i": 3, "error": "MeasurementError: boom"},
            _row("onnxruntime", "darts", 1.5, size=0.3)]
    trained = [{"backend": "tflite", "space": "darts", "fp32_accuracy": 0.8, "accuracy_change_points": -0.4,
                "top1_agreement": 0.99},
               {"backend": "tflite", "space": "darts", "fp32_accuracy": 0.7, "accuracy_change_points": 0.2,
                "top1_agreement": 0.97}]
    s = bench.summarise(rows, trained)
    assert list(s) == ["tflite/darts", "onnxruntime/darts"]
    t = s["tflite/darts"]
    assert t["networks"] == 3 and t["errors"] == 1 and t["int8_faster"] == 1
    assert t["median_latency_ratio"] == 2.0 and t["min_top1_agreement"] == 0.9
    assert t["trained_networks"] == 2 and t["worst_accuracy_change_points"] == -0.4
    assert t["mean_accuracy_change_points"] == pytest.approx(-0.1) and t["trained_min_top1_agreement"] == 0.97
    assert s["onnxruntime/darts"]["median_size_ratio"] == 0.3 and "trained_networks" not in s["onnxruntime/darts"]


def test_markdown_labels_a_loaded_run_and_a_failed_verify(bench):
    a = bench.parse(["--quick"])
    doc = {"date": "2026-12-01 08:00 UTC", "machine": "x", "load_before": (6.0, 0, 0), "load_after": (5.0, 0, 0),
           "settings": vars(a), "versions": {"onnxruntime": "1"}, "summary": bench.summarise([_row("tflite", "darts", 2.0)], []),
           "verify": [{"backend": "tflite", "space": "darts", "error": "no int8 table"}], "rows": [], "trained": []}
    md = bench.markdown(doc)
    assert "a loaded machine" in md and "| median_latency_ratio | 2.0 |" in md and "failed: no int8 table" in md


def test_side_by_side_timing_pairs_blocks_of_both_models(tmp_path):
    pytest.importorskip("onnxruntime")
    import torch

    from edgenas.profiling.onnxruntime_backend import export_onnx
    from edgenas.profiling.plain import time_side_by_side

    paths = []
    for c in (4, 16):
        paths.append(tmp_path / f"m{c}.onnx")
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU()).eval(), (1, 3, 16, 16),
                    paths[-1])
    blocks = time_side_by_side(paths, threads=1, blocks=3, runs=5)
    assert len(blocks) == 2 and all(len(b) == 3 and min(b) > 0 for b in blocks)


@pytest.mark.slow
def test_verify_prepare_only_exports_what_verify_then_only_times(cli, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGENAS_CACHE", str(cache))
    tables = tmp_path / "tables"
    shutil.copytree(ROOT / "latency_tables" / "x86-64-host", tables / "x86-64-host")
    args = ["verify", "--device", "x86-64-host", "--backend", "onnxruntime", "--space", "proxyless", "--preset",
            "small", "--batch", 1, "--n", 2, "--calibration-n", 3, "--recalibrate", "--tables-dir", tables,
            "--quick", "--truth", "protocol", "--plot", tmp_path / "v.png", "--json"]
    code, out, err = cli(*args, "--prepare-only")
    assert code == 0, err
    r = json.loads(out)
    assert r["prepared"] == 5 and all(Path(p).exists() for p in r["artifacts"])
    before = sorted(p.name for p in cache.rglob("*.onnx"))
    assert set(Path(p).name for p in r["artifacts"]) <= set(before)
    code, out, err = cli(*args)
    assert code == 0, err
    assert json.loads(out)["n"] == 2
    assert sorted(p.name for p in cache.rglob("*.onnx")) == before  # nothing converted: verify only timed
