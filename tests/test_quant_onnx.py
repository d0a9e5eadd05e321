"""ONNX Runtime int8: onnxruntime's own static QDQ quantizer, run for real on our networks and ops."""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest

from edgenas.devices import get_profile
from edgenas.errors import InputError
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.onnxruntime_backend import export_onnx, ort_session
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.runner import profile_ops, space_specs
from edgenas.quant import onnx_int8
from edgenas.quant.calibration import representative
from edgenas.spaces import create_space


@pytest.fixture(scope="module")
def proxyless_net(tmp_path_factory):
    """A random proxyless/small network as fp32 .onnx, its QDQ int8 file and the quantizer's record."""
    tmp = tmp_path_factory.mktemp("int8")
    sp = create_space("proxyless", "small")
    arch = sp.sample(random.Random(3))
    shape = (1, *sp.input_shape)
    fp32, int8 = tmp / "net.onnx", tmp / "net_int8.onnx"
    export_onnx(sp.build(arch).eval(), shape, fp32)
    info = onnx_int8.quantize(fp32, int8, representative(shape, n=4))
    return fp32, int8, info, shape


def test_quantized_file_is_qdq_int8_with_its_calibration_and_node_counts(proxyless_net):
    fp32, int8, info, shape = proxyless_net
    nodes = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= nodes and "QuantizeLinear" not in \
        {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert info["calibration"]["n"] == 4 and info["calibration"]["source"].startswith("representative")
    assert info["calibration"]["min"] < 0 < info["calibration"]["max"]
    # what onnxruntime runs: QLinear kernels, and counts that say whether int8 runs more nodes
    assert info["int8_op_counts"].get("QLinearConv", 0) > 0 and "Conv" not in info["int8_op_counts"]
    assert info["float_nodes"] == sum(info["float_op_counts"].values())
    assert info["more_nodes_than_float"] == (info["int8_nodes"] > info["float_nodes"])
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights: about a quarter of the bytes


def test_quantized_network_keeps_float_io_and_close_outputs(proxyless_net):
    fp32, int8, _, shape = proxyless_net
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    a, b = (ort_session(p).run(None, {"input": x})[0] for p in (fp32, int8))
    assert ort_session(int8).get_inputs()[0].type == "tensor(float)"
    assert b.shape == a.shape and np.abs(a - b).max() < 0.25 * (np.abs(a).max() + 1e-6)


def test_onnxruntime_backend_at_int8_profiles_ops_and_records_calibration(tmp_path):
    be = create_backend("onnxruntime", precision="int8")
    assert be.precision == "int8" and create_backend("onnxruntime").artifact_id("k", (1, 3, 8, 8)) != \
        be.artifact_id("k", (1, 3, 8, 8))
    store = TableStore(tmp_path)
    specs = space_specs(["proxyless"], "small")[:2]
    profile_ops(get_profile("x86-64-host"), be, specs, [1], store, settings=ProtocolSettings.quick(),
                cache=tmp_path / "cache")
    table = store.load("x86-64-host", "onnxruntime")
    assert set(table.df["precision"]) == {"int8"} and (table.df["median_ms"] > 0).all()
    [run] = table.runs.values()
    assert run["backend"]["precision"] == "int8" and run["calibration"]["source"].startswith("representative")
    assert "min" in run["calibration"] and "fingerprint" in run["calibration"]


def test_a_backend_without_int8_refuses_it_in_one_line():
    with pytest.raises(InputError, match="torch-cpu.*not 'int8'"):
        create_backend("torch-cpu", precision="int8")
