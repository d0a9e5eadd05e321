"""``torch-cpu``: eager PyTorch on the host CPU (no export; the module is the artifact)."""

from __future__ import annotations

import torch

from edgenas.profiling.base import Backend, register_backend
from edgenas.profiling.inputs import example_input
from edgenas.profiling.protocol import Timer


class _TorchTimer(Timer):
    def __init__(self, module, x):
        self.module, self.x = module, x

    def __call__(self):
        with torch.inference_mode():
            self.module(self.x)


@register_backend
class TorchCPUBackend(Backend):
    name = "torch-cpu"

    @classmethod
    def availability(cls):
        return True, ""

    def runtime_version(self) -> str:
        return torch.__version__

    def export(self, module, input_shape, path):
        raise NotImplementedError("torch-cpu runs the module directly; there is no artifact")

    def load(self, module, input_shape):
        torch.set_num_threads(self.threads)
        return _TorchTimer(module.eval(), torch.from_numpy(example_input(input_shape)))
