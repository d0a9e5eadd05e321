"""``cuda`` and ``cuda-eager``: PyTorch on an NVIDIA GPU, timed with CUDA events.

Eager per-op time on a GPU is mostly kernel-launch overhead (measured on an H100:
sep_conv_3x3 C=16 32x32 batch 1 took 0.17 ms eager vs 0.027 ms replayed in a CUDA graph), so
the two execution modes are two backends and a table always says which one it describes:
- ``cuda``: the module is captured once in a CUDA graph and each call replays it;
- ``cuda-eager``: each call launches the module's kernels from Python.
Each call is bracketed by its own pair of CUDA events, so samples are per call, on the GPU clock.
"""

from __future__ import annotations

import numpy as np

from edgenas.errors import MeasurementError
from edgenas.profiling.base import Backend, register_backend
from edgenas.profiling.inputs import example_input
from edgenas.profiling.protocol import Timer


def cuda_available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA device visible to PyTorch (needs an NVIDIA GPU and a CUDA build of torch)"
    return True, ""


class CudaEventTimer(Timer):
    """Base for GPU timers: ``launch()`` enqueues one inference; events time each one."""

    def launch(self):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self):
        import torch

        self.launch()
        torch.cuda.synchronize()

    def time_block(self, calls: int) -> np.ndarray:
        import torch

        starts = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
        torch.cuda.synchronize()
        for s, e in zip(starts, ends):
            s.record()
            self.launch()
            e.record()
        torch.cuda.synchronize()
        return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)]) * 1e-3


class _EagerTimer(CudaEventTimer):
    def __init__(self, module, x):
        self.module, self.x = module, x

    def launch(self):
        import torch

        with torch.inference_mode():
            self.module(self.x)


class _GraphTimer(CudaEventTimer):
    def __init__(self, module, x):
        import torch

        self.x = x
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):  # warm up on a side stream before capture, as the CUDA graph docs require
                module(x)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.out = module(x)

    def launch(self):
        self.graph.replay()


class _CudaBase(Backend):
    precisions = ("fp32", "fp16")
    uses_threads = False
    install_hint = "a CUDA build of PyTorch on a machine with an NVIDIA GPU"

    @classmethod
    def availability(cls):
        return cuda_available()

    def runtime_version(self) -> str:
        import torch

        return f"torch{torch.__version__}-cuda{torch.version.cuda}"

    def device_name(self) -> str:
        import torch

        return torch.cuda.get_device_name(0)

    def export(self, module, input_shape, path):
        raise NotImplementedError("the cuda backends run the module directly; there is no artifact")

    def _place(self, module, input_shape):
        import torch

        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        module = module.eval().to("cuda", dtype=dtype)
        x = torch.from_numpy(example_input(input_shape)).to("cuda", dtype=dtype)
        return module, x

    def describe(self):
        d = super().describe()
        d["gpu"] = self.device_name()
        return d


@register_backend
class CudaGraphBackend(_CudaBase):
    name = "cuda"

    def load(self, module, input_shape):
        module, x = self._place(module, input_shape)
        try:
            return _GraphTimer(module, x)
        except RuntimeError as e:
            raise MeasurementError(f"CUDA graph capture failed ({e}); use --backend cuda-eager") from None


@register_backend
class CudaEagerBackend(_CudaBase):
    name = "cuda-eager"

    def load(self, module, input_shape):
        return _EagerTimer(*self._place(module, input_shape))
