"""A device edgenas has never seen, known only from whole-network measurements (a generic CSV):
import -> tables fit -> predict -> search, with no op table and no device profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenas.spaces.nb201_arch import EDGES, NB201_OPS, Nb201Arch

DEV, BE = "never-seen-phone", "tflite"


def _write_csv(path, n=60, seed=11):
    """Synthetic NB201 latencies: an additive cost per (edge, op) of live edges, plus 2% noise."""
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0.02, 0.5, (len(EDGES), len(NB201_OPS)))
    cost[:, 0] = 0.0  # none
    rows, lat = [], []
    while len(rows) < n:
        a = Nb201Arch(tuple(NB201_OPS[k] for k in rng.integers(0, 5, 6)))
        if not a.connected:
            continue
        ms = 1.5 + sum(cost[e, NB201_OPS.index(op)] for e, (op, on) in enumerate(zip(a.ops, a.live_edges())) if on)
        rows.append(a.to_arch_str())
        lat.append(ms * rng.uniform(0.98, 1.02))
    path.write_text("genotype,latency_ms\n" + "".join(f"{g},{v:.5f}\n" for g, v in zip(rows, lat)))
    return rows, lat


def _search(cli, out, strategy, target):
    return cli("search", "--device", DEV, "--backend", BE, "--space", "nb201", "--preset", "small",
               "--target-ms", target, "--strategy", strategy, "--data", "synthetic", "--budget", 4,
               "--batch-size", 16, "--population", 4, "--eval-examples", 32, "--top-k", 1, "--retrain-epochs", 0.05,
               "--train-size", 160, "--arch-size", 64, "--test-size", 64, "--torch-device", "cpu", "--out", out,
               "--json")


def test_new_device_import_fit_predict_search(cli, tmp_path, monkeypatch):
    tables = tmp_path / "tables"
    monkeypatch.setenv("EDGENAS_TABLES", str(tables))  # search reads the default table root
    rows, lat = _write_csv(tmp_path / "phone.csv")
    code, out, err = cli("tables", "fit", "-d", DEV, "-b", BE, "-m", tmp_path / "phone.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 60
    code, out, err = cli("predict", rows[0], "-d", DEV, "-b", BE, "--json")
    assert code == 0, err
    assert json.loads(out)["predicted_ms"] == pytest.approx(lat[0], rel=0.10)
    target = float(np.median(lat))
    for strategy in ("random", "spos"):
        run = tmp_path / f"run-{strategy}"
        code, out, err = _search(cli, run, strategy, target)
        assert code == 0, err
        s = json.loads(out)
        g = json.loads((run / "genotype.json").read_text())
        assert "nb201" in json.dumps(g) and s["chosen"]["predicted_ms"] <= target
        assert s["chosen"]["measured_ms"] is None and s["measurement"].startswith("not measured")
        assert s["latency_model"].startswith("whole-network")
    # gradient strategies need per-op latencies: refused in one line that names what works
    code, out, err = _search(cli, tmp_path / "run-px", "proxyless", target)
    assert code == 2 and len(err.strip().splitlines()) == 1 and all(n in err for n in ("random", "spos", "enas")), err
    assert not (tmp_path / "run-px").exists()


def test_malformed_csv_is_refused_in_one_line_and_tables_are_unchanged(cli, tmp_path):
    tables = tmp_path / "tables"
    _write_csv(tmp_path / "phone.csv")
    assert cli("tables", "fit", "-d", DEV, "-b", BE, "-m", tmp_path / "phone.csv", "--tables-dir", tables)[0] == 0
    before = {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()}
    good = (tmp_path / "phone.csv").read_text().splitlines()
    (tmp_path / "bad.csv").write_text("\n".join(good[:5] + ["|nor_conv_3x3~0|+|oops~0|,1.0", good[6] + "x"]) + "\n")
    code, out, err = cli("tables", "fit", "-d", DEV, "-b", BE, "-m", tmp_path / "bad.csv", "--tables-dir", tables)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "line 6" in err and "line 7" in err
    assert {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()} == before
