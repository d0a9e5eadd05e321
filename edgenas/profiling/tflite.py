"""``tflite``: LiteRT / TFLite interpreter with XNNPACK, models converted by litert-torch.

Models are converted with NHWC inputs and outputs (``litert_torch.to_channel_last_io``): with
NCHW I/O every isolated op model gains TRANSPOSE ops at its boundary that the whole network
does not have (measured: 76 over one architecture's op models vs 1 in the whole net).
The interpreter comes from ``ai_edge_litert``, falling back to ``tflite_runtime``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from edgenas.errors import MeasurementError
from edgenas.profiling.base import Backend, ShippedArtifact, package_version, register_backend
from edgenas.profiling.inputs import example_input, from_layout, to_layout
from edgenas.profiling.protocol import Timer


def interpreter_class():
    """(Interpreter class, runtime name, version) from ai_edge_litert or tflite_runtime."""
    try:
        from ai_edge_litert import interpreter as lite

        return lite.Interpreter, "ai_edge_litert", package_version("ai-edge-litert") or "unknown"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as lite  # type: ignore

        import tflite_runtime  # type: ignore

        return lite.Interpreter, "tflite_runtime", getattr(tflite_runtime, "__version__", "unknown")
    except ImportError:
        return None, None, None


def export_tflite(module, input_shape, path: Path, nhwc: bool = True) -> Path:
    import torch

    from edgenas._quiet import quiet_converters

    quiet_converters()
    import litert_torch

    x = torch.from_numpy(example_input(input_shape))
    module = module.eval()
    with torch.no_grad():
        out_rank = module(x).dim()
    if nhwc and x.dim() == 4:
        module = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if out_rank == 4 else []).eval()
        x = x.permute(0, 2, 3, 1).contiguous()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            edge = litert_torch.convert(module, (x,))
        edge.export(str(path))
    except Exception as e:  # noqa: BLE001
        raise MeasurementError(f"TFLite conversion failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    return Path(path)


def make_interpreter(path, threads: int):
    cls, _, _ = interpreter_class()
    if cls is None:
        raise MeasurementError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on a board)")
    from edgenas._quiet import native_stderr_silenced

    with native_stderr_silenced():
        it = cls(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    return it


def _quant_params(detail):
    """ai-edge-quantizer's uniform quantization parameters of an int8 tensor, or None for a float one."""
    import numpy as np

    if np.dtype(detail["dtype"]).kind == "f":
        return None
    from ai_edge_quantizer import qtyping

    return qtyping.UniformQuantParams.from_tfl_tensor_details(detail)


def to_model_input(detail, x):
    """Float ``x`` as the model's input ``detail`` declares it: cast, or quantized with its scale/zero point."""
    import numpy as np

    params = _quant_params(detail)
    if params is None:
        return np.ascontiguousarray(x, dtype=detail["dtype"])
    from ai_edge_quantizer.algorithms.uniform_quantize.uniform_quantize_tensor import uniform_quantize

    return np.ascontiguousarray(uniform_quantize(np.asarray(x, dtype=np.float32), params), dtype=detail["dtype"])


def from_model_output(detail, y):
    """The model's output ``y`` as float32: dequantized with its scale/zero point where it is int8."""
    import numpy as np

    params = _quant_params(detail)
    if params is None:
        return np.asarray(y, dtype=np.float32)
    from ai_edge_quantizer.algorithms.uniform_quantize.uniform_quantize_tensor import uniform_dequantize

    return np.asarray(uniform_dequantize(y, params), dtype=np.float32)


def io_quantization(path) -> tuple[list, list]:
    """Per model input and output: the int8 [scale, zero_point] at the boundary, or None (a float model).

    For int8 I/O these are the I/O tensors' own; for float I/O, those of the tensor the input's
    QUANTIZE makes and the tensor the output's DEQUANTIZE reads: the same numbers either way.
    """
    import numpy as np

    it = make_interpreter(path, 1)
    tensors = {int(t["index"]): t for t in it.get_tensor_details()}
    nodes = it._get_ops_details() if hasattr(it, "_get_ops_details") else []

    def q(index):
        t = tensors[index]
        if np.dtype(t["dtype"]).kind == "f":
            inside = [n for n in nodes if n["op_name"] == "QUANTIZE" and index in list(n["inputs"])] + \
                     [n for n in nodes if n["op_name"] == "DEQUANTIZE" and index in list(n["outputs"])]
            if not inside:
                return None
            n = inside[0]
            t = tensors[int((n["outputs"] if n["op_name"] == "QUANTIZE" else n["inputs"])[0])]
        return [float(t["quantization"][0]), int(t["quantization"][1])]

    return [q(int(d["index"])) for d in it.get_input_details()], [q(int(d["index"])) for d in it.get_output_details()]


class _TFLiteTimer(Timer):
    def __init__(self, interpreter):
        self.it = interpreter
        for i, d in enumerate(interpreter.get_input_details()):
            interpreter.set_tensor(d["index"], to_model_input(d, example_input(d["shape"], seed=i)))

    def __call__(self):
        self.it.invoke()


@register_backend
class TFLiteBackend(Backend):
    name = "tflite"
    suffix = ".tflite"
    export_format = "tflite"
    runner_runtime = "tflite"
    #: int8: every op quantized by ``edgenas.quant.tflite_int8`` (option ``io``: "float" or "int8" model I/O)
    precisions = ("fp32", "int8")
    int8_io = ("float", "int8")
    install_hint = "pip install ai-edge-litert litert-torch"

    @classmethod
    def availability(cls):
        if interpreter_class()[0] is None:
            return False, f"no TFLite interpreter ({cls.install_hint})"
        return True, ""

    def runtime_version(self) -> str:
        _, name, v = interpreter_class()
        return f"{name}-{v}"

    def converter_version(self) -> str:
        conv = package_version("litert-torch") or "unknown"
        text = f"{self.runtime_version()}-litert_torch{conv}-nhwc{int(self.nhwc)}"
        if self.precision == "int8":  # the quantizer's version changes the artifact too
            from edgenas.quant.tflite_int8 import FLOW

            text += f"-{FLOW}{package_version('ai-edge-quantizer') or 'unknown'}-io_{self.io}"
        return text

    def __init__(self, threads: int = 1, precision: str = "fp32", **options):
        super().__init__(threads, precision, **options)
        self.io  # noqa: B018 - a bad io option is one line now, not at the first export

    @property
    def io(self) -> str:
        """An int8 model's input/output type: "float" (quantize/dequantize inside) or "int8"."""
        from edgenas.quant.tflite_int8 import check_io

        return check_io(self.options.get("io", "float"))

    @property
    def nhwc(self) -> bool:
        return bool(self.options.get("nhwc", True))

    @property
    def layout(self) -> str:
        return "nhwc" if self.nhwc else "nchw"

    def export(self, module, input_shape, path):
        try:
            import litert_torch  # noqa: F401
        except ImportError:
            raise MeasurementError("TFLite conversion needs litert-torch (pip install litert-torch)") from None
        if self.precision == "int8":
            from edgenas.quant.tflite_int8 import export_tflite_int8

            return export_tflite_int8(module, input_shape, Path(path), self.calibration_for(input_shape),
                                      io=self.io, nhwc=self.nhwc).path
        return export_tflite(module, input_shape, Path(path), nhwc=self.nhwc)

    def derived_from(self, op_kind, input_shape):
        """fp32 single ops of ``tflite_batch.REBATCH_EXACT_OPS`` at batch > 1: from the batch-1 model."""
        from edgenas.profiling.tflite_batch import REBATCH_EXACT_OPS

        if self.precision != "fp32" or op_kind not in REBATCH_EXACT_OPS or input_shape[0] == 1:
            return None
        return (1, *input_shape[1:])

    def derive(self, source, input_shape):
        from edgenas.profiling.tflite_batch import rebatch

        return rebatch(source, input_shape[0])

    def load(self, path, input_shape):
        return _TFLiteTimer(make_interpreter(path, self.threads))

    def ship(self, module, input_shape, path) -> ShippedArtifact:
        """``model.tflite`` (``model_int8.tflite`` at int8) with its XNNPACK delegation and tflite_runtime 2.14 checks."""
        from edgenas.export.tflite import ship, ship_int8

        if self.precision == "int8":
            return ship_int8(module, input_shape, Path(path), self.calibration_for(input_shape), self.io, self.nhwc)
        return ship(module, input_shape, Path(path), nhwc=self.nhwc)

    @classmethod
    def report_lines(cls, info):
        from edgenas.export.tflite import markdown_lines

        return markdown_lines(info)

    def outputs(self, artifact, x, batch):
        import numpy as np

        it = make_interpreter(artifact, self.threads)
        d, o = it.get_input_details()[0], it.get_output_details()[0]
        outs = []
        for i in range(0, len(x), batch):
            it.set_tensor(d["index"], to_model_input(d, to_layout(x[i:i + batch], self.layout)))
            it.invoke()
            outs.append(from_layout(from_model_output(o, it.get_tensor(o["index"]).copy()), self.layout))
        return np.concatenate(outs)

    def more_parity(self, artifact, x, reference, atol, info):
        """With option ``legacy_python`` (a Python with tflite_runtime 2.14): a real load and parity run there."""
        if self.options.get("legacy_python") is None:
            return []
        from edgenas.export.legacy_runtime import legacy_parity

        return [legacy_parity(self.options["legacy_python"], artifact, x, reference, atol, self.layout, info)]
