"""An edgenas plug-in: a backend, a search space and a strategy, found through entry points.

Each is an ordinary subclass of the edgenas base class; ``pyproject.toml`` names it under
``edgenas.backends``, ``edgenas.spaces`` or ``edgenas.strategies``. Nothing in edgenas is edited.
"""

from edgenas.profiling.torch_cpu import TorchCPUBackend
from edgenas.search.random_search import RandomStrategy
from edgenas.spaces.proxyless import ProxylessSpace


class EagerBackend(TorchCPUBackend):
    """Eager PyTorch under its own name (a real backend would export and time its own artifact)."""

    name = "torch-eager"


class TinyProxylessSpace(ProxylessSpace):
    """ProxylessNAS blocks at 8x8 input: three searched layers."""

    name = "tiny-proxyless"
    default_preset = "tiny"
    presets = {"tiny": dict(stem_channels=4, stem_stride=1, first_channels=4, stages=((8, 1, 2), (8, 1, 1)),
                            last_channels=8, head_channels=16, input_size=8, in_channels=1, num_classes=10,
                            expands=(3,), kernels=(3,))}
    preset_help = {"tiny": "3 searched layers at 8x8x1"}


class RandomHalfStrategy(RandomStrategy):
    """Random search with half the default samples."""

    name = "random-half"


class ClashingStrategy(RandomStrategy):
    name = "random"  # taken by the built-in: must be refused, not replace it
