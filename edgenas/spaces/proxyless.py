"""The ProxylessNAS MBConv chain space (Cai et al., ICLR 2019), mobile setting.

A chain of layers; each picks an MBConv (expand 3 or 6 x kernel 3, 5, 7) or, where the layer
keeps its shape (stride 1, same width), ``zero``, which drops the block and leaves the identity
skip. The default preset is the ProxylessNAS mobile backbone at 224x224, whose op keys are
exactly those of the published Pixel 1 table; small presets run in seconds on a CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from edgenas.errors import GenotypeError, SpaceError
from edgenas.ops.darts_ops import Logits, Zero
from edgenas.ops.mbconv import ElasticCandidate, ElasticMBConv, MBConv, conv_bn_act
from edgenas.ops.spec import OpSpec
from edgenas.spaces.base import ChoicePoint, SearchSpace, register_space, require
from edgenas.spaces.mixed import MixedOp, Supernet


@dataclass(frozen=True)
class ProxylessConfig:
    input_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    stem_channels: int = 32
    stem_stride: int = 2
    first_channels: int = 16
    first_kernels: tuple[int, ...] = (3, 5, 7)  # the first block is expand 1; its kernel is searched
    stages: tuple[tuple[int, int, int], ...] = ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2))
    last_channels: int = 320  # one searched layer (no zero) before the head
    head_channels: int = 1280
    expands: tuple[int, ...] = (3, 6)
    kernels: tuple[int, ...] = (3, 5, 7)
    dropout: float = 0.0

    def __post_init__(self):
        from edgenas.schemas import check_space_config

        check_space_config(self, "proxyless")


@dataclass(frozen=True)
class _Layer:
    index: int
    c_in: int
    c_out: int
    stride: int
    hw_in: int
    hw_out: int
    options: tuple[str, ...]

    @property
    def can_skip(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True)
class ProxylessArch:
    ops: tuple[str, ...]  # one op name per layer, e.g. '5x5_MBConv6' or 'zero'


_OP_RE = re.compile(r"^(\d+)x\1_MBConv(\d+)$")


def parse_mbconv(name: str) -> tuple[int, int]:
    """'5x5_MBConv6' -> (kernel 5, expand 6)."""
    m = _OP_RE.match(name)
    if not m:
        raise GenotypeError(f"unknown op {name!r}: expected 'KxK_MBConvE' (e.g. 5x5_MBConv6) or 'zero'")
    return int(m.group(1)), int(m.group(2))


def mbconv_name(kernel: int, expand: int) -> str:
    return f"{kernel}x{kernel}_MBConv{expand}"


def _out(hw: int, stride: int) -> int:
    return (hw + stride - 1) // stride


@register_space
class ProxylessSpace(SearchSpace):
    name = "proxyless"
    config_cls = ProxylessConfig
    default_preset = "mobile"
    arch_cls = ProxylessArch
    zero_op = "zero"
    _small = dict(stem_channels=16, stem_stride=1, first_channels=8,
                  stages=((16, 2, 2), (24, 2, 2), (32, 2, 1), (48, 2, 2)),
                  last_channels=64, head_channels=256)
    presets = {
        "mobile": dict(),
        "small": dict(_small, input_size=28, in_channels=1, num_classes=10),
        "small32": dict(_small, input_size=32, in_channels=3, num_classes=10),
    }
    preset_help = {
        "mobile": "ProxylessNAS mobile backbone, 224x224x3, 1000 classes (op keys = the Pixel 1 table)",
        "small": "10 searched layers, widths 8-64, 28x28x1, 10 classes (Fashion-MNIST sized)",
        "small32": "as 'small' at 32x32x3 (CIFAR sized)",
    }

    def validate_config(self):
        c = self.config
        self.require_positive("input_size", "in_channels", "num_classes", "stem_channels", "stem_stride",
                              "first_channels", "last_channels", "head_channels")
        if not c.stages or any(len(s) != 3 or min(s) < 1 for s in c.stages):
            raise SpaceError("proxyless config: stages must be a list of [width, layers, stride], all >= 1")
        if not c.expands or not c.kernels or any(k % 2 == 0 for k in c.kernels + c.first_kernels):
            raise SpaceError("proxyless config: expands and kernels must be non-empty; kernels odd")

    # ---- structure -----------------------------------------------------------------
    def layers(self) -> list[_Layer]:
        c = self.config
        hw = _out(c.input_size, c.stem_stride)
        mb = tuple(mbconv_name(k, e) for e in c.expands for k in c.kernels)
        out = [_Layer(0, c.stem_channels, c.first_channels, 1, hw, hw,
                      tuple(mbconv_name(k, 1) for k in c.first_kernels))]
        c_in = c.first_channels
        for width, n, stride in c.stages:
            for j in range(n):
                s = stride if j == 0 else 1
                layer = _Layer(len(out), c_in, width, s, hw, _out(hw, s), mb)
                if layer.can_skip:
                    layer = _Layer(layer.index, c_in, width, s, hw, hw, mb + ("zero",))
                out.append(layer)
                c_in, hw = width, _out(hw, s)
        out.append(_Layer(len(out), c_in, c.last_channels, 1, hw, hw, mb))
        return out

    def _layer_spec(self, layer: _Layer, op: str) -> OpSpec:
        shape_in, shape_out = (layer.hw_in, layer.hw_in, layer.c_in), (layer.hw_out, layer.hw_out, layer.c_out)
        if op == "zero":
            return OpSpec.make("zero", shape_in, shape_out)
        kernel, expand = parse_mbconv(op)
        return OpSpec.make("expanded_conv", shape_in, shape_out, expand=expand, kernel=kernel,
                           stride=layer.stride, idskip=int(layer.can_skip))

    def _head_specs(self, hw: int) -> list[OpSpec]:
        c = self.config
        return [
            OpSpec.make("Conv_1", (hw, hw, c.last_channels), (hw, hw, c.head_channels)),
            OpSpec.make("Logits", (hw, hw, c.head_channels), (1, 1, c.num_classes)),
        ]

    def _stem_spec(self) -> OpSpec:
        c = self.config
        hw = _out(c.input_size, c.stem_stride)
        return OpSpec.make("Conv", (c.input_size, c.input_size, c.in_channels), (hw, hw, c.stem_channels))

    # ---- latency-facing ------------------------------------------------------------
    def op_specs(self, arch: ProxylessArch) -> list[OpSpec]:
        layers = self.layers()
        specs = [self._stem_spec()] + [self._layer_spec(l, op) for l, op in zip(layers, arch.ops)]
        return specs + self._head_specs(layers[-1].hw_out)

    def fixed_specs(self) -> list[OpSpec]:
        return [self._stem_spec()] + self._head_specs(self.layers()[-1].hw_out)

    def choice_points(self) -> list[ChoicePoint]:
        return [
            ChoicePoint(f"layer{l.index}", f"layer{l.index}", 0, l.options,
                        tuple((self._layer_spec(l, op),) for op in l.options))
            for l in self.layers()
        ]

    # ---- genotypes -----------------------------------------------------------------
    def sample(self, rng) -> ProxylessArch:
        return ProxylessArch(tuple(rng.choice(l.options) for l in self.layers()))

    def parse_arch(self, data) -> ProxylessArch:
        if isinstance(data, ProxylessArch):
            data = self.arch_to_json(data)
        if isinstance(data, dict):
            require("layers" in data, "proxyless arch: expected an object with a 'layers' list")
            data = data["layers"]
        require(isinstance(data, (list, tuple)), "proxyless arch: 'layers' must be a list of op names")
        layers = self.layers()
        require(len(data) == len(layers),
                f"proxyless arch has {len(data)} layers; this config has {len(layers)} searched layers")
        for layer, op in zip(layers, data):
            require(isinstance(op, str), f"proxyless arch: layer {layer.index} op must be a string, got {op!r}")
            if op != "zero":
                parse_mbconv(op)
            require(op in layer.options,
                    f"proxyless arch: layer {layer.index} ({layer.c_in}->{layer.c_out}, stride {layer.stride}) "
                    f"cannot be {op!r}; options: {', '.join(layer.options)}")
        return ProxylessArch(tuple(data))

    @classmethod
    def owns_arch(cls, data) -> bool:
        return isinstance(data, dict) and "layers" in data

    def arch_to_json(self, arch: ProxylessArch) -> dict:
        return {"layers": list(arch.ops)}

    def describe_arch(self, arch: ProxylessArch) -> list[str]:
        return [f"layer {l.index:2d} {l.hw_in}x{l.hw_in}x{l.c_in} -> {l.hw_out}x{l.hw_out}x{l.c_out}"
                f" s{l.stride}: {op}" for l, op in zip(self.layers(), arch.ops)]

    def arch_weights(self, arch: ProxylessArch) -> dict:
        out = {}
        for layer, op in zip(self.layers(), arch.ops):
            w = torch.zeros(1, len(layer.options))
            w[0, layer.options.index(op)] = 1.0
            out[f"layer{layer.index}"] = w
        return out

    def derive(self, weights: dict) -> ProxylessArch:
        return ProxylessArch(tuple(
            l.options[int(weights[f"layer{l.index}"].detach().reshape(-1).argmax())] for l in self.layers()
        ))

    def decisions(self) -> list[int]:
        return [len(l.options) for l in self.layers()]

    def arch_from_decisions(self, choices: list[int]) -> ProxylessArch:
        return ProxylessArch(tuple(l.options[c] for l, c in zip(self.layers(), choices)))

    def decisions_of(self, arch: ProxylessArch) -> list[int]:
        return [l.options.index(op) for l, op in zip(self.layers(), arch.ops)]

    # ---- networks --------------------------------------------------------------------
    def build(self, arch: ProxylessArch, **_) -> "ProxylessNetwork":
        return ProxylessNetwork(self, arch)

    def supernet(self, shared_weights: bool = True, **_) -> "ProxylessSupernet":
        return ProxylessSupernet(self, shared_weights=shared_weights)


class _Trunk(nn.Module):
    def __init__(self, space: ProxylessSpace):
        super().__init__()
        c = space.config
        self.first_conv = conv_bn_act(c.in_channels, c.stem_channels, 3, c.stem_stride)
        self.feature_mix = conv_bn_act(c.last_channels, c.head_channels, 1, 1)
        self.classifier = Logits(c.head_channels, c.num_classes, c.dropout)


class ProxylessNetwork(_Trunk):
    """The standalone network of a ProxylessNAS genotype; 'zero' layers are dropped."""

    def __init__(self, space: ProxylessSpace, arch: ProxylessArch):
        super().__init__(space)
        blocks = []
        for layer, op in zip(space.layers(), arch.ops):
            if op == "zero":
                continue
            kernel, expand = parse_mbconv(op)
            blocks.append(MBConv(layer.c_in, layer.c_out, kernel, layer.stride, expand))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.classifier(self.feature_mix(self.blocks(self.first_conv(x))))


class ProxylessSupernet(_Trunk, Supernet):
    """Every candidate MBConv per layer; the identity skip sits outside the mixed op.

    ``shared_weights=True`` (default) holds a layer's candidates in one ElasticMBConv (shared
    superkernel, per-candidate BatchNorm), which trains in the few hundred steps a CPU budget
    allows; ``False`` gives every candidate its own weights, as in the ProxylessNAS paper.
    """

    def __init__(self, space: ProxylessSpace, shared_weights: bool = True):
        super().__init__(space)
        self.space = space
        self.layers_meta = space.layers()
        self.mixed = nn.ModuleList()
        self.shared = nn.ModuleList()
        for layer in self.layers_meta:
            mb = [parse_mbconv(op) for op in layer.options if op != "zero"]
            elastic = None
            if shared_weights:
                elastic = ElasticMBConv(layer.c_in, layer.c_out, layer.stride, sorted({e for _, e in mb}),
                                        sorted({k for k, _ in mb}))
                self.shared.append(elastic)

            def build(op, layer=layer, elastic=elastic):
                if op == "zero":
                    return Zero(1)
                kernel, expand = parse_mbconv(op)
                if elastic is not None:
                    return ElasticCandidate(elastic, expand, kernel)
                return MBConv(layer.c_in, layer.c_out, kernel, layer.stride, expand, residual=False)

            self.mixed.append(MixedOp(layer.options, build, ProxylessSpace.zero_op))
        self.init_arch_params({f"layer{l.index}": (1, len(l.options)) for l in self.layers_meta})

    def run(self, x, weights: dict, active: dict | None):
        x = self.first_conv(x)
        for layer, mixed in zip(self.layers_meta, self.mixed):
            name = f"layer{layer.index}"
            y = mixed(x, weights[name][0], None if active is None else active[name][0])
            x = x + y if layer.can_skip else y
        return self.classifier(self.feature_mix(x))
