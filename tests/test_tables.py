"""Latency tables: schema, IO, merge, missing keys, lookups, and published-table import."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from edgenas.errors import InputError, TableMissError
from edgenas.latency.importers import export_proxylessnas, import_proxylessnas
from edgenas.latency.store import TableStore
from edgenas.latency.table import COLUMNS, LatencyTable, TableSelection, rows_from_stats
from edgenas.ops import OpSpec
from edgenas.spaces import create_space

SEL = TableSelection("test-dev", "onnxruntime", "fp32", 1, 1, "1.0")


def _stats(ms):
    return {"median_ms": ms, "mean_ms": ms * 1.1, "p10_ms": ms * 0.9, "p90_ms": ms * 1.3, "std_ms": ms * 0.2,
            "cv": 0.18, "n": 100, "rel_ci": 0.01, "rounds": 5, "stable": True, "ref_ms": 0.05, "ref_ratio": ms / 0.05}


def _table(specs, ms=0.1, run="r1", sel=SEL):
    return LatencyTable().upsert(rows_from_stats(((s, _stats(ms)) for s in specs), sel, sel.runtime_version, run),
                                 {run: {"kind": "test"}})


def _specs():
    return [s for s in create_space("darts", "small").all_op_specs()]


def test_write_read_round_trip_keeps_types(tmp_path):
    t = _table(_specs()[:10])
    path = t.write(tmp_path / "dev" / "onnxruntime.csv")
    back = LatencyTable.read(path)
    assert list(back.df.columns) == COLUMNS
    pd.testing.assert_frame_equal(back.df.sort_values("op_key").reset_index(drop=True),
                                  t.df.sort_values("op_key").reset_index(drop=True), check_dtype=True)
    assert back.runs == {"r1": {"kind": "test"}}
    assert back.df["in_h"].dtype == "int64" and back.df["median_ms"].dtype == "float64"


def test_upsert_replaces_same_key_and_merge_prefers_newer():
    specs = _specs()[:3]
    t = _table(specs, 0.1).upsert(rows_from_stats(((specs[0], _stats(0.5)),), SEL, "1.0", "r2"))
    assert len(t) == 3
    assert t.latency_ms()[specs[0].key] == 0.5
    newer = _table(specs[:1], 0.9, run="r3")
    newer.df["measured_at"] = "2999-01-01T00:00:00+00:00"
    merged = t.merge(newer)
    assert merged.latency_ms()[specs[0].key] == 0.9 and len(merged) == 3


def test_lookup_and_missing_report(tmp_path):
    specs = _specs()
    present = [s for s in specs if s.op != "sep_conv_5x5"]
    t = _table(present)
    absent = [s for s in specs if s.op == "sep_conv_5x5"]
    assert {s.key for s in t.missing(specs, SEL)} == {s.key for s in absent}
    with pytest.raises(TableMissError) as e:
        t.lookup(specs, SEL)
    assert set(e.value.missing_keys) == {s.key for s in absent}
    assert "edgenas profile --device test-dev --backend onnxruntime" in str(e.value)
    values = t.lookup(present, SEL)
    none = OpSpec.make("none", (28, 28, 16), (28, 28, 16), stride=1)
    assert t.lookup([none], SEL) == {none.key: 0.0}  # zero-cost: 0 by definition, not a silent miss
    from edgenas.ops import is_zero_cost

    assert all(values[s.key] == (0.0 if is_zero_cost(s) else 0.1) for s in present)


def test_selection_separates_batch_threads_and_runtime():
    specs = _specs()[:4]
    t = _table(specs).merge(_table(specs, 0.7, run="r8", sel=TableSelection("test-dev", "onnxruntime", "fp32", 1, 8, "1.0")))
    assert len(t.for_selection(SEL)) == 4
    assert (t.for_selection(TableSelection("test-dev", "onnxruntime", "fp32", 1, 8)).latency_ms() == 0.7).all()
    assert len(t.missing(specs, TableSelection("test-dev", "onnxruntime", "fp32", 2, 1))) == 4
    assert len(t.missing(specs, TableSelection("test-dev", "onnxruntime", "fp32", 1, 1, "2.0"))) == 4


def test_store_rejects_path_tricks(tmp_path):
    with pytest.raises(InputError):
        TableStore(tmp_path).path("../etc", "tflite")


def test_bad_table_file_is_one_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="lacks column"):
        LatencyTable.read(p)


def test_pixel1_import_round_trips_every_mean(shared_data, tmp_path):
    src = shared_data / "lut" / "proxylessnas-pixel1-mobile_trim.yaml"
    t = import_proxylessnas(src, "pixel-1")
    back = LatencyTable.read(t.write(tmp_path / "pixel-1" / "tflite.csv"))
    published = yaml.safe_load(src.read_text())
    means = dict(zip(back.df["op_key"], back.df["mean_ms"]))
    assert len(means) == len(published) == 72
    assert all(means[k] == v["mean"] for k, v in published.items())
    again = yaml.safe_load(export_proxylessnas(back))
    assert all(again[k]["mean"] == v["mean"] and again[k]["count"] == v["count"] for k, v in published.items())
    assert all(math.isclose(again[k]["var"], v["var"], rel_tol=1e-9) for k, v in published.items())
    # every op of the ProxylessNAS mobile space is found by key: the imported table serves a search
    sp = create_space("proxyless", "mobile")
    sel = TableSelection("pixel-1", "tflite", "fp32", 1, 1)
    assert back.missing(sp.all_op_specs(), sel) == []


def test_ofa_import_keeps_unknown_fields(shared_data):
    t = import_proxylessnas(shared_data / "lut" / "ofa-note10" / "224_lookup_table.yaml", "note10")
    row = t.df[t.df["op_key"].str.contains("-se:1-hs:1")].iloc[0]
    assert row["op"] == "expanded_conv" and row["extra"] == "se:1-hs:1" and row["expand"] > 6


def test_shipped_published_tables_carry_provenance():
    from edgenas.paths import REPO_ROOT

    for device in ("pixel-1", "note10"):
        t = TableStore(REPO_ROOT / "latency_tables").load(device, "tflite", missing_ok=False)
        assert len(t) > 50
        assert (REPO_ROOT / "latency_tables" / device / "PROVENANCE.md").is_file()
        assert all(r.get("sha256") for r in t.runs.values())
