"""Genotype IO: JSON round trips, DARTS paper text, and one clear line for every bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from edgenas.errors import GenotypeError
from edgenas.spaces import create_space, load_genotype
from edgenas.spaces.darts import parse_darts_text

from conftest import DARTS_V2


@pytest.mark.parametrize("space,preset", [("darts", "small"), ("darts", "cifar10"), ("proxyless", "mobile"),
                                          ("proxyless", "small")])
def test_json_round_trip(tmp_path, space, preset):
    sp = create_space(space, preset)
    for seed in range(5):
        g = sp.genotype(sp.sample(random.Random(seed)))
        path = g.save(tmp_path / f"g{seed}.json")
        back = load_genotype(str(path))
        assert back.arch == g.arch and back.config == g.config and back.space == space
        assert json.loads(path.read_text())["version"] == 1


def test_darts_text_round_trip():
    g = load_genotype(DARTS_V2)
    assert g.space == "darts" and g.config["channels"] == 36 and g.config["layers"] == 20
    assert load_genotype(g.arch.to_text()).arch == g.arch


def test_darts_text_accepts_range_concat():
    text = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert parse_darts_text(text)["normal_concat"] == [2, 3, 4, 5]


def test_darts_text_is_never_executed():
    with pytest.raises(GenotypeError):
        parse_darts_text("Genotype(normal=__import__('os').system('echo hi'), reduce=[])")


def test_overrides_apply_to_json_genotypes(tmp_path):
    sp = create_space("darts", "small")
    path = sp.genotype(sp.sample(random.Random(0))).save(tmp_path / "g.json")
    g = load_genotype(str(path), overrides={"channels": 8})
    assert g.config["channels"] == 8 and g.config["input_size"] == 28


BAD_INPUTS = [
    (DARTS_V2.replace("sep_conv_3x3", "warp_conv_9x9", 1), "unknown op 'warp_conv_9x9'"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"), "takes input 7"),
    (DARTS_V2.replace("('sep_conv_3x3', 0), ", "", 1), "needs 8 (op, input) pairs"),
    ('{"space": "darts", "arch": {"normal": [', "not valid JSON"),
    ('{"space": "proxyless", "preset": "small", "arch": {"layers": ["3x3_MBConv1"]}}', "has 1 layers"),
    ('{"space": "proxyless", "preset": "small", "arch": {"layers": ["zero", "3x3_MBConv3", "3x3_MBConv3", '
     '"3x3_MBConv3", "3x3_MBConv3", "3x3_MBConv3", "3x3_MBConv3", "3x3_MBConv3", "3x3_MBConv3", "3x3_MBConv3"]}}',
     "layer 0"),
    ('{"space": "darts", "version": 99, "arch": {}}', "newer than this edgenas"),
    ('{"space": "nasnet", "arch": {}}', "unknown space 'nasnet'"),
    ("no-such-file.json", "no such genotype file"),
    ("hello", "is not a genotype file"),
]


@pytest.mark.parametrize("source,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_genotypes_give_one_clear_line(cli, source, message):
    code, out, err = cli("genotype", "show", source)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"space": "darts", "arch": {"normal": [["sep_conv_3x3", 0]]}}')
    p = subprocess.run([sys.executable, "-m", "edgenas", "genotype", "show", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith("error: darts arch") and "Traceback" not in p.stderr
