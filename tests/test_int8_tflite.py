"""int8 TFLite on the real toolchain: litert-torch + ai-edge-quantizer, ai_edge_litert + XNNPACK.

Single ops and a small network of the DARTS space are quantized for real; outputs are held to
PyTorch within a tolerance counted in steps of the model's own output scale (what one int8
code is worth), delegation is read from the interpreter, and the tflite_runtime 2.14 load is a
real one where the 2.14 venv can be made.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import InputError
from edgenas.export.parity import trained_like
from edgenas.latency.verify import sample_archs
from edgenas.ops.darts_ops import ExactAvgPool, ExactMaxPool
from edgenas.profiling.base import create_backend
from edgenas.profiling.tflite import make_interpreter, to_model_input
from edgenas.quant.calibration import from_images, representative
from edgenas.quant.tflite_int8 import IO_TYPES, export_tflite_int8
from edgenas.spaces import create_space

pytestmark = pytest.mark.slow

#: steps of the output scale PyTorch's float output may differ by, on inputs inside the calibrated
#: range: the input's and every intermediate tensor's rounding add up (measured 2026-12-01: at most
#: 2.6 steps, mean <= 0.5 for these ops; 1.9 / 0.5 for the network)
MAX_STEPS, MEAN_STEPS = 6, 1.0


def _ops():
    torch.manual_seed(0)
    return {
        "conv": (trained_like(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())), (1, 8, 12, 12)),
        "depthwise": (nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6()), (1, 16, 12, 12)),
        "linear": (nn.Linear(32, 10), (1, 32)),
        "max_pool_3x3": (nn.Sequential(nn.Conv2d(8, 8, 1), ExactMaxPool(2)), (1, 8, 12, 12)),
    }


def _representable(q, which: str, i: int = 0):
    """The float range int8 tensor ``which`` ("input"/"output") of ``q`` can hold: scale * (-128 - zp, 127 - zp)."""
    scale, zp = q[f"{which}_quant"][i]
    return scale * (-128 - zp), scale * (127 - zp)


def _steps(module, path, x, q):
    """|TFLite - PyTorch| in steps of the output scale (max, mean), running ``path`` on NCHW ``x``.

    Values beyond the calibrated ranges clip (none of the calibration samples' own, see the test
    below): the reference is PyTorch on the input clipped to its representable range, with its
    output clipped likewise; what is left is rounding.
    """
    be = create_backend("tflite", precision="int8")
    got = be.outputs(path, x, 1)
    with torch.no_grad():
        ref = module.eval()(torch.from_numpy(np.clip(x, *_representable(q, "input")))).numpy()
    err = np.abs(got - np.clip(ref, *_representable(q, "output"))) / q["output_quant"][0][0]
    return float(err.max()), float(err.mean())


@pytest.mark.parametrize("name", ["conv", "depthwise", "linear", "max_pool_3x3"])
def test_single_op_float_io_is_fully_delegated_int8_and_matches_pytorch(name, tmp_path):
    module, shape = _ops()[name]
    cal = representative(shape)
    q = export_tflite_int8(module, shape, tmp_path / f"{name}.tflite", cal, io="float")
    it = make_interpreter(q.path, 1)
    assert it.get_input_details()[0]["dtype"] == np.float32 and it.get_output_details()[0]["dtype"] == np.float32
    from edgenas.export.deployability import xnnpack_delegation

    d = xnnpack_delegation(q.path)
    assert d.fully_delegated and d.partitions == 1, d.not_delegated
    compute = {k: v for k, v in d.ops.items() if k not in ("QUANTIZE", "DEQUANTIZE", "TRANSPOSE", "RESHAPE")}
    assert compute and all(set(d.dtypes[k]) == {"int8"} for k in compute), d.dtypes  # really int8
    worst, mean = _steps(module, q.path, np.concatenate(cal.samples), q.as_dict())
    print(name, worst, mean)
    assert worst <= MAX_STEPS and mean <= MEAN_STEPS, (name, worst, mean, q.output_quant)


def test_calibrated_ranges_hold_every_calibration_sample_not_a_moving_average_of_them(tmp_path):
    """Input and output ranges cover the min and max over the whole calibration set (``min_max_update``).

    AEQ's default, a moving average of each sample's min/max, leaves the set's extremes outside
    the range: here the inputs are spread so that one sample (the first, weighted least by the
    average) holds the extremes; with the moving average the representable input range fell
    well short of them, which clipped logits and cost agreement on real networks (README "int8").
    """
    shape = (1, 16)
    torch.manual_seed(0)
    module = nn.Linear(16, 10)
    rng = np.random.default_rng(0)
    samples = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(32)]
    samples[0] = samples[0] * 8  # the extremes sit in one early sample
    q = export_tflite_int8(module, shape, tmp_path / "lin.tflite", from_images(np.concatenate(samples), 1, "spread"))
    lo, hi = _representable(q.as_dict(), "input")
    scale = q.input_quant[0][0]
    x = np.concatenate(samples)
    assert lo <= x.min() + scale and hi >= x.max() - scale, (lo, hi, x.min(), x.max())
    with torch.no_grad():
        y = module(torch.from_numpy(x)).numpy()
    lo, hi = _representable(q.as_dict(), "output")
    scale = q.output_quant[0][0]
    assert lo <= y.min() + scale and hi >= y.max() - scale, (lo, hi, y.min(), y.max())


def test_int8_average_pool_and_relu_are_reported_not_delegated_with_their_reason(tmp_path):
    shape = (1, 8, 12, 12)
    q = export_tflite_int8(nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 1), ExactAvgPool(2)), shape,
                           tmp_path / "avg.tflite", representative(shape))
    from edgenas.export.deployability import xnnpack_delegation

    d = xnnpack_delegation(q.path)
    assert d.not_delegated == {"AVERAGE_POOL_2D": 1, "RELU": 1}, d.not_delegated
    assert d.dtypes["AVERAGE_POOL_2D"] == {"int8": 1} and d.dtypes["RELU"] == {"int8": 1}
    assert "float tensors only" in d.reasons["AVERAGE_POOL_2D"] and "float tensors only" in d.reasons["RELU"]


@pytest.fixture(scope="module")
def darts_net():
    space = create_space("darts", "small")
    arch = sample_archs(space, 1, seed=3)[0]
    module = trained_like(space.build(arch), seed=0).eval()
    from edgenas.export.parity import parity_inputs

    inputs = parity_inputs(space.input_shape, 64, 1)
    return space, module, inputs


@pytest.mark.parametrize("io", IO_TYPES)
def test_small_network_int8_agrees_with_pytorch_and_takes_its_declared_input_type(io, darts_net, tmp_path):
    space, module, inputs = darts_net
    shape = (1, *space.input_shape)
    cal = from_images(inputs.x[32:], 1, inputs.source, n=16)
    be = create_backend("tflite", precision="int8", io=io)
    be.calibration = cal
    shipped = be.ship(module, shape, tmp_path / "model.tflite")
    assert shipped.path.name == "model_int8.tflite" and shipped.info["bytes"] > 0
    assert 0 < shipped.info["bytes"] < shipped.info["float_bytes"]  # the int8 checks' size ratio reads both
    assert shipped.info["quantization"]["io"] == io and shipped.info["quantization"]["calibration"]["n"] == 16
    assert shipped.info["tflite_runtime_2_14"]["loadable"], shipped.info["tflite_runtime_2_14"]["problems"]
    # this network's int8 RELUs / AVERAGE_POOL_2Ds stay with TFLite's kernels: known, so --strict fails, not export
    x = shipped.info["xnnpack"]
    assert shipped.failures == [] and set(x["not_delegated"]) <= set(x["reasons"])
    assert bool(shipped.strict_failures) == (not x["fully_delegated"])
    it = make_interpreter(shipped.path, 1)
    d = it.get_input_details()[0]
    assert d["dtype"] == (np.float32 if io == "float" else np.int8)
    if io == "int8":  # an int8-I/O model takes int8 and refuses float32
        assert d["quantization"][0] > 0
        with pytest.raises(ValueError):
            it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
        it.set_tensor(d["index"], to_model_input(d, np.zeros(d["shape"], np.float32)))
        it.invoke()
        assert it.get_output_details()[0]["dtype"] == np.int8
    worst, mean = _steps(module, shipped.path, inputs.x[:32], shipped.info["quantization"])
    print(io, worst, mean)
    assert worst <= MAX_STEPS and mean <= MEAN_STEPS, (worst, mean)
    got = be.outputs(shipped.path, inputs.x[:32], 1)
    with torch.no_grad():
        ref = module(torch.from_numpy(inputs.x[:32])).numpy()
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_bad_io_value_is_one_line():
    with pytest.raises(InputError) as e:
        create_backend("tflite", precision="int8", io="uint8")
    assert "\n" not in str(e.value) and "float, int8" in str(e.value)


def test_int8_io_timer_feeds_int8_inputs_and_runs(tmp_path):
    """What profiling does at int8: export through the backend, load, time one run on int8 inputs."""
    module, shape = _ops()["depthwise"]
    be = create_backend("tflite", precision="int8", io="int8")
    path = be.export(module, shape, tmp_path / "dw.tflite")
    timer = be.load(path, shape)
    d = timer.it.get_input_details()[0]
    assert d["dtype"] == np.int8 and timer.it.get_tensor(d["index"]).std() > 0  # quantized, not all zero points
    timer()
    assert be.artifact_id("k", shape) != create_backend("tflite", precision="int8").artifact_id("k", shape)


@pytest.mark.parametrize("io", IO_TYPES)
def test_tflite_runtime_214_loads_and_runs_the_int8_model(io, tflite_runtime_214_python, tmp_path):
    """A real 2.14 load: the int8 builtins and versions the quantizer emits exist there, and it computes the same
    (for int8 I/O, its runner quantizes the input and dequantizes the output with the model's scale/zero point)."""
    from edgenas.export.deployability import legacy_compat
    from edgenas.export.legacy_runtime import run_model
    from edgenas.profiling.inputs import to_layout

    module, shape = _ops()["conv"]
    cal = representative(shape)
    q = export_tflite_int8(module, shape, tmp_path / "conv.tflite", cal, io=io)
    assert legacy_compat(q.path).loadable
    x = np.concatenate(cal.samples)
    res = run_model(tflite_runtime_214_python, q.path, to_layout(x, "nhwc"))
    assert res["loaded"], res.get("error")
    ours = create_backend("tflite", precision="int8", io=io).outputs(q.path, x, 1)
    theirs = np.transpose(res["outputs"], (0, 3, 1, 2))
    assert np.abs(ours - theirs).max() <= 1.01 * q.output_quant[0][0]  # at most one int8 step apart
