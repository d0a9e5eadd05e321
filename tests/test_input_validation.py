"""Issue 13: every file format validated at its door, every CLI number range-checked.

Each case from the issue ends in one line on stderr and a non-zero exit other than 70, with the
files unchanged. Tables are scratch copies of the shipped pixel-1 table (real data)."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest

from edgenas.devices import load_profile_file
from edgenas.errors import DeviceError, InputError
from edgenas.latency.store import TableStore
from edgenas.paths import REPO_ROOT
from edgenas.spaces import create_space

SHIPPED = REPO_ROOT / "latency_tables" / "pixel-1"


def one_line(code, err, want=2):
    assert code == want and err.count("\n") == 1 and "Traceback" not in err, (code, err)


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """A scratch copy of the pixel-1 table, written by this edgenas (so its meta holds rows and hash)."""
    root = tmp_path / "tables"
    shutil.copytree(SHIPPED, root / "pixel-1")
    store = TableStore(root)
    store.save(store.load("pixel-1", "tflite"), "pixel-1", "tflite")
    monkeypatch.setenv("EDGENAS_TABLES", str(root))
    return root


@pytest.fixture
def genotype(tmp_path):
    sp = create_space("proxyless", "mobile")
    return sp.genotype(sp.sample(random.Random(3))).save(tmp_path / "g.json")


def _commands(tables, genotype, out):
    return [("tables", "list", "--tables-dir", tables),
            ("predict", genotype, "--device", "pixel-1", "--backend", "tflite", "--tables-dir", tables),
            ("search", "--device", "pixel-1", "--backend", "tflite", "--preset", "mobile", "--target-ms", 80,
             "--data", "synthetic", "--out", out)]


def test_the_pristine_copy_works(cli, tables, genotype):
    meta = json.loads((tables / "pixel-1" / "tflite.meta.json").read_text())
    assert meta["rows"] == 72 and len(meta["csv_sha256"]) == 64
    code, _, err = cli("predict", genotype, "--device", "pixel-1", "--backend", "tflite", "--tables-dir", tables)
    assert code == 0, err


@pytest.mark.parametrize("edit", ["truncate", "negative", "nan", "text"])
def test_a_damaged_table_is_refused_everywhere_with_the_file_and_the_fix(cli, tables, genotype, tmp_path, edit):
    csv = tables / "pixel-1" / "tflite.csv"
    lines = csv.read_text().splitlines(keepends=True)
    if edit == "truncate":
        csv.write_text("".join(lines[: len(lines) // 2]))
    else:
        cols = lines[0].rstrip("\n").split(",")
        row = lines[5].rstrip("\n").split(",")
        row[cols.index("mean_ms")] = {"negative": "-0.671", "nan": "nan", "text": "fast"}[edit]
        lines[5] = ",".join(row) + "\n"
        csv.write_text("".join(lines))
    before = csv.read_bytes()
    for args in _commands(tables, genotype, tmp_path / "run"):
        code, _, err = cli(*args)
        one_line(code, err)
        assert str(csv) in err and ("edgenas profile" in err and "tables import" in err), err
    assert csv.read_bytes() == before and not (tmp_path / "run").exists()


def test_a_legacy_meta_without_hash_is_read_but_its_rows_still_checked(cli, tables, genotype):
    meta = tables / "pixel-1" / "tflite.meta.json"
    m = json.loads(meta.read_text())
    del m["csv_sha256"], m["rows"]
    meta.write_text(json.dumps(m))
    code, _, err = cli("predict", genotype, "--device", "pixel-1", "--backend", "tflite", "--tables-dir", tables)
    assert code == 0, err
    csv = tables / "pixel-1" / "tflite.csv"
    csv.write_text(csv.read_text().replace(",0.", ",-0.", 1))
    code, _, err = cli("tables", "list", "--tables-dir", tables)
    one_line(code, err)
    assert "must be finite and" in err or "finite and > 0" in err


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"runs": []}', '{"format": "other"}', '"x"'])
def test_a_garbled_or_list_shaped_meta_is_one_line(cli, tables, text):
    (tables / "pixel-1" / "tflite.meta.json").write_text(text)
    code, _, err = cli("tables", "list", "--tables-dir", tables)
    one_line(code, err)
    assert "tflite.meta.json" in err


def test_a_calibration_with_an_unknown_key_is_one_line(cli, tables, genotype):
    (tables / "pixel-1" / "tflite.calibration.json").write_text(
        json.dumps({"format": "edgenas.calibration", "version": 1, "calibrations": {"k": {"a": 1.0, "zz": 2}}}))
    code, _, err = cli("predict", genotype, "--device", "pixel-1", "--backend", "tflite", "--tables-dir", tables)
    one_line(code, err)
    assert "calibration" in err and "zz" in err and "unknown key" in err


@pytest.mark.parametrize("mean", ["-5", ".nan", "fast", "[1, 2]", "0", ".inf"])
def test_a_published_lut_with_a_bad_mean_is_refused_and_nothing_written(cli, tables, tmp_path, mean):
    lut = tmp_path / "lut.yaml"
    lut.write_text(f"Logits-input:1x1x1280-output:1000: {{count: 5, mean: {mean}, var: 0.0001}}\n")
    csv = tables / "pixel-1" / "tflite.csv"
    before = csv.read_bytes()
    code, _, err = cli("tables", "import", lut, "--format", "proxylessnas", "--device", "pixel-1",
                       "--tables-dir", tables)
    one_line(code, err)
    assert "mean" in err and csv.read_bytes() == before


def test_an_op_key_asking_for_terabytes_is_refused_before_anything_is_built(cli, tables, tmp_path):
    lut = tmp_path / "lut.yaml"
    lut.write_text("expanded_conv-input:2000000x2000000x960-output:2000000x2000000x960-expand:6-kernel:3-stride:1"
                   "-idskip:1: {count: 5, mean: 1.0, var: 0.0001}\n")
    code, _, err = cli("tables", "import", lut, "--format", "proxylessnas", "--device", "pixel-1",
                       "--tables-dir", tables)
    one_line(code, err)
    assert "outside" in err or "elements" in err


PROFILE = "name: bad\ndescription: d\nkind: board\narch: x\nreach: [local]\nbackends: {tflite: %s}\n"


@pytest.mark.parametrize("text,message", [
    (PROFILE % "{precisions: 5}", "precisions"),
    (PROFILE % "{threads: 0}", "threads"),
    (PROFILE % "{}" + "notes: [1, 2]\n", "notes"),
    ("name: bad\ndescription: &a [x, x]\nkind: board\n", "anchors"),
])
def test_bad_device_profiles_are_one_line(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(DeviceError) as e:
        load_profile_file(p)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    p = tmp_path / "bad.yaml"
    p.write_text((PROFILE % "{}") + "notes:\n" + "\n".join("  " + line for line in bomb) + "\n")
    t0 = time.process_time()
    with pytest.raises(DeviceError, match="anchors|aliases"):
        load_profile_file(p)
    assert time.process_time() - t0 < 5  # CPU time of the parse, not wall-clock: no expansion happened


def test_an_invalid_device_profile_in_predict_is_an_error_not_one_thread(cli, tables, genotype, tmp_path,
                                                                        monkeypatch):
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "device_profiles", profiles)
    p = profiles / "pixel-1.yaml"
    p.write_text(p.read_text().replace("threads:", "threads: -3 #", 1))
    monkeypatch.setenv("EDGENAS_DEVICE_PROFILES", str(profiles))
    code, _, err = cli("predict", genotype, "--device", "pixel-1", "--backend", "tflite", "--tables-dir", tables)
    one_line(code, err)
    assert "pixel-1.yaml" in err


def test_a_genotype_nested_200000_deep_is_refused_fast(cli, tmp_path):
    g = tmp_path / "deep.json"
    g.write_text('{"space": "proxyless", "arch": ' + "[" * 200_000 + "]" * 200_000 + "}")
    t0 = time.process_time()
    code, _, err = cli("genotype", "show", g)
    one_line(code, err)
    assert "nests deeper" in err and time.process_time() - t0 < 10


def test_a_config_with_200000_channels_is_refused_before_building(cli, tmp_path):
    g = tmp_path / "wide.json"
    g.write_text(json.dumps({"format": "edgenas.genotype", "version": 1, "space": "darts", "preset": "small",
                             "config": {"channels": 200000}, "arch": {}}))
    code, _, err = cli("genotype", "show", g)
    one_line(code, err)
    assert "200000" in err


@pytest.mark.parametrize("args", [
    ("profile", "--device", "x86-64-host", "--threads", "0"),
    ("search", "--target-ms", "1", "--train-size", "0"),
    ("search", "--target-ms", "1", "--retrain-epochs", "-1"),
    ("search", "--target-ms", "1", "--top-k", "0"),
    ("search", "--target-ms", "1", "--budget", "-5"),
    ("search", "--target-ms", "1", "--batch-size", "0"),
    ("search", "--target-ms", "nan"),
    ("search", "--target-ms", "1", "--torch-device", "tpu"),
    ("tables", "show", "--device", "pixel-1", "--backend", "tflite", "--limit", "-1"),
    ("verify", "--device", "x86-64-host", "--backend", "onnxruntime", "--n", "-5"),
    ("predict", "x", "--device", "pixel-1", "--backend", "tflite", "--batch", "0"),
    ("search", "--target-ms", "1", "--bogus-flag"),
])
def test_out_of_range_numbers_are_refused_before_any_work(cli, tmp_path, args):
    out = tmp_path / "run"
    code, _, err = cli(*args, *(["--out", out] if args[0] == "search" else []))
    one_line(code, err)
    assert not out.exists()


def test_results_with_a_negative_latency_and_a_recomputed_checksum_are_refused():
    from edgenas.profiling.results_import import _check_stats

    def bad(msg):
        return InputError(msg)

    with pytest.raises(InputError, match="finite and > 0"):
        _check_stats("b1-0000", {"median_ms": 1.0, "mean_ms": -0.5, "n": 10}, bad)
    with pytest.raises(InputError, match="finite and > 0"):
        _check_stats("b1-0000", {"median_ms": 1.0, "ref_ms": 0.0, "n": 10}, bad)
    _check_stats("b1-0000", {"median_ms": 1.0, "mean_ms": 1.1, "p10_ms": 0.9, "p90_ms": 1.3, "n": 10}, bad)
