"""ONNX Runtime static int8: an fp32 ``.onnx`` in, a QDQ int8 ``.onnx`` out, with what changed.

No quantization math here: onnxruntime's own toolchain does it, in the order its documentation
asks for: ``quant_pre_process`` (symbolic shape inference and graph optimization, so the
quantizer sees fused Conv+BN and known shapes), then ``quantize_static`` in QDQ format with
per-channel int8 weights, calibrated (MinMax) on a ``CalibrationSet``.

Activations are unsigned (QUInt8, weights QInt8: U8S8), chosen by measurement, not by ORT's
S8S8 default: on this machine (x86-64, AVX-512 VNNI) onnxruntime's CPU provider fuses U8S8 QDQ
into QLinearConv/QLinearAdd almost everywhere, while with S8S8 it left depthwise convolutions in
float and residual Adds unfused (proxyless small: 6 float Conv, 14 Transpose and 37 Q/DQ nodes
left at S8S8 vs 0 float Conv and 4 Q/DQ at U8S8), and the S8S8 networks ran 1.2-2.4x slower
(three proxyless and three darts small networks timed side by side, one thread, loaded machine).
VNNI also removes the VPMADDUBSW saturation risk ORT's docs give for U8S8 on older x86 cores.

A quantized graph can run *more* nodes than its float one: each QuantizeLinear/DequantizeLinear
pair that onnxruntime cannot fold into a QLinear kernel stays as a separate node. ``quantize``
therefore counts the nodes onnxruntime actually executes (after its graph optimizations) for
both files and reports them, so a network that gets slower at int8 shows why.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from edgenas.quant.calibration import CalibrationSet

#: what the activation-type choice rests on (measured, not assumed; see the module docstring)
ACTIVATION_NOTE = ("activations QUInt8, weights QInt8 (U8S8): onnxruntime's CPU provider fuses it into QLinear "
                   "kernels where S8S8 left depthwise convs and Adds in float (measured 1.2-2.4x faster)")

#: the quantizer settings below, as text: part of an int8 artifact's cache key
RECIPE = "qdq-u8s8-perchannel-minmax"

_QDQ = ("QuantizeLinear", "DequantizeLinear")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a CalibrationSet's samples."""

    def __init__(self, input_name: str, calibration: CalibrationSet):
        self._it = iter(calibration.samples)
        self.input_name = input_name

    def get_next(self):
        s = next(self._it, None)
        return None if s is None else {self.input_name: np.asarray(s, dtype=np.float32)}

    def rewind(self):  # pragma: no cover - only calibrators that make several passes call it
        raise NotImplementedError


def executed_ops(path) -> Counter:
    """Node types onnxruntime runs for ``path`` (its fully optimized graph, CPU provider)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgenas-ortopt-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        graph = onnx.load(so.optimized_model_filepath).graph
    return Counter(n.op_type for n in graph.node)


def quantize(fp32_path, out_path, calibration: CalibrationSet) -> dict:
    """Write the QDQ int8 model of ``fp32_path`` at ``out_path``; returns what the report records.

    The result holds the quantizer settings, ``calibration.describe()`` (source, sample count,
    fingerprint, value ranges) and the executed node counts of both graphs, with
    ``more_nodes_than_float`` true when the quantized one runs more nodes (the known trap).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    # the quantizer logs "Axis 1 is out-of-range" on the root logger for a BatchNorm it then quantizes per tensor
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="edgenas-quant-") as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            quantize_static(str(pre), str(out_path), _Reader(input_name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    float_ops, int8_ops = executed_ops(fp32_path), executed_ops(out_path)
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": "QDQ", "per_channel": True,
            "activation_type": "QUInt8", "weight_type": "QInt8", "calibrate_method": "MinMax",
            "note": ACTIVATION_NOTE, "calibration": calibration.describe(),
            "float_nodes": sum(float_ops.values()), "int8_nodes": sum(int8_ops.values()),
            "int8_unfused_qdq": sum(int8_ops[k] for k in _QDQ),
            "more_nodes_than_float": sum(int8_ops.values()) > sum(float_ops.values()),
            "float_op_counts": dict(sorted(float_ops.items())), "int8_op_counts": dict(sorted(int8_ops.items()))}
