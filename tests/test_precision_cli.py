"""``--precision`` across the CLI: a bad value, a backend that cannot run it and a missing int8 table
are each one line and a non-zero exit, from the real command line (in-process and as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgenas.latency.store import TableStore
from edgenas.paths import tables_root

COMMANDS = {
    "profile": ["profile", "--device", "x86-64-host", "--backend", "onnxruntime"],
    "predict": ["predict", "nonexistent.json", "--device", "x86-64-host", "--backend", "onnxruntime"],
    "calibrate": ["calibrate", "--device", "x86-64-host", "--backend", "onnxruntime"],
    "verify": ["verify", "--device", "x86-64-host", "--backend", "onnxruntime"],
    "search": ["search", "--target-ms", "1"],
    "export": ["export", "nonexistent-run"],
    "tables check": ["tables", "check", "--device", "x86-64-host", "--backend", "onnxruntime"],
    "tables missing": ["tables", "missing", "--device", "x86-64-host", "--backend", "onnxruntime"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unknown_precision_is_one_line_before_any_work(cli, command):
    code, out, err = cli(*COMMANDS[command], "--precision", "int4")
    assert code == 2 and err.count("\n") == 1, err
    assert "unknown precision 'int4'" in err and "fp32, fp16, int8" in err


def _edgenas(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgenas", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_a_backend_that_cannot_run_the_precision_is_one_line_from_the_real_cli():
    p = _edgenas("search", "--backend", "torch-cpu", "--precision", "int8", "--target-ms", "1")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "backend 'torch-cpu' supports precision fp32, not 'int8'" in p.stderr


def test_a_device_that_does_not_list_the_precision_is_one_line(cli):
    code, _, err = cli("profile", "--device", "x86-64-host", "--backend", "onnxruntime", "--precision", "fp16")
    assert code == 2 and "supports precision fp32, int8, not 'fp16'" in err


def test_a_search_without_an_int8_table_is_one_line_naming_the_fill_command(tmp_path):
    """The fp32 table is there, the int8 one is not: exit 4 (table miss), with the profile command to run."""
    shipped = TableStore(tables_root())
    fp32 = shipped.load("x86-64-host", "onnxruntime").select(precision="fp32")
    assert len(fp32)
    TableStore(tmp_path / "tables").save(fp32, "x86-64-host", "onnxruntime")
    p = _edgenas("search", "--backend", "onnxruntime", "--precision", "int8", "--target-ms", "0.2", "--out",
                 str(tmp_path / "run"), env={"EDGENAS_TABLES": str(tmp_path / "tables")})
    assert p.returncode == 4 and p.stderr.count("\n") == 1, p.stderr
    assert "int8" in p.stderr and "--precision int8" in p.stderr and "edgenas profile" in p.stderr
    assert not (tmp_path / "run").exists()


def test_search_config_records_precision_and_old_runs_read_as_fp32():
    from dataclasses import asdict

    from edgenas.search.pipeline import SearchConfig, default_run_dir

    cfg = SearchConfig(device="x86-64-host", backend="onnxruntime", target_ms=0.15, precision="int8")
    assert asdict(cfg)["precision"] == "int8" and "int8" in str(default_run_dir(cfg))
    assert "int8" not in str(default_run_dir(SearchConfig(device="d", backend="b", target_ms=1)))
    assert Path(default_run_dir(cfg)).parts[0] == "runs"


def test_runner_feeds_the_dtype_the_artifact_declares():
    """Float inputs get edgenas's values; integer inputs are quantized with the model's own (scale, zero point)."""
    import numpy as np

    from edgenas.profiling.bundle import device_runner

    r = device_runner()
    x = r.example_input((1, 3, 4, 4))
    assert np.array_equal(r.typed_input((1, 3, 4, 4), np.float32), x)
    q = r.typed_input((1, 3, 4, 4), np.int8, quantization=(0.05, -3))
    assert q.dtype == np.int8 and np.array_equal(q, np.clip(np.round(x / 0.05) - 3, -128, 127).astype(np.int8))
    u = r.typed_input((2, 8), np.uint8)  # no quantization parameters: the type's whole range
    assert u.dtype == np.uint8 and u.max() > 127
    assert np.dtype(r.ORT_DTYPES["tensor(uint8)"]) == np.uint8


def test_int8_bundle_runs_on_the_runner_and_imports_as_int8_rows(tmp_path):
    """A raspberry-pi-4 onnxruntime int8 bundle: QDQ models, the calibration in the manifest, int8 rows back."""
    import json

    from edgenas.devices import get_profile
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.bundle import build_bundle
    from edgenas.profiling.protocol import ProtocolSettings
    from edgenas.profiling.results_import import import_results
    from edgenas.profiling.runner import space_specs

    store = TableStore(tmp_path / "tables")
    b = build_bundle(get_profile("raspberry-pi-4"), create_backend("onnxruntime", threads=1, precision="int8"),
                     space_specs(["darts"], "small")[:2], [1], tmp_path / "rpi4.zip", ProtocolSettings.quick(),
                     store=store, cache=tmp_path / "cache")
    assert b.manifest["precision"] == "int8" and b.manifest["calibration"]["source"].startswith("representative")
    runner = Path(__file__).resolve().parents[1] / "tools" / "edgenas_device_runner.py"
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, str(runner), "run", str(b.path), "--out", str(out)], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["precision"] == "int8"
    import_results(out, store)
    df = store.load("raspberry-pi-4", "onnxruntime").df
    assert len(df) == 2 and set(df["precision"]) == {"int8"}


PROXYLESS = ('{"layers": ["5x5_MBConv1", "7x7_MBConv6", "3x3_MBConv3", "7x7_MBConv3", "3x3_MBConv6", "5x5_MBConv3", '
             '"5x5_MBConv6", "5x5_MBConv3", "5x5_MBConv3", "3x3_MBConv6"]}')


@pytest.mark.parametrize("args, message", [
    (["--io", "int8"], "--io int8 is for quantized models: add --precision int8"),
    (["--precision", "int8", "--io", "int16"], "--io must be float or int8, got 'int16'"),
    (["--precision", "int8", "--io", "int8", "--format", "onnx"],
     "--format onnx cannot give int8 model I/O (its int8 models keep float I/O); formats that can: tflite"),
])
def test_export_io_choice_is_checked_in_one_line_before_any_conversion(cli, tmp_path, args, message):
    code, _, err = cli("export", PROXYLESS, "--space", "proxyless", "--preset", "small", "--no-measure",
                       "--out", str(tmp_path / "out"), *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
