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
from edgenas.profiling.base import Backend, ShippedArtifact, register_backend
from edgenas.profiling.inputs import example_input, from_layout, to_layout
from edgenas.profiling.protocol import Timer


def interpreter_class():
    """(Interpreter class, runtime name, version) from ai_edge_litert or tflite_runtime."""
    try:
        from ai_edge_litert import interpreter as lite

        try:
            from importlib.metadata import version

            v = version("ai-edge-litert")
        except Exception:  # noqa: BLE001
            v = "unknown"
        return lite.Interpreter, "ai_edge_litert", v
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


class _TFLiteTimer(Timer):
    def __init__(self, interpreter):
        self.it = interpreter
        for i, d in enumerate(interpreter.get_input_details()):
            interpreter.set_tensor(d["index"], example_input(d["shape"], seed=i).astype(d["dtype"]))

    def __call__(self):
        self.it.invoke()


@register_backend
class TFLiteBackend(Backend):
    name = "tflite"
    suffix = ".tflite"
    export_format = "tflite"
    runner_runtime = "tflite"
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
        try:
            from importlib.metadata import version

            conv = version("litert-torch")
        except Exception:  # noqa: BLE001
            conv = "unknown"
        return f"{self.runtime_version()}-litert_torch{conv}-nhwc{int(self.nhwc)}"

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
        return export_tflite(module, input_shape, Path(path), nhwc=self.nhwc)

    def load(self, path, input_shape):
        return _TFLiteTimer(make_interpreter(path, self.threads))

    def ship(self, module, input_shape, path) -> ShippedArtifact:
        """``model.tflite`` with its XNNPACK delegation and tflite_runtime 2.14 checks."""
        from edgenas.export.tflite import ship

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
            it.set_tensor(d["index"], np.ascontiguousarray(to_layout(x[i:i + batch], self.layout)))
            it.invoke()
            outs.append(from_layout(it.get_tensor(o["index"]).copy(), self.layout))
        return np.concatenate(outs)

    def more_parity(self, artifact, x, reference, atol, info):
        """With option ``legacy_python`` (a Python with tflite_runtime 2.14): a real load and parity run there."""
        if self.options.get("legacy_python") is None:
            return []
        from edgenas.export.legacy_runtime import legacy_parity

        return [legacy_parity(self.options["legacy_python"], artifact, x, reference, atol, self.layout, info)]
