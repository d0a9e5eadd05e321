"""Shared fixtures. Tests that read third-party data skip cleanly when ../shared is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgenas.process import prefer_passive_openmp

prefer_passive_openmp()  # as the edgenas command does, before any test module imports torch

SHARED_DATA = Path(os.environ.get("EDGENAS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def cli(capsys):
    """Run the edgenas CLI in-process: returns (exit_code, stdout, stderr)."""
    from edgenas.cli.main import run

    def invoke(*args):
        code = run(list(map(str, args)))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def make_venv(path: Path, packages: list[str]) -> Path:
    """A fresh venv at ``path`` with only ``packages`` (no torch, no edgenas); returns its python.

    Skips the test (with pip's reason) only when no package index can be reached.
    """
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    if packages:
        p = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            offline = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
                       "No matching distribution found", "Could not find a version")
            if any(s in p.stderr for s in offline):
                pytest.skip(f"pip cannot install {' '.join(packages)} here: {p.stderr.strip().splitlines()[-1]}")
            raise RuntimeError(f"pip install {' '.join(packages)} failed: {p.stderr[-1500:]}")
    return python


def _pinned(dist: str) -> str:
    from importlib.metadata import version

    return f"{dist}=={version(dist)}"


@pytest.fixture(scope="session")
def runner_python(tmp_path_factory) -> Path:
    """Python of a venv with numpy, onnxruntime and ai-edge-litert at this env's versions, and no torch:
    what a board needs to run tools/edgenas_device_runner.py."""
    return make_venv(tmp_path_factory.mktemp("venv") / "runner",
                     [_pinned("numpy"), _pinned("onnxruntime"), _pinned("ai-edge-litert")])


@pytest.fixture(scope="session")
def numpy_only_python(tmp_path_factory) -> Path:
    """Python of a venv with numpy but no runtime: a board that lacks onnxruntime / TFLite."""
    return make_venv(tmp_path_factory.mktemp("venv") / "numpy-only", [_pinned("numpy")])


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """Python of a venv with nothing installed (no numpy, no runtime)."""
    return make_venv(tmp_path_factory.mktemp("venv") / "bare", [])


@pytest.fixture(scope="session")
def python38() -> str | None:
    """A working Python 3.8 (pyenv's or python3.8 on PATH; shims that cannot run 3.8 do not count), or None."""
    import glob
    import shutil
    import subprocess

    for py in sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.8*/bin/python"))) + [shutil.which("python3.8")]:
        if py and subprocess.run([py, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                                 capture_output=True).returncode == 0:
            return py
    return None


@pytest.fixture(scope="session")
def tflite_runtime_214_python(tmp_path_factory) -> Path:
    """Python of a venv with the last tflite_runtime on PyPI (2.14.0, numpy 1.x): what many boards run."""
    return make_venv(tmp_path_factory.mktemp("venv") / "tflite214", ["tflite-runtime==2.14.0", "numpy<2"])


def overlay_venv(root: Path, extra_paths=()) -> Path:
    """A throwaway venv that also sees this test venv's site-packages (torch, pip, setuptools...) and
    ``extra_paths`` through a .pth file, so nothing is installed twice or into the shared venv; its python."""
    import site
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (Path(own) / "parent_env.pth").write_text("\n".join([str(p) for p in extra_paths] + ours) + "\n")
    return python


def clean_env(**extra) -> dict:
    """os.environ without what points edgenas at this checkout or its data, plus ``extra``."""
    drop = ("PYTHONPATH", "EDGENAS_TABLES", "EDGENAS_DEVICE_PROFILES", "EDGENAS_CACHE", "EDGENAS_DEBUG")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def pip_install(python: Path, target, cwd: Path, env: dict) -> None:
    """``pip install`` with the test venv's pip into the venv of ``python``: no deps, no index, no isolation."""
    import subprocess

    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", str(target)], check=True, cwd=cwd, env=env)
