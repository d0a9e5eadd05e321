"""The CLI skeleton: help, spaces, genotype show/sample/convert, JSON output."""

from __future__ import annotations

import json

from conftest import DARTS_V2


def test_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "spaces" in out and "genotype" in out


def test_spaces_json(cli):
    code, out, _ = cli("spaces", "--json")
    data = json.loads(out)
    names = {s["space"]: {p["preset"] for p in s["presets"]} for s in data["spaces"]}
    assert {"small", "cifar10"} <= names["darts"] and {"mobile", "small"} <= names["proxyless"]


def test_genotype_show_darts_v2_json(cli):
    code, out, _ = cli("genotype", "show", DARTS_V2, "--channels", 36, "--layers", 20, "--json")
    assert code == 0
    data = json.loads(out)
    assert 3.2e6 < data["params"] < 3.45e6
    assert 4.5e8 < data["macs"] < 6e8  # ~0.53 G multiply-adds on 32x32 inputs
    assert any(k["key"].startswith("sep_conv_3x3-input:32x32x36") for k in data["op_keys"])


def test_genotype_sample_then_show_then_convert(cli, tmp_path):
    path = tmp_path / "g.json"
    code, _, _ = cli("genotype", "sample", "--space", "proxyless", "--preset", "small", "--seed", 4, "--out", path)
    assert code == 0 and path.exists()
    code, out, _ = cli("genotype", "show", path, "--json")
    assert code == 0 and json.loads(out)["space"] == "proxyless"
    code, _, _ = cli("genotype", "convert", DARTS_V2, "--out", tmp_path / "v2.json")
    assert code == 0
    code, out, _ = cli("genotype", "show", tmp_path / "v2.json", "--json")
    assert json.loads(out)["config"]["channels"] == 36


def test_channels_flag_is_rejected_for_proxyless(cli, tmp_path):
    code, _, err = cli("genotype", "sample", "--space", "proxyless", "--preset", "small", "--out", tmp_path / "p.json")
    code, _, err = cli("genotype", "show", tmp_path / "p.json", "--channels", 8)
    assert code == 2 and "unknown proxyless config field(s) channels" in err


def test_a_swallowed_ctrl_c_still_stops_at_the_next_check():
    import os
    import signal

    import pytest

    from edgenas import interrupt

    interrupt.install()
    try:
        try:  # a library that catches the KeyboardInterrupt and turns it into an ordinary error
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        assert interrupt.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        interrupt._state["interrupted"] = False
        signal.signal(signal.SIGINT, signal.default_int_handler)
