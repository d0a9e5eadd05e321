"""Shared fixtures. Tests that read third-party data skip cleanly when ../shared is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
