"""benchmarks/gpu_check.{sh,py}: the parts a CPU can check (syntax, summary, failure handling, fallbacks).

The script itself runs once on a lent GPU; these keep its plumbing honest without one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gc = _module()


def test_shell_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], check=True)


FAKE = {
    "env": {"status": "ok", "wall_s": 5, "python": "3.12.1", "cpu_count": 16, "gpu": "NVIDIA H200",
            "gpu_memory_gb": 139.8, "torch_cuda": "13.0", "dry": False,
            "modules": {"torch": "2.11.0", "pandas": "MISSING (ImportError: x)"},
            "edgenas_imports": {"edgenas.latency.table": "FAILS (ImportError: x)"}, "notes": []},
    "tables": {"status": "partial", "wall_s": 120, "device": "nvidia-h200", "dry": False,
               "plan": {"protocol": {"min_rounds": 3}}, "notes": ["a note"],
               "units": [{"backend": "cuda", "batch": 1, "space": "darts", "status": "ok", "rows": 42,
                          "ci_under_10pct": 0.97, "median_ms_min_med_max": [0.01, 0.02, 0.05], "wall_s": 9},
                         {"backend": "cuda-eager", "batch": 8, "space": "proxyless",
                          "status": "failed: MeasurementError: boom", "wall_s": 1}]},
    "verify": {"status": "ok", "wall_s": 40, "space": "darts", "backend": "cuda", "runtime_version": "torch2.11",
               "calibration_n": 10, "path": "library", "notes": [],
               "metrics": {"n": 20, "within_10pct": 0.85, "within_5pct": 0.5, "mape": 0.061, "kendall_tau": 0.9,
                           "bias": -0.01},
               "raw_op_sum": {"within_10pct": 0.0, "bias": 1.2},
               "calibration": {"model": "scale+offset", "a": 0.4, "b": 0.01}},
    "throughput": {"status": "partial", "wall_s": 100, "batch_size": 64, "steps": 10, "dry": False, "notes": [],
                   "rows": [{"space": "darts", "strategy": "darts", "speedup": 1.1, "memory_ratio": 0.9,
                             "memory_metric": "cuda_peak_mb",
                             "naive": {"images_per_s": 1000.0, "cuda_peak_mb": 900},
                             "edgenas": {"images_per_s": 1100.0, "cuda_peak_mb": 810}},
                            {"space": "proxyless", "strategy": "proxyless",
                             "naive": {"error": "rc 1: CUDA | error\nline"}, "edgenas": {"error": "skipped"}}]},
}


def test_markdown_summary_on_fake_numbers():
    md = gc.render_markdown(FAKE, {"tables": {"rc": 124, "timeout": 165}})
    assert "DRY RUN" not in md and "NVIDIA H200 (139.8 GB)" in md
    assert "Missing Python modules: pandas." in md and "edgenas.latency.table" in md
    assert "| tables | partial (killed by timeout) | 120 | 165 |" in md
    assert "| cuda | 1 | darts | ok | 42 | 97% | 0.0100 / 0.0200 / 0.0500 | 9 |" in md
    assert "| 85% | 50% | 6.1% | 0.90 | -1.0% | 0% / +120% | scale+offset a=0.400 b=0.0100 |" in md
    assert "| darts | darts | 1000.0 | 1100.0 | 1.10x | 900 | 810 | 0.90 |" in md
    assert "failed: rc 1: CUDA / error line" in md  # a table cell cannot break the table
    assert "- tables: a note" in md


def test_markdown_with_missing_and_failed_steps():
    md = gc.render_markdown({"verify": {"status": "failed", "error": "RuntimeError: no table", "notes": []}})
    assert "| env | did not run |" in md and "| verify | failed |" in md
    assert "No result: failed RuntimeError: no table" in md


def test_failed_step_is_recorded_and_summarized(tmp_path):
    class A:
        work = tmp_path / "work"
        out = tmp_path / "out"

    def boom(args, doc, save):
        doc["units"] = [{"partial": 1}]
        save()
        raise RuntimeError("no GPU here")

    assert gc.run_step("tables", boom, A) == 1
    d = json.loads((A.work / "step_tables.json").read_text())
    assert d["status"] == "failed" and "no GPU here" in d["error"] and d["units"] == [{"partial": 1}]
    gc.summarize(A)
    assert "RuntimeError: no GPU here" in (A.out / "gpu_check.md").read_text()
    assert json.loads((A.out / "gpu_check.json").read_text())["steps"]["tables"]["status"] == "failed"


def test_pandas_free_predictor_covers_the_search_spaces():
    from edgenas.latency.expected import ExpectedLatency
    from edgenas.spaces import create_space

    table = ROOT / "latency_tables" / "x86-64-host" / "onnxruntime.csv"
    if not table.exists():
        pytest.skip("no x86-64-host onnxruntime table in this checkout")
    pred = gc.CsvPredictor.from_csv(table)
    for name, mode in (("darts", "derived"), ("proxyless", "softmax")):
        space = create_space(name, "small")
        e = ExpectedLatency(space, pred, mode)
        assert e.fixed_ms > 0 and all(float(m.sum()) > 0 for m in e.matrices().values())


def test_gpu_plan_fits_the_file_limit_and_names():
    p = gc.plan(dry=False)
    assert p["backends"] == ["cuda", "cuda-eager"] and p["verify_n"] == 20 and p["calibration_n"] == 10
    # $OUT gets gpu_check.{log,md,json} + one CSV per backend: within the device tool's 8 files
    assert 3 + len(p["backends"]) <= 8


def test_step_runs_without_pyyaml(tmp_path):
    """The stub yaml lets edgenas.devices import, and the profile comes from the dict in gpu_check.py."""
    shim = tmp_path / "shim" / "yaml"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated: no yaml')\n")
    code = ("import sys; sys.path.insert(0, %r); import gpu_check as g; p, notes = g.device_profile(dry=True); "
            "print(p.name, 'PyYAML missing' in ' '.join(notes))") % str(ROOT / "benchmarks")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": f"{tmp_path / 'shim'}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.split() == ["x86-64-host", "True"]
