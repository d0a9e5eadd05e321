"""Bundles -> the standalone runner (real onnxruntime / ai_edge_litert) -> results.json -> tables import.

The runner runs as its own process, as on a device. Tampered and foreign results are rejected
with one line and leave the table byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgenas.devices import get_profile
from edgenas.errors import InputError
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.bundle import build_bundle, device_runner
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.results_import import ResultsRejected, import_results
from edgenas.profiling.runner import REFERENCE_OP, space_specs

TOOLS = Path(__file__).resolve().parents[1] / "tools"
RUNNER = TOOLS / "edgenas_device_runner.py"
QUICK = ProtocolSettings.quick()


def _specs(n=3):
    return space_specs(["darts"], "small")[:n]


def run_runner(python, *args, cwd=None):
    return subprocess.run([str(python), str(RUNNER), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An onnxruntime bundle of 3 ops at batch 1 and 2 for raspberry-pi-4 (reach: ssh, bundle)."""
    root = tmp_path_factory.mktemp("bundle")
    store = TableStore(root / "tables")
    b = build_bundle(get_profile("raspberry-pi-4"), create_backend("onnxruntime", threads=1), _specs(), [1, 2],
                     root / "rpi4.zip", QUICK, store=store, cache=root / "cache")
    return b, store, root


@pytest.fixture(scope="module")
def results(built):
    b, _, root = built
    out = root / "results.json"
    p = run_runner(sys.executable, "run", b.path, "--out", out)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture
def table_with_rows(built, results, tmp_path):
    """A fresh table root holding the bundle's manifest and the imported rows (to tamper against)."""
    b, store, _ = built
    root = tmp_path / "tables"
    shutil.copytree(store.root, root)
    import_results(results, TableStore(root))
    return TableStore(root)


def test_bundle_holds_models_manifest_and_the_tools_only(built):
    b, store, _ = built
    m = b.manifest
    with zipfile.ZipFile(b.path) as z:
        names = set(z.namelist())
        assert json.loads(z.read("manifest.json")) == m
        for item in list(m["references"].values()) + m["entries"]:
            assert hashlib.sha256(z.read(item["file"])).hexdigest() == item["sha256"]
            assert item["file"].endswith(".onnx")
        for tool in ("edgenas_device_runner.py", "android_benchmark.sh"):
            assert z.read(tool) == (TOOLS / tool).read_bytes()
            assert hashlib.sha256(z.read(tool)).hexdigest() == m["tools"][tool]
    models = {n for n in names if n.startswith("models/")}
    assert names - models == {"manifest.json", "models.tsv", "README.txt", "edgenas_device_runner.py",
                              "android_benchmark.sh"}  # nothing executable beyond tools/
    assert len(models) == len(_specs()) * 2 + 2  # every op at both batch sizes, one reference per batch
    assert [e["op_key"] for e in m["entries"] if e["batch"] == 1] == [s.key for s in _specs()]
    assert m["batches"] == [1, 2] and m["threads"] == 1 and m["backend"] == "onnxruntime"
    assert m["protocol"] == QUICK.as_dict() and m["edgenas_version"] and m["reference_op"] == REFERENCE_OP.key
    assert m["entries"][0]["input_shape"] == [1, *_specs()[0].in_shape[::-1][:1], *_specs()[0].in_shape[:2]]
    assert b.bundle_id == device_runner().manifest_id(m)
    assert json.loads((store.root / "raspberry-pi-4" / "bundles" / f"{b.bundle_id}.json").read_text()) == m


def test_tflite_bundle_takes_nhwc_inputs(tmp_path):
    b = build_bundle(get_profile("pixel-7"), create_backend("tflite", threads=4), _specs(1), [1], tmp_path / "p.zip",
                     QUICK, cache=tmp_path / "cache")
    h, w, c = _specs(1)[0].in_shape
    assert b.manifest["layout"] == "nhwc" and b.manifest["entries"][0]["input_shape"] == [1, h, w, c]
    assert b.manifest["runner_runtime"] == "tflite"  # what the runner loads, named by the backend
    assert b.manifest["threads"] == 4 and b.manifest["entries"][0]["file"].endswith(".tflite")


def test_bundle_refuses_backends_the_runner_cannot_run(tmp_path):
    with pytest.raises(InputError, match="bundles hold onnxruntime or tflite models"):
        build_bundle(get_profile("raspberry-pi-4"), create_backend("torch-cpu"), _specs(1), [1], tmp_path / "x.zip")
    with pytest.raises(InputError, match="does not list backend"):
        build_bundle(get_profile("pixel-7"), create_backend("onnxruntime"), _specs(1), [1], tmp_path / "x.zip")


def test_runner_results_import_into_the_devices_table(built, results, tmp_path):
    b, store, _ = built
    data = json.loads(results.read_text())
    assert data["bundle_id"] == b.bundle_id and data["complete"] and data["modules"] == {"torch": False,
                                                                                          "edgenas": False}
    assert {e["sha256"] for e in data["entries"]} == {e["sha256"] for e in b.manifest["entries"]}
    root = tmp_path / "tables"
    shutil.copytree(store.root, root)
    rep = import_results(results, TableStore(root))
    import onnxruntime

    assert rep.imported == 6 and rep.bundle_entries == 6 and rep.runtime_version == onnxruntime.__version__
    t = TableStore(root).load("raspberry-pi-4", "onnxruntime")
    df = t.df
    assert len(df) == 6 and set(df["batch"]) == {1, 2} and set(df["source"]) == {"bundle:edgenas_device_runner"}
    assert (df["median_ms"] > 0).all() and (df["ref_ratio"] > 0).all() and (df["threads"] == 1).all()
    run = t.runs[rep.run_id]
    assert run["bundle_id"] == b.bundle_id and run["environment"]["cpu_model"] and run["protocol"]["max_rounds"] == 6
    assert rep.warnings and "machine" in rep.warnings[0]  # x86 results filed under an aarch64 board: said so
    again = import_results(results, TableStore(root))  # importing twice changes nothing
    assert again.table_entries == 6


def test_cli_imports_results_json_without_a_format(cli, built, results, tmp_path):
    _, store, _ = built
    root = tmp_path / "tables"
    shutil.copytree(store.root, root)
    code, out, err = cli("tables", "import", results, "--tables-dir", root)
    assert code == 0, err
    assert "imported 6 of 6 entries of bundle" in out and "Traceback" not in err
    code, out, err = cli("tables", "import", results, "--tables-dir", tmp_path / "elsewhere")
    assert code == 2 and err.count("\n") == 1 and "--bundle" in err  # unknown bundle: says how to fix it
    code, out, err = cli("tables", "import", results, "--bundle", built[0].path, "--tables-dir", tmp_path / "elsewhere",
                         "--json")
    assert code == 0 and json.loads(out)["imported"] == 6
    code, out, err = cli("tables", "import", results, "--device", "pixel-7", "--tables-dir", root)
    assert code == 2 and "holds results for raspberry-pi-4" in err


def _tamper(data, how, other_bundle_id):
    e = data["entries"][0]
    if how == "latency":
        e["stats"]["ref_ratio"] *= 0.8  # a plausible edit: only the checksum shows it
    elif how == "median":
        e["stats"]["median_ms"] *= 0.5
    elif how == "model-hash":
        e["sha256"] = "0" * 64
    elif how == "foreign-entry":
        data["entries"].append({**e, "id": "b1-0999"})
    elif how == "other-bundle":
        data["bundle_id"] = other_bundle_id
    elif how == "unknown-bundle":
        data["bundle_id"] = "feedfacefeedface"
    elif how == "device":
        data["device"] = "jetson-nano"
    elif how == "threads":
        data["threads"] = 4
    elif how == "reference-hash":
        data["references"]["1"]["sha256"] = "1" * 64
    elif how == "negative":
        e["stats"].update(median_ms=-1.0)
    elif how == "schema":
        data["references"] = []
    elif how == "no-checksum":
        del data["checksum"]
    return data


@pytest.mark.parametrize("how, message", [
    ("latency", "modified after the device wrote it"),
    ("median", "p10 <= median <= p90 does not hold"),
    ("model-hash", "SHA-256 0000000000000000, not the bundle's"),
    ("foreign-entry", "'b1-0999'"),
    ("other-bundle", "is not part of bundle"),
    ("unknown-bundle", "not among the bundles built here"),
    ("device", "device is 'jetson-nano'"),
    ("threads", "threads is 4"),
    ("reference-hash", "reference model for batch 1"),
    ("negative", "no positive median_ms"),
    ("schema", "'references' must be a dict"),
    ("no-checksum", "'checksum' must be a str"),
])
def test_tampered_or_foreign_results_are_rejected_and_merge_nothing(cli, built, results, table_with_rows, tmp_path,
                                                                    how, message):
    other = build_bundle(get_profile("raspberry-pi-4"), create_backend("onnxruntime", threads=1), _specs(1)[::-1],
                         [1], tmp_path / "other.zip", QUICK, store=table_with_rows, cache=built[2] / "cache")
    csv = table_with_rows.path("raspberry-pi-4", "onnxruntime")
    before = csv.read_bytes(), csv.with_suffix(".meta.json").read_bytes()
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(_tamper(json.loads(results.read_text()), how, other.bundle_id)))
    code, out, err = cli("tables", "import", bad, "--tables-dir", table_with_rows.root)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert "nothing was imported" in err or how == "unknown-bundle"
    assert (csv.read_bytes(), csv.with_suffix(".meta.json").read_bytes()) == before


def test_truncated_results_file_is_one_line(cli, results, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(results.read_text()[:500])
    with pytest.raises(ResultsRejected, match="not valid JSON"):
        import_results(bad, TableStore(tmp_path))
    code, _, err = cli("tables", "import", bad, "--tables-dir", tmp_path)
    assert code == 2 and "--format" in err  # not recognised as results: told what the command expects


def test_runner_refuses_a_changed_model_and_a_changed_manifest(built, tmp_path):
    b, _, _ = built
    d = tmp_path / "unpacked"
    with zipfile.ZipFile(b.path) as z:
        z.extractall(d)
    model = d / b.manifest["entries"][1]["file"]
    model.write_bytes(model.read_bytes() + b"\0")
    p = run_runner(sys.executable, "run", d, "--out", tmp_path / "r.json")
    assert p.returncode == 2 and "SHA-256" in p.stderr and "copy it again" in p.stderr
    assert not (tmp_path / "r.json").exists()  # the first chunk holds the bad model: nothing measured

    m = json.loads((d / "manifest.json").read_text())
    m["threads"] = 8
    (d / "manifest.json").write_text(json.dumps(m))
    p = run_runner(sys.executable, "check", d)
    assert p.returncode == 2 and "manifest" in p.stderr and "modified" in p.stderr


def test_runner_resumes_an_interrupted_run(built, tmp_path):
    b, store, _ = built
    rt = device_runner()
    out = tmp_path / "results.json"
    rt.run_bundle(str(b.path), str(out), quiet=True, max_entries=2)  # as if killed after the first chunk
    first = json.loads(out.read_text())
    assert not first["complete"] and len(first["entries"]) == 2
    p = run_runner(sys.executable, "run", b.path, "--out", out)
    assert p.returncode == 2 and "--resume" in p.stderr
    p = run_runner(sys.executable, "run", b.path, "--out", out, "--resume")
    assert p.returncode == 0, p.stderr
    done = json.loads(out.read_text())
    assert done["complete"] and len(done["entries"]) == 6 and done["entries"][:2] == first["entries"]
    root = tmp_path / "tables"
    shutil.copytree(store.root, root)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(first))
    rep = import_results(partial, TableStore(root))
    assert rep.imported == 2 and any("partial" in w for w in rep.warnings)


def test_runner_without_numpy_or_runtime_exits_3_with_one_line(built, bare_python, numpy_only_python, tmp_path):
    b, _, _ = built
    p = run_runner(bare_python, "check", b.path)
    assert p.returncode == 3 and p.stderr.strip() == f"error: numpy is not installed for {bare_python}: pip install numpy"
    p = run_runner(numpy_only_python, "run", b.path, "--out", tmp_path / "r.json")
    assert p.returncode == 3 and "onnxruntime is not installed" in p.stderr and p.stderr.count("\n") == 1


FAKE_ADB = r"""#!/bin/sh
# fake adb: $FAKE_PHONE stands in for the phone's file system; commands run here with paths mapped.
case "$1" in
  get-state) echo device ;;
  push) dst="$FAKE_PHONE$3"; if [ -d "$2" ]; then mkdir -p "$dst" && cp -r "$2" "$dst"; else cp "$2" "$dst"; fi ;;
  shell) shift; sh -c "$(printf '%s' "$*" | sed "s#/data/local/tmp#$FAKE_PHONE/data/local/tmp#g")" ;;
  *) echo "fake adb: unsupported $1" >&2; exit 1 ;;
esac
"""

FAKE_BENCHMARK_MODEL = r"""#!/bin/sh
# fake benchmark_model: prints the real tool's output format; avg (us) = model size / 100
for a in "$@"; do case "$a" in --graph=*) g=${a#--graph=} ;; esac; done
[ -f "$g" ] || { echo "ERROR: Could not open '$g'."; exit 1; }
size=$(wc -c < "$g")
echo "INFO: Loaded model $g"
echo "INFO: count=20 first=900 curr=300 min=100 max=900 avg=$((size / 50)) std=9"
echo "INFO: count=200 first=150 curr=120 min=100 max=400 avg=$((size / 100)) std=$((size / 1000))"
echo "INFO: Inference timings in us: Init: 1000, First inference: 900, Warmup (avg): $((size / 50)), Inference (avg): $((size / 100))"
"""


def test_android_helper_with_fake_adb_and_fake_benchmark_model(tmp_path, cli):
    """adb and a phone cannot run here: a fake adb (a directory as the phone) and a fake benchmark_model
    that prints the real output format test the helper's plumbing, the parser and the import."""
    store = TableStore(tmp_path / "tables")
    b = build_bundle(get_profile("pixel-7"), create_backend("tflite", threads=4), _specs(2), [1],
                     tmp_path / "p7.zip", QUICK, store=store, cache=tmp_path / "cache")
    phone, bin_dir = tmp_path / "phone", tmp_path / "bin"
    (phone / "data" / "local" / "tmp").mkdir(parents=True)
    bin_dir.mkdir()
    (bin_dir / "adb").write_text(FAKE_ADB)
    (bin_dir / "adb").chmod(0o755)
    bm = tmp_path / "benchmark_model"
    bm.write_text(FAKE_BENCHMARK_MODEL)
    unpacked = tmp_path / "p7"
    with zipfile.ZipFile(b.path) as z:
        z.extractall(unpacked)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FAKE_PHONE": str(phone), "EDGENAS_TFLITE_VERSION": "2.16.1"}
    p = subprocess.run(["sh", str(unpacked / "android_benchmark.sh"), str(b.path), str(bm), "results.json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr + p.stdout
    assert "parsed 2 benchmark_model runs" in p.stdout
    assert not any((phone / "data" / "local" / "tmp").iterdir())  # cleaned up on the phone
    log = (tmp_path / "results.benchmark_model.log").read_text()
    assert log.count("role=reference") == 2 and log.count("### sha256 ") == 4 and " device" in log
    code, out, err = cli("tables", "import", tmp_path / "results.json", "--tables-dir", store.root)
    assert code == 0, err
    t = store.load("pixel-7", "tflite")
    sizes = {e["op_key"]: (tmp_path / "p7" / e["file"]).stat().st_size for e in b.manifest["entries"]}
    ref_size = (tmp_path / "p7" / b.manifest["references"]["1"]["file"]).stat().st_size
    for row in t.df.itertuples():
        assert row.mean_ms == pytest.approx(sizes[row.op_key] // 100 / 1e3)
        assert row.ref_ratio == pytest.approx((sizes[row.op_key] // 100) / (ref_size // 100))
        assert row.n == 200 and row.source == "bundle:benchmark_model" and row.runtime_version == "benchmark_model-2.16.1"
    run = next(iter(t.runs.values()))
    assert "no per-call samples" in run["note"] and run["environment"]["android"] is True


@pytest.mark.slow
def test_runner_under_python_38_with_tflite_runtime_and_onnxruntime(built, tmp_path, python38):
    """Old boards: Python 3.8, numpy 1.x, tflite_runtime (the fallback after ai_edge_litert) and onnxruntime."""
    if python38 is None:
        pytest.skip("no Python 3.8 on this machine")
    venv = tmp_path / "py38"
    subprocess.run([python38, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    p = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy<2",
                        "onnxruntime", "tflite-runtime"], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        pytest.skip(f"cannot install numpy/onnxruntime/tflite-runtime for Python 3.8: {p.stderr.strip()[-200:]}")
    tfl = build_bundle(get_profile("raspberry-pi-4"), create_backend("tflite", threads=1), _specs(2), [1],
                       tmp_path / "t.zip", QUICK, store=built[1], cache=built[2] / "cache")
    for bundle, runtime in ((built[0], "onnxruntime"), (tfl, "tflite_runtime-")):
        out = tmp_path / f"{bundle.bundle_id}.json"
        p = run_runner(python, "run", bundle.path, "--out", out)
        assert p.returncode == 0, p.stderr
        res = json.loads(out.read_text())
        assert res["device_facts"]["python"].startswith("3.8.") and res["modules"]["torch"] is False
        assert res["runtime"].startswith(runtime.rstrip("-")) and len(res["entries"]) == bundle.entries
        assert import_results(out, built[1]).imported == bundle.entries


def test_cli_import_of_published_tables_keeps_format_and_device(cli, tmp_path):
    lut = tmp_path / "mobile_trim.yaml"
    lut.write_text("Logits-input:1x1x1280-output:1000: {count: 5, mean: 0.25, var: 0.0001}\n")
    code, _, err = cli("tables", "import", lut, "--tables-dir", tmp_path / "t")
    assert code == 2 and "--format" in err and err.count("\n") == 1
    code, _, err = cli("tables", "import", lut, "--format", "proxylessnas", "--tables-dir", tmp_path / "t")
    assert code == 2 and "--device is needed" in err
    code, out, err = cli("tables", "import", lut, "--format", "proxylessnas", "--device", "pixel-1",
                         "--tables-dir", tmp_path / "t")
    assert code == 0 and "imported 1 entries" in out
    assert TableStore(tmp_path / "t").load("pixel-1", "tflite").latency_ms().iloc[0] == 0.25
