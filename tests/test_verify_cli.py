"""End to end on a real runtime: profile -> calibrate -> verify from the CLI (torch-cpu: no conversion cost)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_profile_calibrate_verify_json_and_plot(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENAS_CACHE", str(tmp_path / "cache"))
    tables = tmp_path / "tables"
    common = ["--device", "x86-64-host", "--backend", "torch-cpu", "--tables-dir", tables]
    code, out, err = cli("profile", *common, "--space", "proxyless", "--preset", "small", "--quick", "--json")
    assert code == 0, err
    code, out, err = cli("calibrate", *common, "--space", "proxyless", "--preset", "small", "--n", 5, "--quick", "--json")
    assert code == 0, err
    cal = json.loads(out)["calibration"]
    assert cal["n_networks"] == 5 and cal["model"] != "identity"
    # advice exactly when the fit misses its own networks (leave-one-out)
    assert bool(json.loads(out)["advice"]) == (cal["fit_within_10pct"] < 0.9)
    plot = tmp_path / "v.png"
    code, out, err = cli("verify", *common, "--space", "proxyless", "--preset", "small", "--n", 6, "--quick",
                         "--plot", plot, "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("within_10pct", "within_5pct", "mape", "kendall_tau", "n", "rmse_ms"):
        assert key in r
    assert r["n"] == 6 and 0 <= r["within_10pct"] <= 1 and r["mape"] >= 0
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    scored = {n["arch_id"] for n in r["networks"]}
    assert not scored & set(cal["arch_ids"])  # calibration networks are never scored
