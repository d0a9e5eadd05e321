"""``tensorrt``: NVIDIA TensorRT engines built from our ONNX export, FP32 or FP16.

Built against the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``); buffers are
PyTorch CUDA tensors and each call is timed with CUDA events, like the ``cuda`` backends.
Boards that have ``trtexec`` but no Python bindings can time an engine with ``trtexec`` themselves:
``parse_trtexec_output`` turns its summary into our statistics.

NOT VERIFIED HERE: TensorRT cannot be installed in the environment edgenas is developed in;
only the ``trtexec`` parser and the availability check are tested.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgenas.errors import MeasurementError
from edgenas.profiling.base import Backend, register_backend
from edgenas.profiling.cuda import CudaEventTimer, cuda_available
from edgenas.profiling.inputs import example_input
from edgenas.profiling.onnxruntime_backend import export_onnx


class _TrtTimer(CudaEventTimer):
    def __init__(self, engine_bytes: bytes, input_shape):
        import tensorrt as trt
        import torch

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise MeasurementError("TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.buffers = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = torch.float16 if self.engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                buf = torch.from_numpy(example_input(shape)).to("cuda", dtype=dtype)
            else:
                buf = torch.empty(shape, device="cuda", dtype=dtype)
            self.buffers[name] = buf
            self.context.set_tensor_address(name, buf.data_ptr())

    def launch(self):
        import torch

        with torch.cuda.stream(self.stream):
            self.context.execute_async_v3(self.stream.cuda_stream)


@register_backend
class TensorRTBackend(Backend):
    name = "tensorrt"
    suffix = ".engine"
    precisions = ("fp32", "fp16")
    uses_threads = False
    install_hint = "pip install tensorrt (NVIDIA index) on a machine with an NVIDIA GPU, or JetPack on a Jetson"

    @classmethod
    def availability(cls):
        ok, why = cuda_available()
        if not ok:
            return False, why
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return False, f"the tensorrt Python package is not installed ({cls.install_hint})"
        return True, ""

    def runtime_version(self) -> str:
        import tensorrt

        return tensorrt.__version__

    def export(self, module, input_shape, path):
        onnx_path = Path(path).with_suffix(".onnx")
        export_onnx(module, input_shape, onnx_path)
        Path(path).write_bytes(build_engine(onnx_path.read_bytes(), fp16=self.precision == "fp16"))
        return Path(path)

    def load(self, path, input_shape):
        return _TrtTimer(Path(path).read_bytes(), input_shape)


def build_engine(onnx_bytes: bytes, fp16: bool = False, workspace_bytes: int = 1 << 30) -> bytes:
    """Serialized TensorRT engine for an ONNX model (TensorRT 10 API: explicit batch is the default)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise MeasurementError(f"TensorRT could not parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    engine = builder.build_serialized_engine(network, config)
    if engine is None:
        raise MeasurementError("TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(engine)


# ---- trtexec -----------------------------------------------------------------------------

_METRIC_RE = re.compile(r"(?P<metric>Latency|GPU Compute Time|Enqueue Time|H2D Latency|D2H Latency): "
                        r"(?P<fields>(?:[a-z]+(?:\(\d+(?:\.\d+)?%\))? = [-+0-9.eE]+ ms,?\s*)+)")
_FIELD_RE = re.compile(r"(?P<name>[a-z]+(?:\((?P<pct>\d+(?:\.\d+)?)%\))?) = (?P<value>[-+0-9.eE]+) ms")
_THROUGHPUT_RE = re.compile(r"Throughput: (?P<qps>[0-9.eE+-]+) qps")


def parse_trtexec_output(text: str) -> dict:
    """The performance summary of ``trtexec`` as numbers: {metric: {min, max, mean, median, p90, ...}}.

    Metric names are snake_cased (``gpu_compute_time``, ``latency``...); percentile fields become
    ``p90``/``p95``/``p99``. Lines may carry ``[date] [I]`` prefixes and wrap; both are handled.
    """
    flat = re.sub(r"\s*\n\s*(?:\[[^\]]*\]\s*)*(?=[a-z(])", " ", text)
    out: dict = {}
    for m in _METRIC_RE.finditer(flat):
        fields = {}
        for f in _FIELD_RE.finditer(m.group("fields")):
            key = f"p{float(f.group('pct')):g}" if f.group("pct") else f.group("name")
            fields[key] = float(f.group("value"))
        out[m.group("metric").lower().replace(" ", "_")] = fields
    t = _THROUGHPUT_RE.search(text)
    if t:
        out["throughput_qps"] = float(t.group("qps"))
    if "gpu_compute_time" not in out:
        raise MeasurementError("no 'GPU Compute Time' summary in trtexec output (did the run fail?)")
    return out
