"""Full-integer int8 ``.tflite`` from a PyTorch module and a CalibrationSet.

**The flow: ai-edge-quantizer's ``static_wi8_ai8`` recipe** on the fp32 ``.tflite`` edgenas already
converts (``profiling.tflite.export_tflite``: same NHWC I/O, same converter): calibrate on the
CalibrationSet, quantize every op it supports (int8 weights per channel, int8 activations).

Chosen over litert-torch's PyTorch-side PT2E flow (``PT2EQuantizer`` with its symmetric
per-channel config, torchao ``prepare_pt2e``/``convert_pt2e``, ``litert_torch.convert`` with a
``QuantConfig``) by measurement on this machine, 2026-12-01, one random small-preset DARTS
network (fp32 graph: 53 CONV_2D, 42 DEPTHWISE_CONV_2D, 22 ADD, 15 RELU, 7 CONCATENATION, ...;
machine loaded, times are only relative):

- *full integer or not*: AEQ's graph is int8 end to end (every op's activations int8, 7
  QUANTIZE requantize steps added, at CONCATENATIONs whose inputs differ in scale). PT2E's is
  not: its annotators find ops through torch.export's source partitions, and on this torch the
  DARTS graph's ADDs, standalone RELUs, CONCATENATIONs, MEAN, MUL and SUB were left float,
  which cost 16 QUANTIZE and 35 DEQUANTIZE ops around float islands (20 of 22 ADDs float).
- *delegation*: in both, XNNPACK takes every op but int8 ``AVERAGE_POOL_2D`` and int8 ``RELU``:
  its TFLite delegate accepts those two on float tensors only (``VisitAveragePool2DNode`` and
  ``VisitReluNode`` check for a float type); they run on TFLite's int8 kernels and split the
  XNNPACK graph (``export.deployability.KNOWN_NOT_DELEGATED``). No quantizer changes that.
- *conversion time*: AEQ 2.7 s on top of the fp32 conversion; PT2E 424 s (its HistogramObserver
  calibration, and convert_pt2e exporting 96 conv-BN patterns whenever a BN survives, here the
  two after a CONCATENATION), which rules it out for profiling hundreds of op instances.
- *accuracy*: AEQ's model agrees with PyTorch within a few steps of its output scale and on
  every top-1 over real Fashion-MNIST images (``benchmarks/results/int8_delegation.md``); PT2E's
  was not measured past the network above, being float in a third of its ops.

**Calibration ranges: min/max over the whole calibration set**, AEQ's own
``qsv_utils.min_max_update`` passed to its ``Calibrator``. AEQ's default for the min/max
algorithm is an exponential moving average (weight 0.95) of each sample's min and max; with our
batch-1 samples that is about the last 20 images' *typical* extremes, not the set's, so every
tensor's range came out short (ReLU6 outputs capped near 5, logits near the typical top logit)
and clipped: 10.8% of one trained proxyless network's logits on test images, 16% relative error
at the output against 1.7% with min/max. On a weakly trained network (logit margins of a few
hundredths) this cost the test's search pick its agreement with fp32 (83.8% EMA vs 97.0% min/max
on a 20%-accuracy network; README "int8"). ONNX Runtime's MinMax calibrator, whose int8 agreed
99.4%, takes the set's min/max too.

**I/O**: AEQ quantizes the graph's input and output tensors in place, so its model has int8
I/O (``io="int8"``: the app quantizes with the recorded scale and zero point). For ``io="float"``
``_float_boundary`` puts a QUANTIZE before each int8 input and a DEQUANTIZE after each int8
output (graph edits with ai-edge-quantizer's own helpers; the runtime ops do the arithmetic with
the scales AEQ chose), which is what a mobile app that feeds float32 needs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgenas.errors import InputError, MeasurementError

#: the I/O a quantized model can have: float32 (QUANTIZE/DEQUANTIZE inside) or int8 (the app quantizes)
IO_TYPES: tuple[str, ...] = ("float", "int8")

#: which quantizer made the artifact: part of the backend's cache key
FLOW = "ai_edge_quantizer-static_wi8_ai8-minmax"


def check_io(io: str) -> str:
    """``io`` when it is one of IO_TYPES, else one clear line (InputError)."""
    if io not in IO_TYPES:
        raise InputError(f"unknown int8 model I/O {io!r}; choose one of {', '.join(IO_TYPES)}")
    return io


@dataclass(frozen=True)
class QuantizedTFLite:
    """An int8 ``.tflite`` and what using it takes: its I/O type and the I/O (scale, zero point).

    ``input_quant``/``output_quant`` hold [scale, zero_point] per model input/output (inside the
    model for float I/O); ``float_op_counts``/``float_bytes``: the fp32 model it was quantized from.
    """

    path: Path
    io: str
    input_quant: list = field(default_factory=list)
    output_quant: list = field(default_factory=list)
    calibration: dict = field(default_factory=dict)
    float_op_counts: dict = field(default_factory=dict)
    float_bytes: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path), "flow": FLOW}


def export_tflite_int8(module, input_shape, path, calibration, io: str = "float", nhwc: bool = True,
                       float_path=None) -> QuantizedTFLite:
    """Quantize ``module`` (every op AEQ supports: int8 weights per channel, int8 activations) to ``path``.

    ``float_path``: keep the fp32 model quantized from there (side-by-side comparisons), else a temp file.
    """
    from edgenas.export.tflite import read_model
    from edgenas.profiling.tflite import export_tflite, io_quantization

    check_io(io)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="edgenas-int8-") as tmp:
        fp32 = export_tflite(module, input_shape, Path(float_path or Path(tmp) / "fp32.tflite"), nhwc=nhwc)
        float_ops, float_bytes = read_model(fp32).op_counts, fp32.stat().st_size
        data = quantize_tflite(fp32, calibration, channel_last=nhwc and len(input_shape) == 4)
    if io == "float":
        data = _float_boundary(data)
    path.write_bytes(bytes(data))
    ins, outs = io_quantization(path)
    return QuantizedTFLite(path, io, ins, outs, calibration.describe(), dict(float_ops), float_bytes)


def quantize_tflite(fp32_path, calibration, channel_last: bool) -> bytes:
    """ai-edge-quantizer's static int8 recipe on ``fp32_path``, calibrated on ``calibration``: model bytes (int8 I/O)."""
    from edgenas._quiet import native_stderr_silenced
    from edgenas.profiling.tflite import make_interpreter

    try:
        from ai_edge_quantizer import calibrator, quantizer, recipe
        from ai_edge_quantizer.recipe_manager import RecipeManager
        from ai_edge_quantizer.utils.qsv_utils import min_max_update
    except ImportError:
        raise MeasurementError("int8 TFLite needs ai-edge-quantizer (pip install ai-edge-quantizer)") from None
    sigs = make_interpreter(fp32_path, 1).get_signature_list()
    if len(sigs) != 1 or len(next(iter(sigs.values()))["inputs"]) != 1:
        raise MeasurementError(f"int8 quantization takes a model with one signature and one input, got {sigs}")
    name, sig = next(iter(sigs.items()))
    samples = [np.transpose(s, (0, 2, 3, 1)) if channel_last else s for s in calibration.samples]
    try:
        with native_stderr_silenced(), _quiet_python_logs():
            rp = recipe.static_wi8_ai8()
            rm = RecipeManager()
            rm.load_quantization_recipe(rp)
            # the set's min/max, not AEQ's default moving average of per-sample min/max (module docstring)
            cal = calibrator.Calibrator(str(fp32_path), qsv_update_func=min_max_update)
            cal.calibrate({name: [{sig["inputs"][0]: np.ascontiguousarray(s, np.float32)} for s in samples]}, rm)
            result = quantizer.Quantizer(str(fp32_path), rp).quantize(cal.get_model_qsvs(),
                                                                      enable_progress_report=False)
    except Exception as e:  # noqa: BLE001 - any quantizer failure is this op's measurement failure
        raise MeasurementError(f"int8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    return bytes(result.quantized_model)


def _float_boundary(data: bytes) -> bytes:
    """The same int8 model with float32 I/O: QUANTIZE before each int8 input, DEQUANTIZE after each int8 output.

    The int8 I/O tensors keep their scale and zero point and become internal; the new float
    tensors take their place in the subgraph's and the signature's I/O lists.
    """
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.transformations.transformation_utils import add_new_activation_tensor, add_op_code

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    sg = model.subgraphs[0]
    float32 = qtyping.TensorType.FLOAT32
    renamed: dict[int, int] = {}

    def boundary(io_list, pos: int, quantize: bool):
        t = io_list[pos]
        if sg.tensors[t].type == float32:
            return
        new = add_new_activation_tensor(sg.tensors[t].name + b"_float", list(sg.tensors[t].shape), float32, sg)
        op = qtyping.OperatorT()
        code = qtyping.BuiltinOperator.QUANTIZE if quantize else qtyping.BuiltinOperator.DEQUANTIZE
        op.opcodeIndex = add_op_code(code, model.operatorCodes)
        op.inputs, op.outputs = ([new], [t]) if quantize else ([t], [new])
        sg.operators.insert(0 if quantize else len(sg.operators), op)
        io_list[pos] = renamed[t] = new

    for pos in range(len(sg.inputs)):
        boundary(sg.inputs, pos, quantize=True)
    for pos in range(len(sg.outputs)):
        boundary(sg.outputs, pos, quantize=False)
    for sig in model.signatureDefs or []:
        for tm in list(sig.inputs or []) + list(sig.outputs or []):
            tm.tensorIndex = renamed.get(tm.tensorIndex, tm.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@contextlib.contextmanager
def _quiet_python_logs():
    """ai-edge-quantizer prints a size report and logs progress on the root logger: keep them out of edgenas output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
