"""Extension points: one registry helper, duplicate names refused, third-party plug-ins from entry points.

The plug-in test installs ``tests/plugin_pkg`` (a backend, a space and a strategy in one module, named
by entry points in its ``pyproject.toml``) with pip into a throwaway venv and drives the real CLI there.
The venv sees this test venv's site-packages and the repository root through a ``.pth`` file, so
nothing is installed into the shared environment and torch is not installed again.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import clean_env, overlay_venv, pip_install

from edgenas.errors import SpaceError
from edgenas.registry import DuplicateName, Registry

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "plugin_pkg"


# ---- the helper itself ------------------------------------------------------------------------

class _A:
    name = "a"


class _OtherA:
    name = "a"


def test_duplicate_name_is_refused_not_overwritten():
    reg = Registry("widget")
    reg.register(_A)
    reg.register(_A)  # the same class again (a module imported twice, or named by an entry point too)
    with pytest.raises(DuplicateName, match=r"widget 'a' is already registered by .*_A; .*_OtherA cannot"):
        reg.register(_OtherA)
    assert reg.get("a") is _A


def test_unknown_name_raises_the_registrys_error():
    reg = Registry("space", error=SpaceError)
    with pytest.raises(SpaceError, match="unknown space 'nope'; known: "):
        reg.get("nope")


def test_builtins_share_the_one_helper():
    from edgenas.ops import registry as ops
    from edgenas.profiling import base as backends
    from edgenas.search import base as strategies
    from edgenas.search.blackbox import base as blackbox
    from edgenas.spaces import base as spaces

    for reg in (ops._OPS, backends._BACKENDS, spaces._SPACES, strategies._STRATEGIES, blackbox._BLACKBOX):
        assert isinstance(reg, Registry) and reg.names()
    with pytest.raises(DuplicateName, match="backend 'torch-cpu' is already registered"):
        backends.register_backend(type("Copy", (backends.backend_class("torch-cpu"),), {}))


# ---- a plug-in package, installed into a throwaway venv -----------------------------------------

@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin")
    python = overlay_venv(tmp / "venv", [REPO])
    src = shutil.copytree(PLUGIN, tmp / "plugin_pkg")  # pip builds in place: keep tests/ clean
    pip_install(python, src, tmp, clean_env())
    profiles = shutil.copytree(REPO / "device_profiles", tmp / "profiles")
    (profiles / "plug-host.yaml").write_text(
        "name: plug-host\ndescription: this machine, timed by the plug-in backend\nkind: host\n"
        f"arch: {platform.machine()}\nos: {platform.system()}\n"
        f"reach: [local]\nbackends:\n  torch-eager: {{threads: 1}}\ndetect:\n  machine: {platform.machine()}\n")
    env = clean_env(EDGENAS_DEVICE_PROFILES=str(profiles), EDGENAS_CACHE=str(tmp / "cache"))
    return python, tmp, env


def cli(python, env, cwd, *args):
    return subprocess.run([str(python), "-m", "edgenas", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_plugin_appears_in_the_listings(plugin_venv):
    python, tmp, env = plugin_venv
    r = cli(python, env, tmp, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    listed = {kind: {e["name"]: e for e in rows} for kind, rows in json.loads(r.stdout).items()}
    assert listed["backends"]["torch-eager"]["module"] == "edgenas_plugin_example"
    assert not listed["backends"]["torch-eager"]["builtin"]
    assert listed["spaces"]["tiny-proxyless"]["module"] == "edgenas_plugin_example"
    assert listed["strategies"]["random-half"]["module"] == "edgenas_plugin_example"
    assert listed["strategies"]["random"]["module"] == "edgenas.search.random_search"  # the clash did not win
    # imports came from the repository, not from some other installed copy
    where = subprocess.run([str(python), "-c", "import edgenas; print(edgenas.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where) == REPO / "edgenas" / "__init__.py"

    # each broken entry point: exactly one line naming it, no traceback
    lines = r.stderr.splitlines()
    assert "Traceback" not in r.stderr
    missing = [x for x in lines if "entry point missing = edgenas_plugin_example:NoSuchClass" in x]
    clash = [x for x in lines if "entry point clash = edgenas_plugin_example:ClashingStrategy" in x]
    assert len(missing) == 1 and "has no attribute 'NoSuchClass'" in missing[0]
    assert len(clash) == 1 and "strategy 'random' is already registered" in clash[0]

    r = cli(python, env, tmp, "spaces", "--json")
    assert r.returncode == 0, r.stderr
    spaces = {s["space"]: s for s in json.loads(r.stdout)["spaces"]}
    assert spaces["tiny-proxyless"]["presets"][0]["preset"] == "tiny"

    r = cli(python, env, tmp, "devices", "show", "plug-host", "--json")
    assert r.returncode == 0, r.stderr
    assert "torch-eager" in r.stdout


def test_plugin_backend_profiles_plugin_space_and_plugin_strategy_searches(plugin_venv):
    python, tmp, env = plugin_venv
    tables = tmp / "tables"
    env = {**env, "EDGENAS_TABLES": str(tables)}
    r = cli(python, env, tmp, "profile", "--device", "plug-host", "--backend", "torch-eager",
            "--space", "tiny-proxyless", "--preset", "tiny", "--quick", "--json")
    assert r.returncode == 0, r.stderr
    table = tables / "plug-host" / "torch-eager.csv"
    assert table.is_file()
    r = cli(python, env, tmp, "tables", "list", "--json")
    assert r.returncode == 0 and "torch-eager" in r.stdout, r.stderr

    r = cli(python, env, tmp, "search", "--device", "plug-host", "--backend", "torch-eager", "--space",
            "tiny-proxyless", "--preset", "tiny", "--strategy", "random-half", "--data", "synthetic",
            "--target-ms", "1000", "--budget", "4", "--batch-size", "8", "--top-k", "1", "--retrain-epochs",
            "0.1", "--train-size", "64", "--arch-size", "32", "--test-size", "32", "--eval-examples", "32",
            "--out", str(tmp / "run"), "--json")
    assert r.returncode == 0, r.stderr
    genotype = json.loads((tmp / "run" / "genotype.json").read_text())
    assert genotype["space"] == "tiny-proxyless"
