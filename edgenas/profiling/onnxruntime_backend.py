"""``onnxruntime``: ONNX Runtime, CPU execution provider by default, any installed EP by name.

Export uses ``torch.onnx.export(dynamo=True)`` (the path ``edgenas export`` ships), falling back
to the legacy TorchScript exporter where dynamo fails. ``ort_session`` is the one place an
``InferenceSession`` is made: profiling, the parity run and plain timing load models alike.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from edgenas import interrupt
from edgenas.errors import BackendUnavailable, MeasurementError
from edgenas.profiling.base import Backend, ShippedArtifact, register_backend
from edgenas.profiling.inputs import example_input
from edgenas.profiling.protocol import Timer

OPSET = 18


def export_onnx(module, input_shape, path: Path, prefer_dynamo: bool = True, errors: list | None = None) -> str:
    """Write ``module`` as ONNX; returns the exporter used ('dynamo' or 'legacy').

    ``errors``, when given, receives why each failed exporter failed (the dynamo error behind a
    legacy fallback is worth reporting).
    """
    import torch

    from edgenas._quiet import quiet_converters

    quiet_converters()
    x = torch.from_numpy(example_input(input_shape))
    module = module.eval()
    errors = [] if errors is None else errors
    for dynamo in ((True, False) if prefer_dynamo else (False,)):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (x,), str(path), dynamo=dynamo, opset_version=OPSET,
                                  input_names=["input"], output_names=["output"], external_data=False)
            return "dynamo" if dynamo else "legacy"
        except Exception as e:  # noqa: BLE001 - exporter failures vary; we report them all
            interrupt.check()  # a Ctrl-C the exporter turned into an error is not a reason to fall back
            errors.append(f"{'dynamo' if dynamo else 'legacy'}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    raise MeasurementError("ONNX export failed: " + "; ".join(errors))


def ort_session(path, threads: int = 1, providers=None, optimized_model_filepath: str | None = None):
    """An onnxruntime session of ``path`` with ``threads`` intra-op threads, one op at a time.

    Sequential execution and every graph optimization are onnxruntime's defaults, spelled out so
    a runtime upgrade cannot change what is timed; one inter-op thread (unused when sequential).
    ``optimized_model_filepath``: where to write the optimised graph this session runs.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if optimized_model_filepath:
        so.optimized_model_filepath = optimized_model_filepath
    return ort.InferenceSession(str(path), sess_options=so, providers=list(providers or ["CPUExecutionProvider"]))


class _OrtTimer(Timer):
    def __init__(self, session, feed):
        self.session, self.feed = session, feed

    def __call__(self):
        self.session.run(None, self.feed)


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    suffix = ".onnx"
    precisions = ("fp32", "int8")
    export_format = "onnx"
    runner_runtime = "onnxruntime"
    install_hint = "pip install onnxruntime"

    @classmethod
    def availability(cls):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, f"onnxruntime is not installed ({cls.install_hint})"
        return True, ""

    def runtime_version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def converter_version(self) -> str:
        import torch

        version = f"ort{self.runtime_version()}-torch{torch.__version__}-opset{OPSET}"
        if self.precision == "int8":
            from edgenas.quant.onnx_int8 import RECIPE

            return f"{version}-{RECIPE}"
        # "ops1": single ops of LEGACY_EXACT_OPS kinds come from the legacy exporter (another file)
        return f"{version}-ops1"

    @property
    def providers(self) -> list[str]:
        return list(self.options.get("providers") or ["CPUExecutionProvider"])

    def export(self, module, input_shape, path):
        """The fp32 ``.onnx``; at int8, that file quantized (QDQ) on ``calibration_for(input_shape)``.

        At fp32 a single op of a kind whose legacy export is proven the same graph after onnxruntime's
        optimisation goes through the 25x faster legacy exporter (``onnx_exporters``). int8 keeps
        dynamo: the quantizer sees the graph before optimisation, where the two exporters differ.
        """
        from edgenas.profiling.onnx_exporters import LEGACY_EXACT_OPS, export_op_legacy

        path = Path(path)
        dynamo = self.options.get("exporter", "dynamo") == "dynamo"
        if self.precision != "int8":
            if dynamo and getattr(module, "edgenas_op", None) in LEGACY_EXACT_OPS:
                export_op_legacy(module, input_shape, path)
            else:
                export_onnx(module, input_shape, path, prefer_dynamo=dynamo)
            return path
        from edgenas.quant.onnx_int8 import quantize

        fp32 = path.with_name(path.name + ".fp32.onnx")
        try:
            export_onnx(module, input_shape, fp32, prefer_dynamo=dynamo)
            quantize(fp32, path, self.calibration_for(input_shape))
        finally:
            fp32.unlink(missing_ok=True)
        return path

    def session(self, path):
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            raise BackendUnavailable(f"onnxruntime execution provider(s) {', '.join(missing)} not installed here; "
                                     f"available: {', '.join(available)}")
        return ort_session(path, self.threads, self.providers)

    def load(self, path, input_shape):
        sess = self.session(path)
        name = sess.get_inputs()[0].name  # float I/O at every precision: QDQ quantizes inside the graph
        return _OrtTimer(sess, {name: example_input(input_shape)})

    def describe(self):
        d = super().describe()
        d["options"]["providers"] = self.providers
        return d

    def ship(self, module, input_shape, path) -> ShippedArtifact:
        """``model.onnx`` through the full checker, simplified (option ``simplify``, default on); at int8
        that file quantized on ``calibration_for(input_shape)`` (the run's training images, at export)."""
        from edgenas.export.onnx import ship

        calibration = self.calibration_for(input_shape) if self.precision == "int8" else None
        return ship(module, input_shape, Path(path), simplified=self.options.get("simplify", True),
                    calibration=calibration)

    @classmethod
    def report_lines(cls, info):
        from edgenas.export.onnx import markdown_lines

        return markdown_lines(info)

    def outputs(self, artifact, x, batch):
        import numpy as np

        sess = self.session(artifact)
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])
