"""Every backend available here, on its real runtime: export, run, time, and agree with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgenas.errors import BackendUnavailable, InputError, MeasurementError
from edgenas.ops import OpSpec, build_op
from edgenas.profiling.base import backend_class, create_backend, list_backends
from edgenas.profiling.inputs import example_input
from edgenas.profiling.protocol import ProtocolSettings, measure
from edgenas.profiling.runner import nchw, prepare_op
from edgenas.quant.precision import PRECISIONS
from edgenas.profiling.tensorrt_backend import parse_trtexec_output
from edgenas.quant.precision import PRECISIONS

CPU_BACKENDS = ["torch-cpu", "onnxruntime", "tflite"]
GPU_BACKENDS = ["cuda", "cuda-eager", "tensorrt"]
SPECS = [
    OpSpec.make("sep_conv_3x3", (14, 14, 16), (7, 7, 16), stride=2),
    OpSpec.make("expanded_conv", (14, 14, 16), (14, 14, 16), expand=3, kernel=5, stride=1, idskip=1),
    OpSpec.make("Logits", (7, 7, 32), (1, 1, 10)),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


def test_registry_has_every_backend():
    assert set(CPU_BACKENDS + GPU_BACKENDS) <= set(list_backends())


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backends_are_available_here(name):
    ok, why = backend_class(name).availability()
    assert ok, why


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_backend_times_real_ops(name, cache):
    be = create_backend(name, threads=1)
    timers = {s.key: prepare_op(be, s, 2, cache) for s in SPECS}
    rep = measure(timers, ProtocolSettings.quick(), reference=prepare_op(be, SPECS[0], 2, cache))
    for s in SPECS:
        st = rep.stats[s.key]
        assert 0 < st.p10_ms <= st.median_ms <= st.p90_ms
        assert st.n >= ProtocolSettings.quick().min_rounds and st.ref_ratio > 0
    assert be.runtime_version()


def test_onnx_artifact_matches_pytorch(cache):
    import onnxruntime as ort

    be = create_backend("onnxruntime")
    for spec in SPECS:
        module = build_op(spec).eval()
        path = be.export(module, nchw(spec, 2), cache / f"{spec.op}.onnx")
        x = example_input(nchw(spec, 2))
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        want = module(torch.from_numpy(x)).detach().numpy()
        assert np.abs(got - want).max() < 1e-4


def test_tflite_artifact_is_nhwc_and_matches_pytorch(cache):
    from edgenas.profiling.tflite import make_interpreter

    be = create_backend("tflite")
    spec = SPECS[1]
    module = build_op(spec).eval()
    path = be.export(module, nchw(spec, 1), cache / "mb.tflite")
    it = make_interpreter(path, 1)
    inp = it.get_input_details()[0]
    assert tuple(inp["shape"]) == (1, 14, 14, 16)  # NHWC: no boundary transposes
    x = example_input(nchw(spec, 1))
    it.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"]).transpose(0, 3, 1, 2)
    want = module(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("name", list_backends())
def test_backend_declares_what_generic_code_asks_of_it(name, cache):
    """Export, parity, the latency gate and bundles ask the backend: what it declares must hold together."""
    from edgenas.profiling.bundle import device_runner

    cls = backend_class(name)
    be = cls(threads=1)
    assert be.layout in ("nchw", "nhwc") and set(be.precisions) <= set(PRECISIONS)
    assert be.runtime_input_shape((2, 3, 5, 7)) == ([2, 5, 7, 3] if be.layout == "nhwc" else [2, 3, 5, 7])
    if cls.export_format or cls.runner_runtime:
        assert cls.suffix, "a shipped or bundled artifact is a file"
    if not cls.availability()[0]:
        return
    if cls.runner_runtime:  # the standalone runner really loads that runtime here
        assert device_runner().find_runtime(cls.runner_runtime)[1]
    if cls.export_format:  # the parity run takes and returns NCHW, whatever the artifact's layout
        spec = SPECS[1]
        module = build_op(spec).eval()
        x = np.concatenate([example_input(nchw(spec, 1), seed=i) for i in range(2)])
        got = be.outputs(be.artifact(module, nchw(spec, 1), cache, f"contract|{spec.key}"), x, 1)
        assert np.abs(got - module(torch.from_numpy(x)).detach().numpy()).max() < 1e-4


def test_generic_code_names_no_backend():
    """Export, parity, the gate, bundles and whole-network timing ask backends; they never compare names."""
    from pathlib import Path

    import edgenas

    root = Path(edgenas.__file__).parent
    generic = ["export/pipeline.py", "export/gate.py", "export/parity.py", "export/deployability.py",
               "profiling/bundle.py", "profiling/networks.py", "profiling/runner.py", "profiling/protocol.py"]
    for rel in generic:
        text = (root / rel).read_text()
        named = [n for n in list_backends() if f'"{n}"' in text or f"'{n}'" in text]
        assert not named, f"{rel} names backend(s) {named}"


def test_artifacts_are_cached_by_op_key(cache):
    be = create_backend("onnxruntime")
    prepare_op(be, SPECS[0], 1, cache)
    files = sorted((cache / "onnxruntime").glob("*.onnx"))
    prepare_op(be, SPECS[0], 1, cache)
    assert sorted((cache / "onnxruntime").glob("*.onnx")) == files


def test_onnxruntime_unknown_provider_is_a_clear_error(cache):
    be = create_backend("onnxruntime", providers=["NoSuchExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="NoSuchExecutionProvider"):
        prepare_op(be, SPECS[0], 1, cache)


def test_bad_backend_arguments():
    with pytest.raises(InputError):
        create_backend("no-such-backend")
    with pytest.raises(InputError):
        create_backend("onnxruntime", threads=0)
    with pytest.raises(InputError):
        create_backend("tflite", precision="int3")


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_backends_refuse_cleanly_without_a_gpu(name):
    ok, why = backend_class(name).availability()
    if ok:
        pytest.skip("a GPU is present: covered by test_gpu_backend_times_ops")
    with pytest.raises(BackendUnavailable, match=name):
        create_backend(name)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_backend_times_ops(name, cache):
    ok, why = backend_class(name).availability()
    if not ok:
        pytest.skip(f"{name}: {why}")
    be = create_backend(name, precision="fp32")
    timers = {s.key: prepare_op(be, s, 1, cache) for s in SPECS}
    rep = measure(timers, ProtocolSettings.quick())
    assert all(st.median_ms > 0 for st in rep.stats.values())


TRTEXEC_OUTPUT = """\
[11/20/2026-09:12:01] [I] === Performance summary ===
[11/20/2026-09:12:01] [I] Throughput: 7342.18 qps
[11/20/2026-09:12:01] [I] Latency: min = 0.127441 ms, max = 0.351074 ms, mean = 0.131902 ms, median = 0.130859 ms, percentile(90%) = 0.133789 ms, percentile(95%) = 0.135254 ms, percentile(99%) = 0.148438 ms
[11/20/2026-09:12:01] [I] Enqueue Time: min = 0.00195312 ms, max = 0.0605469 ms, mean = 0.00674421 ms, median = 0.00683594 ms, percentile(90%) = 0.00732422 ms, percentile(95%) = 0.0078125 ms, percentile(99%) = 0.0117188 ms
[11/20/2026-09:12:01] [I] H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[11/20/2026-09:12:01] [I] GPU Compute Time: min = 0.0842285 ms, max = 0.204102 ms, mean = 0.0869146 ms, median = 0.0864258 ms, percentile(90%) = 0.0883789 ms, percentile(95%) = 0.0891113 ms, percentile(99%) = 0.0974121 ms
[11/20/2026-09:12:01] [I] D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[11/20/2026-09:12:01] [I] Total Host Walltime: 3.00014 s
"""


def test_trtexec_summary_parser():
    out = parse_trtexec_output(TRTEXEC_OUTPUT)
    assert out["gpu_compute_time"]["median"] == pytest.approx(0.0864258)
    assert out["gpu_compute_time"]["p90"] == pytest.approx(0.0883789)
    assert out["latency"]["p99"] == pytest.approx(0.148438)
    assert out["throughput_qps"] == pytest.approx(7342.18)
    assert out["h2d_latency"]["mean"] == 0


def test_trtexec_parser_handles_wrapped_lines_and_failures():
    wrapped = ("GPU Compute Time: min = 20.0 ms, max = 28.0 ms, mean = 23.4 ms,\n"
               "      median = 23.1 ms, percentile(99%) = 27.8 ms\n")
    assert parse_trtexec_output(wrapped)["gpu_compute_time"]["median"] == 23.1
    with pytest.raises(MeasurementError, match="GPU Compute Time"):
        parse_trtexec_output("&&&& FAILED TensorRT.trtexec")
