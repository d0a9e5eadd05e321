"""Device profiles: every shipped one validates; bad ones fail with one clear line."""

from __future__ import annotations

import pytest

from edgenas.devices import get_profile, host_profile_name, list_profiles, load_profile_file
from edgenas.errors import DeviceError

REQUIRED = {"jetson-nano", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5", "pixel-7", "x86-64-host",
            "nvidia-h100"}


def test_shipped_profiles_validate_and_cover_the_targets():
    profiles = {p.name: p for p in list_profiles()}
    assert REQUIRED <= set(profiles)
    for p in profiles.values():
        assert p.backends and p.reach
    assert "tensorrt" in profiles["jetson-nano"].backends
    assert profiles["pixel-7"].reach == ("bundle",)
    assert any("nvpmodel" in s for s in profiles["jetson-nano"].prepare)


def test_this_machine_is_the_x86_host():
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("not an x86-64 machine")
    assert host_profile_name() in ("x86-64-host", "nvidia-h100", "nvidia-h200")


def test_jetson_profile_does_not_match_here():
    ok, why = get_profile("jetson-nano").matches_this_machine()
    assert not ok and why


BAD = [
    ("name: x\n", "missing required field"),
    ("name: bad\ndescription: d\nkind: toaster\narch: x\nreach: [local]\nbackends: {tflite: {}}\n", "'kind' must be"),
    ("name: bad\ndescription: d\nkind: board\narch: x\nreach: [local]\nbackends: {warp: {}}\n", "unknown backend 'warp'"),
    ("name: bad\ndescription: d\nkind: board\narch: x\nreach: [local]\nbackends: {tflite: {threads: four}}\n",
     "threads' must be a positive integer"),
    ("name: other\ndescription: d\nkind: board\narch: x\nreach: [local]\nbackends: {tflite: {}}\n", "they must agree"),
    ("name: bad\ndescription: d\nkind: board\narch: x\nreach: [teleport]\nbackends: {tflite: {}}\n", "'reach'"),
    ("name: bad\n  description: [\n", "not valid YAML"),
    ("name: bad\ndescription: d\nkind: board\narch: x\nreach: [local]\nbackends: {tflite: {}}\ncolour: red\n",
     "unknown field(s) colour"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m for _, m in BAD])
def test_bad_profiles(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(DeviceError) as e:
        load_profile_file(p)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_device_lists_known_ones():
    with pytest.raises(DeviceError, match="known: .*jetson-nano"):
        get_profile("toaster")


def test_cli_refuses_to_profile_the_wrong_hardware(cli):
    code, _, err = cli("profile", "--device", "jetson-nano", "--backend", "onnxruntime")
    assert code == 2
    assert "this machine is not a jetson-nano" in err and "--bundle" in err and "--host" in err


def test_cli_devices_list_and_show(cli):
    import json

    code, out, _ = cli("devices", "list", "--json")
    data = json.loads(out)
    assert code == 0 and {d["name"] for d in data["devices"]} >= REQUIRED
    code, out, _ = cli("devices", "show", "raspberry-pi-5")
    assert code == 0 and "scaling_governor" in out
