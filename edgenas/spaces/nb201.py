"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

One searched cell of 4 nodes and 6 edges, each edge one of ``none, skip_connect, nor_conv_1x1,
nor_conv_3x3, avg_pool_3x3`` (nor_conv = ReLU-Conv-BN), repeated N=5 times per stage in a macro
skeleton: 3x3 conv stem (C=16), stage 1 (C, 32x32), a residual reduction block, stage 2 (2C, 16x16),
another, stage 3 (4C, 8x8), then BN-ReLU, global pooling and a linear classifier. 15,625 cells.

Architectures are read and written as NAS-Bench-201 ``arch_str`` (``|op~0|+|op~0|op~1|+|...|``), as a
bare string or in an edgenas genotype file.

``none`` edges after export: **pruned**. A built network instantiates only the *live* edges of its cell
(on a path from the cell input to its output through non-``none`` edges, see
``edgenas.spaces.nb201_arch``); ``none`` edges and the dead edges they isolate are not in the graph, a
node with no live input is not computed, and a cell disconnected from its input outputs zeros. It
computes the same function as the NAS-Bench-201 reference code (whose dead branches only add
``x * 0`` terms). ``op_specs`` lists exactly the ops the exported graph runs, so the op-table latency
and the whole-network fit (``pruning="path"``) describe the same graph. Networks exported by other
code (e.g. HW-NAS-Bench-360's) may keep the ``x * 0`` branches; ``edgenas tables fit`` detects that
from measurements (``pruning="output"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgenas.errors import GenotypeError, SpaceError
from edgenas.ops.darts_ops import darts_op
from edgenas.ops.nb201_ops import Nb201Head, ResNetBasicBlock
from edgenas.ops.registry import build_op
from edgenas.ops.spec import OpSpec
from edgenas.spaces.base import ChoicePoint, SearchSpace, register_space, require
from edgenas.spaces.mixed import MixedOp, Supernet
from edgenas.spaces.nb201_arch import EDGES, NB201_OPS, Nb201Arch, looks_like_arch_str, parse_arch_str


@dataclass(frozen=True)
class Nb201Config:
    channels: int = 16  # C
    cells_per_stage: int = 5  # N
    input_size: int = 32
    in_channels: int = 3
    num_classes: int = 10


def _edge_op(name: str, c: int, affine: bool = True) -> nn.Module:
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return build_op(OpSpec.make(name, (1, 1, c), (1, 1, c), stride=1), affine=affine)
    return darts_op(name, c, 1, affine)


@register_space
class Nb201Space(SearchSpace):
    name = "nb201"
    config_cls = Nb201Config
    default_preset = "cifar10"
    arch_cls = Nb201Arch
    zero_op = "none"
    skip_op = "skip_connect"
    presets = {
        "cifar10": dict(channels=16, cells_per_stage=5, input_size=32, in_channels=3, num_classes=10),
        "cifar100": dict(channels=16, cells_per_stage=5, input_size=32, in_channels=3, num_classes=100),
        "imagenet16": dict(channels=16, cells_per_stage=5, input_size=16, in_channels=3, num_classes=120),
        "small": dict(channels=16, cells_per_stage=1, input_size=28, in_channels=1, num_classes=10),
    }
    preset_help = {
        "cifar10": "C=16, N=5, 32x32x3, 10 classes: the NAS-Bench-201 network (what nn-Meter measured)",
        "cifar100": "C=16, N=5, 32x32x3, 100 classes (HW-NAS-Bench-360's cifar100 task)",
        "imagenet16": "C=16, N=5, 16x16x3, 120 classes (NAS-Bench-201's ImageNet16-120)",
        "small": "C=16, N=1, 28x28x1, 10 classes (Fashion-MNIST sized; seconds on a CPU)",
    }

    def validate_config(self):
        c = self.config
        self.require_positive("channels", "cells_per_stage", "input_size", "in_channels", "num_classes")
        if c.input_size % 4:
            raise SpaceError(f"nb201 config: input_size must be a multiple of 4 (two 2x reductions), got {c.input_size}")

    # ---- structure ---------------------------------------------------------------
    def _stages(self) -> list[tuple[int, int]]:
        """(channels, spatial size) of the 3 stages."""
        c, s = self.config.channels, self.config.input_size
        out = []
        for k in range(3):
            out.append((c * 2 ** k, s))
            s = (s + 1) // 2
        return out

    def _edge_spec(self, op: str, c: int, s: int) -> OpSpec:
        return OpSpec.make(op, (s, s, c), (s, s, c), stride=1)

    def fixed_specs(self) -> list[OpSpec]:
        cfg = self.config
        stages = self._stages()
        s0 = cfg.input_size
        specs = [OpSpec.make("nb201_stem", (s0, s0, cfg.in_channels), (s0, s0, cfg.channels), kernel=3)]
        for (c_in, s_in), (c_out, s_out) in zip(stages, stages[1:]):
            specs.append(OpSpec.make("nb201_resblock", (s_in, s_in, c_in), (s_out, s_out, c_out)))
        c_last, s_last = stages[-1]
        specs.append(OpSpec.make("nb201_head", (s_last, s_last, c_last), (1, 1, cfg.num_classes)))
        return specs

    def op_specs(self, arch: Nb201Arch) -> list[OpSpec]:
        """Every op the built (exported) network runs: live edges only, in every cell."""
        arch = self.parse_arch(arch)
        specs = list(self.fixed_specs())
        live = arch.live_edges()
        for c, s in self._stages():
            for _ in range(self.config.cells_per_stage):
                specs += [self._edge_spec(op, c, s) for op, on in zip(arch.ops, live) if on]
        return specs

    def choice_points(self) -> list[ChoicePoint]:
        stages = self._stages()
        n = self.config.cells_per_stage
        points = []
        for k, (j, i) in enumerate(EDGES):
            specs = tuple(tuple(self._edge_spec(op, c, s) for c, s in stages for _ in range(n)) for op in NB201_OPS)
            points.append(ChoicePoint(f"cell/{j}->{i}", "cell", k, NB201_OPS, specs))
        return points

    # ---- genotypes ---------------------------------------------------------------
    def sample(self, rng) -> Nb201Arch:
        return Nb201Arch(tuple(rng.choice(NB201_OPS) for _ in EDGES))

    def parse_arch(self, data) -> Nb201Arch:
        if isinstance(data, Nb201Arch):
            return data
        if isinstance(data, str):
            require(looks_like_arch_str(data), f"nb201 arch must be an arch_str '|op~0|+|op~0|op~1|+|...|', got {data[:60]!r}")
            return parse_arch_str(data)
        if isinstance(data, dict) and "arch_str" in data:
            return parse_arch_str(data["arch_str"])
        if isinstance(data, (list, tuple)):
            return Nb201Arch(tuple(data))
        raise GenotypeError(f"nb201 arch must be an arch_str or a list of 6 ops, got {type(data).__name__}")

    @classmethod
    def owns_arch(cls, data) -> bool:
        return isinstance(data, dict) and "arch_str" in data

    @classmethod
    def arch_from_text(cls, text: str):
        return text if looks_like_arch_str(text) else None

    def arch_to_json(self, arch: Nb201Arch) -> str:
        return arch.to_arch_str()

    def describe_arch(self, arch: Nb201Arch) -> list[str]:
        live = arch.live_edges()
        lines = []
        for i in (1, 2, 3):
            terms = [f"{op}(n{j})" + ("" if on else " [dead]") for (j, t), op, on in zip(EDGES, arch.ops, live) if t == i]
            lines.append(f"node {i} = " + " + ".join(terms))
        return lines

    def arch_weights(self, arch: Nb201Arch) -> dict:
        w = torch.zeros(len(EDGES), len(NB201_OPS))
        for k, op in enumerate(arch.ops):
            w[k, NB201_OPS.index(op)] = 1.0
        return {"cell": w}

    def derive(self, weights: dict) -> Nb201Arch:
        w = weights["cell"].detach().float().cpu()
        return Nb201Arch(tuple(NB201_OPS[int(k)] for k in w.argmax(dim=-1)))

    def decisions(self) -> list[int]:
        return [len(NB201_OPS)] * len(EDGES)

    def arch_from_decisions(self, choices: list[int]) -> Nb201Arch:
        return Nb201Arch(tuple(NB201_OPS[k] for k in choices))

    def decisions_of(self, arch: Nb201Arch) -> list[int]:
        return [NB201_OPS.index(op) for op in arch.ops]

    # ---- networks ----------------------------------------------------------------
    def build(self, arch: Nb201Arch, **_) -> "Nb201Network":
        return Nb201Network(self, self.parse_arch(arch))

    def supernet(self, **_) -> "Nb201Supernet":
        return Nb201Supernet(self)


class Nb201Cell(nn.Module):
    """A derived cell: only live edges are built (see the module docstring)."""

    def __init__(self, arch: Nb201Arch, c: int):
        super().__init__()
        live = arch.live_edges()
        self.edges = [(k, j, i) for k, ((j, i), on) in enumerate(zip(EDGES, live)) if on]
        self.ops = nn.ModuleDict({str(k): _edge_op(arch.ops[k], c) for k, _, _ in self.edges})

    def forward(self, x):
        if not self.edges:
            return torch.zeros_like(x)
        nodes = {0: x}
        for k, j, i in self.edges:  # EDGES order is topological
            y = self.ops[str(k)](nodes[j])
            nodes[i] = y if i not in nodes else nodes[i] + y
        return nodes[3]


class _Skeleton(nn.Module):
    def __init__(self, space: Nb201Space, make_cell):
        super().__init__()
        cfg = space.config
        stages = space._stages()
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cfg.channels))
        layers = []
        for k, (c, _) in enumerate(stages):
            if k:
                layers.append(ResNetBasicBlock(stages[k - 1][0], c))
            layers += [make_cell(c) for _ in range(cfg.cells_per_stage)]
        self.layers = nn.ModuleList(layers)
        self.head = Nb201Head(stages[-1][0], cfg.num_classes)


class Nb201Network(_Skeleton):
    """The standalone network of one NAS-Bench-201 cell (for retraining and export)."""

    def __init__(self, space: Nb201Space, arch: Nb201Arch):
        super().__init__(space, lambda c: Nb201Cell(arch, c))
        self.arch = arch

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class _SearchCell(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, lambda o, c=c: _edge_op(o, c), Nb201Space.zero_op) for _ in EDGES)

    def forward(self, x, weights, active=None):
        nodes = [x]
        for i in (1, 2, 3):
            acc = None
            for k, (j, t) in enumerate(EDGES):
                if t == i:
                    y = self.edges[k](nodes[j], weights[k], None if active is None else active[k])
                    acc = y if acc is None else acc + y
            nodes.append(acc)
        return nodes[3]


class Nb201Supernet(_Skeleton, Supernet):
    """Every op on every edge; all 15 cells share one ``arch_params['cell']`` of shape [6, 5]."""

    def __init__(self, space: Nb201Space):
        super().__init__(space, _SearchCell)
        self.space = space
        self.init_arch_params({"cell": (len(EDGES), len(NB201_OPS))})

    def run(self, x, weights: dict, active: dict | None):
        x = self.stem(x)
        for layer in self.layers:
            if isinstance(layer, _SearchCell):
                x = layer(x, weights["cell"], None if active is None else active["cell"])
            else:
                x = layer(x)
        return self.head(x)
