"""The Python API (edgenas/api.py): the README's "Python API (notebooks)" calls on a tiny case.

Latency comes from the shipped x86-64-host onnxruntime table; training uses the synthetic dataset
and a few steps only, to keep this short (never reported as results)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import edgenas
from edgenas.errors import GenotypeError, InputError
from edgenas.latency.predictor import LatencyPredictor
from edgenas.spaces import create_space, load_genotype

DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def test_importing_edgenas_does_not_import_torch():
    code = ("import sys, edgenas; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert callable(edgenas.search_network) and 'Predictor' in dir(edgenas)")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        edgenas.no_such_thing  # noqa: B018


def test_predictor_matches_the_library_and_refuses_another_config():
    pred = edgenas.Predictor("x86-64-host", "onnxruntime", space="darts", preset="small")
    ms = pred.predict_ms(DARTS_V2)  # the paper's cell, in this predictor's (small) network
    space = create_space("darts", "small")
    arch = load_genotype(DARTS_V2, space="darts", preset="small").arch
    direct = LatencyPredictor.load("x86-64-host", "onnxruntime", space, 1).predict(space, arch).predicted_ms
    assert isinstance(ms, float) and ms == pytest.approx(direct) and ms > 0
    assert pred.predict_ms(arch) == pytest.approx(ms)
    sampled = [pred.predict_ms(a) for a in pred.sample(3, seed=1)]
    assert len(set(sampled)) > 1  # different networks, different latencies
    with pytest.raises(GenotypeError, match="another configuration"):
        pred.predict(load_genotype(DARTS_V2))  # a DARTS text alone means the cifar10 network


def test_search_then_export_a_tiny_run(tmp_path):
    pred = edgenas.Predictor("x86-64-host", "onnxruntime", space="proxyless", preset="small")
    target = sorted(pred.predict_ms(a) for a in pred.sample(20))[10]  # about half the space fits
    summary = edgenas.search_network("x86-64-host", "onnxruntime", target_ms=target, space="proxyless",
                             strategy="random", preset="small", out=tmp_path / "run", data="synthetic",
                             budget=dict(steps=4, batch_size=8, top_k=1, retrain_epochs=0.02, population=2),
                             weights_size=200, arch_size=100, test_size=100, measure=False)
    genotype = load_genotype(str(tmp_path / "run"))
    assert summary["chosen"]["predicted_ms"] == pytest.approx(pred.predict_ms(genotype))
    assert summary["chosen"]["predicted_ms"] <= target  # random search proposes feasible archs only
    again = edgenas.search_network("x86-64-host", "onnxruntime", target_ms=target, space="proxyless", strategy="random",
                           preset="small", out=tmp_path / "run", data="synthetic",
                           budget=dict(steps=4, batch_size=8, top_k=1, retrain_epochs=0.02, population=2),
                           weights_size=200, arch_size=100, test_size=100, measure=False, resume=True)
    assert again == summary  # a finished run resumes to its summary
    with pytest.raises(InputError, match="already holds a run"):
        edgenas.search_network("x86-64-host", "onnxruntime", target_ms=target, out=tmp_path / "run")
    result = edgenas.export_network(tmp_path / "run", formats=("onnx",), measure=False, parity_samples=8)
    assert result.passed and (result.out / "model.onnx").is_file()


def test_profile_measures_one_op_into_a_fresh_table(tmp_path):
    key = create_space("darts", "small").fixed_specs()[0].key  # the 3x3 stem conv
    result = edgenas.profile("x86-64-host", backend="onnxruntime", ops=[key], quick=True, tables_dir=tmp_path)
    (b,) = result["backends"]
    assert b["backend"] == "onnxruntime" and b["measured"] == 1 and b["already_present"] == 0
    with pytest.raises(InputError, match="--resume"):  # the resume guard: never re-measure silently
        edgenas.profile("x86-64-host", backend="onnxruntime", ops=[key], quick=True, tables_dir=tmp_path)
    again = edgenas.profile("x86-64-host", backend="onnxruntime", ops=[key], quick=True, tables_dir=tmp_path,
                            resume=True)
    assert again["backends"][0]["measured"] == 0 and again["backends"][0]["already_present"] == 1
