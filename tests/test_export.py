"""edgenas export on real converters and runtimes: torch.onnx + onnxruntime, litert-torch + ai_edge_litert.

The short version of benchmarks/export_parity.py (2 random genotypes per space), the delegation
check held to a model it must reject, parity that must fail when the weights change after export,
and the CLI on a real search run directory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import InputError
from edgenas.export import parity as P
from edgenas.export.deployability import legacy_compat, xnnpack_delegation
from edgenas.export.pipeline import ExportOptions, check_network, load_weights, parse_formats
from edgenas.export.tflite import read_model
from edgenas.latency.verify import sample_archs
from edgenas.profiling.base import create_backend
from edgenas.spaces import create_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """2 random genotypes per space (small presets), trained-like BN, exported to ONNX and TFLite."""
    root = tmp_path_factory.mktemp("export")
    out = []
    for name in ("darts", "proxyless"):
        space = create_space(name, "small")
        for i, arch in enumerate(sample_archs(space, 2, seed=11)):
            nhwc = name == "proxyless" and i == 1  # one NHWC-I/O model, to cover that layout's parity
            module = P.trained_like(space.build(arch), seed=i)
            net = check_network(module, space, 1, root / f"{name}{i}", ExportOptions(parity_samples=16, nhwc=nhwc))
            out.append((name, i, nhwc, space, module, net, arch))
    return out


def test_random_genotypes_of_both_spaces_export_delegate_and_match_pytorch(networks):
    for name, i, nhwc, space, module, net, _ in networks:
        assert net.failures == [], (name, i, [f.message for f in net.failures])
        assert set(net.artifacts) == {"onnx", "tflite"}
        for runtime in ("onnxruntime", "tflite"):
            r = net.parity["runtimes"][runtime]
            assert r["passed"] and r["max_abs_diff"] <= 1e-4 and r["top1_agreement"] == 1.0, (name, runtime, r)
        assert net.parity["real_inputs"] and "fashion-mnist" in net.parity["inputs"]
        x = net.info["tflite"]["xnnpack"]
        assert x["fully_delegated"] and x["not_delegated"] == {} and x["stablehlo_or_custom"] == []
        assert sum(v["delegated"] for v in x["ops"].values()) == sum(net.info["tflite"]["op_counts"].values())
        assert net.info["tflite"]["tflite_runtime_2_14"]["loadable"]
        o = net.info["onnx"]
        assert o["opset"]["ai.onnx"] == 18 and o["checker"].startswith("passed") and o["op_counts"]["Conv"] > 0
        assert o["inputs"]["input"] == [1, *space.input_shape] and o["outputs"]["output"] == [1, 10]


def test_tflite_layout_follows_nhwc_flag(networks):
    from edgenas.profiling.tflite import make_interpreter

    for name, i, nhwc, space, module, net, _ in networks:
        if name != "proxyless":
            continue
        shape = tuple(make_interpreter(net.artifacts["tflite"], 1).get_input_details()[0]["shape"])
        c, h, w = space.input_shape
        assert shape == ((1, h, w, c) if nhwc else (1, c, h, w))


def test_tflite_reader_agrees_with_the_interpreter(networks):
    from edgenas.profiling.tflite import make_interpreter

    net = networks[0][5]
    info = read_model(net.artifacts["tflite"])
    plan = [d["op_name"] for d in make_interpreter(net.artifacts["tflite"], 1)._get_ops_details()
            if d["op_name"] != "DELEGATE"]
    assert sorted(plan) == sorted(op for op, n in info.op_counts.items() for _ in range(n))
    assert info.schema_version == 3 and info.min_runtime_version


def test_parity_fails_when_weights_change_after_export(networks):
    name, i, nhwc, space, module, net, arch = networks[0]
    inputs = P.parity_inputs(space.input_shape, 16, 1)
    changed = P.trained_like(space.build(arch), seed=99)  # same network, other weights than were exported
    ref = P.torch_outputs(changed, inputs.x)
    ort = create_backend("onnxruntime")
    res = P.compare(ref, ort.outputs(net.artifacts["onnx"], inputs.x, 1))
    assert not res["passed"] and res["max_abs_diff"] > 1e-4
    assert P.describe_failure("onnxruntime", res, 1e-4).startswith("onnxruntime max abs diff")
    ok = P.compare(P.torch_outputs(module, inputs.x), ort.outputs(net.artifacts["onnx"], inputs.x, 1))
    assert ok["passed"]


def test_compare_counts_near_ties_but_fails_real_flips():
    ref = np.array([[1.0, 1.00001, 0.0], [2.0, 0.0, 0.0]], np.float32)
    got = np.array([[1.00001, 1.0, 0.0], [2.0, 0.0, 0.0]], np.float32)
    r = P.compare(ref, got, 1e-4)
    assert r["passed"] and r["near_ties"] == 1 and r["top1_agreement"] == 0.5
    flipped = np.array([[1.0, 1.00001, 0.0], [0.0, 2.0, 0.0]], np.float32)
    r = P.compare(ref, flipped, 1e-4)
    assert not r["passed"] and r["top1_disagreements"] == 1
    assert not P.compare(ref, ref[:, :2])["passed"]


class _AvgPoolNet(nn.Module):
    """Conv + stride-2 3x3 average pool without padding in the count: reference form or DARTS' ExactAvgPool."""

    def __init__(self, exact: bool):
        super().__init__()
        from edgenas.ops.darts_ops import ExactAvgPool

        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.pool = ExactAvgPool(2) if exact else nn.AvgPool2d(3, 2, 1, count_include_pad=False)

    def forward(self, x):
        return self.pool(self.conv(x))


@pytest.fixture(scope="module")
def avgpool_models(tmp_path_factory):
    from edgenas.profiling.tflite import export_tflite

    root = tmp_path_factory.mktemp("avgpool")
    torch.manual_seed(0)
    ref = _AvgPoolNet(False).eval()
    exact = _AvgPoolNet(True).eval()
    exact.load_state_dict(ref.state_dict())
    paths = {}
    for is_exact, module in ((False, ref), (True, exact)):
        paths[is_exact] = export_tflite(module, (1, 4, 14, 14), root / f"exact{int(is_exact)}.tflite", nhwc=True)
    paths["modules"] = (ref, exact)
    return paths


def test_delegation_check_flags_the_stablehlo_avgpool(avgpool_models):
    d = xnnpack_delegation(avgpool_models[False])
    assert not d.fully_delegated
    assert "STABLEHLO_REDUCE_WINDOW" in d.not_delegated and "STABLEHLO_REDUCE_WINDOW" in d.stablehlo_or_custom
    assert d.ops["CONV_2D"] == {"count": 1, "delegated": 1}  # the check sees partial delegation, op by op
    legacy = legacy_compat(avgpool_models[False])
    assert not legacy.loadable and any("STABLEHLO_REDUCE_WINDOW" in p for p in legacy.problems)


def test_exact_avgpool_is_fully_delegated_and_equal(avgpool_models):
    d = xnnpack_delegation(avgpool_models[True])
    assert d.fully_delegated and d.partitions == 1 and "AVERAGE_POOL_2D" in d.ops
    assert legacy_compat(avgpool_models[True]).loadable
    ref, exact = avgpool_models["modules"]
    x = torch.from_numpy(P.parity_inputs((4, 14, 14), 2, 1).x)
    got = create_backend("tflite", nhwc=True).outputs(avgpool_models[True], x.numpy(), 1)
    with torch.no_grad():
        assert torch.allclose(ref(x), exact(x), atol=1e-6)
    assert P.compare(ref(x).detach().numpy(), got)["max_abs_diff"] < 1e-5


def test_weights_that_do_not_fit_are_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    prox = create_space("proxyless", "small")
    other = create_space("darts", "small")
    f = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in other.build(sample_archs(other, 1, 0)[0]).state_dict().items()}, str(f))
    with pytest.raises(InputError, match="do not fit this genotype's network"):
        load_weights(prox.build(sample_archs(prox, 1, 0)[0]), f)
    with pytest.raises(InputError, match="no weights file"):
        load_weights(prox.build(sample_archs(prox, 1, 0)[0]), tmp_path / "nope.safetensors")


def test_format_parsing():
    assert parse_formats("onnx, TFLite") == ("onnx", "tflite")
    with pytest.raises(InputError, match="coreml"):
        parse_formats("onnx,coreml")


# ---- the CLI on a real search run ------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from edgenas.cli.main import run

    out = tmp_path_factory.mktemp("run") / "run"
    code = run(["search", "--target-ms", "0.6", "--strategy", "random", "--data", "synthetic", "--budget", "12",
                "--top-k", "1", "--retrain-epochs", "0.05", "--population", "4", "--no-measure", "--out", str(out),
                "--json"])
    assert code == 0
    return out


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_cli_export_of_a_search_run_passes_and_reports(cli, run_dir, tmp_path):
    code, out, err = cli("export", run_dir, "--format", "onnx,tflite", "--target-ms", 1000, "--quick", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("parity_max_abs_diff", "measured_ms", "predicted_ms", "target_ms", "passed"):
        assert key in r
    assert r["passed"] and r["target_ms"] == 1000 and r["latency_gated"]
    assert 0 <= r["parity_max_abs_diff"] <= 1e-4 and r["measured_ms"] > 0 and r["predicted_ms"] > 0
    lat = r["latency"]
    assert lat["measured"] and lat["device"] == "x86-64-host" and lat["backend"] == "onnxruntime"
    assert lat["artifact"] == str(run_dir / "export" / "model.onnx") and lat["p50_ms"] <= lat["p90_ms"]
    assert r["weights"] == str(run_dir / "weights.safetensors")
    assert r["artifacts"]["tflite"]["xnnpack"]["fully_delegated"]
    assert json.loads((run_dir / "export" / "report.json").read_text())["passed"]
    assert "PASSED" in (run_dir / "export" / "report.md").read_text()


def test_cli_export_fails_cleanly_below_the_measured_latency(cli, run_dir, tmp_path):
    code, out, err = cli("export", run_dir, "--format", "onnx", "--target-ms", 0.0001, "--quick", "--out", tmp_path)
    assert code == 6 and _one_line(err), err
    assert "over the target 0.0001 ms" in err and "Traceback" not in out
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["passed"] is False and r["latency"]["within_target"] is False


def test_cli_parity_failure_is_one_line_when_weights_change_after_export(cli, run_dir, tmp_path, monkeypatch):
    """Real exporter and runtimes; the network's weights are perturbed right after the ONNX file is written."""
    from edgenas.profiling.onnxruntime_backend import OnnxRuntimeBackend

    real = OnnxRuntimeBackend.ship

    def ship_then_perturb(self, module, *a, **k):
        shipped = real(self, module, *a, **k)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.05)
        return shipped

    monkeypatch.setattr(OnnxRuntimeBackend, "ship", ship_then_perturb)
    code, out, err = cli("export", run_dir, "--format", "onnx", "--no-measure", "--out", tmp_path)
    assert code == 7 and _one_line(err), err
    assert "onnxruntime max abs diff" in err and "against PyTorch" in err
    assert json.loads((tmp_path / "report.json").read_text())["parity"]["runtimes"]["onnxruntime"]["passed"] is False


def test_cli_exports_darts_text_at_the_preset_given(cli, tmp_path):
    """A bare DARTS Genotype(...) is built at --preset (as 'edgenas predict' reads it), not only at cifar10."""
    from conftest import DARTS_V2

    code, out, err = cli("export", DARTS_V2, "--space", "darts", "--preset", "small", "--format", "onnx",
                         "--no-measure", "--parity-samples", 4, "--out", tmp_path, "--json")
    assert code == 0, err
    r = json.loads(out)
    small = create_space("darts", "small")
    assert r["genotype"]["space"] == "darts" and r["genotype"]["preset"] == "small"
    assert r["input_shape_nchw"] == [1, *small.input_shape] != [1, *create_space("darts", "cifar10").input_shape]
    assert r["artifacts"]["onnx"]["inputs"]["input"] == [1, *small.input_shape] and r["parity"]["passed"]
    code, _, err = cli("export", DARTS_V2, "--space", "proxyless", "--out", tmp_path / "x")
    assert code == 2 and _one_line(err) and "darts genotype, not 'proxyless'" in err, err


def test_cli_strict_on_another_device_says_latency_is_not_verified(cli, run_dir, tmp_path):
    code, out, err = cli("export", run_dir, "--format", "onnx", "--device", "raspberry-pi-4", "--backend", "tflite",
                         "--strict", "--target-ms", 50, "--out", tmp_path)
    assert code == 7 and _one_line(err), err
    assert "could not be verified here" in err and "--bundle" in err


def test_cli_strict_takes_the_runs_target_and_fails_when_not_measured(cli, run_dir, tmp_path):
    code, out, err = cli("export", run_dir, "--format", "onnx", "--strict", "--no-measure", "--out", tmp_path)
    assert code == 7 and _one_line(err) and "could not be verified here" in err, err
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["target_ms"] == 0.6 and r["latency_gated"] and r["predicted_ms"] > 0


@pytest.mark.parametrize("args, needle", [
    (["/no/such/run"], "no such genotype file"),
    (["RUN", "--format", "onnx,coreml"], "unknown export format coreml"),
    (["RUN", "--weights", "OTHER"], "do not fit this genotype's network"),
    (["RUN", "--parity-samples", "0"], "--parity-samples"),
    (["RUN", "--target-ms", "-1"], "--target-ms must be positive"),
    (["RUN", "--tflite-runtime-python", "/no/python"], "does not exist"),
    (["RUN", "--device", "no-such-board"], "unknown device 'no-such-board'"),
    (["RUN", "--backend", "no-such-backend"], "unknown backend 'no-such-backend'"),
    (["GENOTYPE_NO_META", "--strict"], "--strict needs a target"),
])
def test_cli_bad_inputs_are_one_line(cli, run_dir, tmp_path, args, needle):
    from safetensors.torch import save_file

    other = create_space("darts", "small")
    w = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.build(sample_archs(other, 1, 0)[0]).state_dict().items()}, str(w))
    bare = tmp_path / "bare.json"  # a genotype without a run's meta (no target, device or weights)
    d = json.loads((run_dir / "genotype.json").read_text())
    d.pop("meta")
    bare.write_text(json.dumps(d))
    args = [str(run_dir) if a == "RUN" else str(w) if a == "OTHER" else str(bare) if a == "GENOTYPE_NO_META" else a
            for a in args]
    code, out, err = cli("export", *args, "--out", tmp_path / "o")
    assert code == 2 and _one_line(err) and needle in err, err


# ---- a real tflite_runtime 2.14 -------------------------------------------------------------------

def test_static_214_table_is_what_the_real_runtime_registers(tflite_runtime_214_python):
    from edgenas.export._tflite214_ops import OPS, RUNTIME
    from edgenas.export.legacy_runtime import probe_op_support

    probed = probe_op_support(tflite_runtime_214_python)
    assert probed["runtime"] == RUNTIME
    assert {k: tuple(v) for k, v in probed["ops"].items()} == OPS


def test_real_214_runtime_loads_our_model_and_refuses_stablehlo(tflite_runtime_214_python, networks, avgpool_models):
    from edgenas.export.legacy_runtime import run_model

    name, i, nhwc, space, module, net, _ = networks[0]
    inputs = P.parity_inputs(space.input_shape, 4, 1)
    res = run_model(tflite_runtime_214_python, net.artifacts["tflite"], inputs.x)
    assert res["loaded"] and res["runtime"] == "tflite_runtime 2.14.0", res
    assert P.compare(P.torch_outputs(module, inputs.x), res["outputs"])["passed"]
    bad = run_model(tflite_runtime_214_python, avgpool_models[False], np.zeros((1, 14, 14, 4), np.float32))
    assert not bad["loaded"] and "198" in bad["error"]  # STABLEHLO_REDUCE_WINDOW's builtin code
