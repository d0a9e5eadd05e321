"""The wheel works outside the repository: device profiles, shipped tables and the on-device runner
are package data, and the user's own tables are written under the user's data directory.

Builds the wheel from a copy of the source tree, installs it (no deps) into a throwaway venv that sees
this venv's site-packages but not the repository, and runs the real CLI from an empty directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env, overlay_venv, pip_install

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "edgenas", "device_profiles", "latency_tables",
           "tools")
OP = "max_pool_3x3-input:8x8x4-output:8x8x4-stride:1"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.lock", "_data", "*.egg-info", "bundles")
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)], check=True, cwd=tmp)
    wheel, = (tmp / "dist").glob("edgenas-*.whl")
    python = overlay_venv(tmp / "venv")  # sees our site-packages (torch...), not the repository
    home = tmp / "home"
    home.mkdir()
    env = clean_env(HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    pip_install(python, wheel, tmp, env)
    work = tmp / "empty"
    work.mkdir()
    return python, work, home, env


def run(installed, *args, check=True):
    python, work, _, env = installed
    r = subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def edgenas(installed, *args):
    return json.loads(run(installed, "-m", "edgenas", *args, "--json").stdout)


def test_imports_resolve_to_the_wheel(installed):
    python = installed[0]
    where = Path(run(installed, "-c", "import edgenas; print(edgenas.__file__)").stdout.strip())
    assert where.is_relative_to(python.parent.parent) and "site-packages" in where.parts
    assert not where.is_relative_to(REPO)


def test_devices_tables_predict_and_bundle_from_an_empty_directory(installed):
    python, work, home, _ = installed
    devices = edgenas(installed, "devices", "list")
    assert {"pixel-1", "x86-64-host"} <= {d["name"] for d in devices["devices"]}

    listed = edgenas(installed, "tables", "list")
    assert {(g["device"], g["backend"]) for g in listed["groups"]} >= {("pixel-1", "tflite"), ("note10", "tflite")}

    run(installed, "-m", "edgenas", "genotype", "sample", "--space", "proxyless", "--preset", "mobile",
        "--seed", "1", "--out", "g.json")
    pred = edgenas(installed, "predict", "g.json", "--device", "pixel-1", "--backend", "tflite")
    assert pred["predicted_ms"] > 0

    edgenas(installed, "profile", "--device", "x86-64-host", "--backend", "onnxruntime", "--ops", OP,
            "--bundle", "b.zip")
    with zipfile.ZipFile(work / "b.zip") as z:
        runner = [n for n in z.namelist() if n.endswith("edgenas_device_runner.py")]
        assert runner and z.read(runner[0]) == (REPO / "tools" / "edgenas_device_runner.py").read_bytes()
    user_tables = home / ".local" / "share" / "edgenas" / "latency_tables"
    assert list((user_tables / "x86-64-host" / "bundles").glob("*.json"))  # the manifest copy, in the user's dir
    assert sorted(p.name for p in work.iterdir()) == ["b.zip", "g.json"]  # nothing else written to the cwd


def test_user_tables_are_written_beside_the_shipped_ones(installed):
    python, work, home, _ = installed
    site = Path(run(installed, "-c", "import edgenas.paths as p; print(p.shipped('latency_tables'))").stdout.strip())
    shipped = site / "pixel-1" / "tflite.csv"
    before = shipped.read_bytes()
    (work / "extra.yaml").write_text(f'"{OP}": {{mean: 0.5, std: 0.01, count: 10}}\n')
    rep = edgenas(installed, "tables", "import", "extra.yaml", "--format", "proxylessnas", "--device", "pixel-1")
    assert Path(rep["table"]) == home / ".local" / "share" / "edgenas" / "latency_tables" / "pixel-1" / "tflite.csv"
    shipped_rows = before.count(b"\n") - 1
    assert rep["table_entries"] == shipped_rows + 1  # the shipped rows and the new one
    assert shipped.read_bytes() == before  # the package's copy is untouched
    (work / "extra.yaml").unlink()
