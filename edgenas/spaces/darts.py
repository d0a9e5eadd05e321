"""The DARTS cell space (Liu et al., ICLR 2019): normal and reduction cells, 8 primitives.

Network layout follows the DARTS reference code: a 3x3 conv stem of ``stem_multiplier * C``
channels, ``layers`` cells with reductions at ``layers // 3`` and ``2 * layers // 3`` (channels
double there), global pooling and a linear classifier. Each cell has ``nodes`` intermediate
nodes; in the supernet every node sums mixed ops over all its predecessors, and a derived cell
keeps two (op, input) pairs per node.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass

import torch
from torch import nn

from edgenas.errors import GenotypeError, SpaceError
from edgenas.ops.darts_ops import PRIMITIVES, FactorizedReduce, Logits, ReLUConvBN, darts_op
from edgenas.ops.spec import OpSpec
from edgenas.spaces.base import ChoicePoint, SearchSpace, register_space, require
from edgenas.spaces.mixed import MixedOp, PartialChannelMixedOp, Supernet, is_naive


@dataclass(frozen=True)
class DartsConfig:
    channels: int = 16  # C: channels of the first cells
    layers: int = 8  # number of cells
    nodes: int = 4  # intermediate nodes per cell
    stem_multiplier: int = 3
    input_size: int = 32
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self):
        from edgenas.schemas import check_space_config

        check_space_config(self, "darts")


@dataclass(frozen=True)
class DartsArch:
    """A derived DARTS genotype: two (op, input) pairs per node, inputs 0/1 are the cell inputs."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def to_text(self) -> str:
        """The DARTS paper's ``Genotype(...)`` form."""
        def pairs(ps):
            return "[" + ", ".join(f"('{o}', {i})" for o, i in ps) + "]"

        return (f"Genotype(normal={pairs(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={pairs(self.reduce)}, reduce_concat={list(self.reduce_concat)})")


@dataclass(frozen=True)
class _CellPlan:
    index: int
    reduction: bool
    reduction_prev: bool
    c_pp: int  # channels of the input two cells back
    c_p: int  # channels of the previous cell's output
    c: int  # channels of every node inside the cell
    hw_pp: int  # spatial size of the input two cells back
    hw_p: int
    hw: int  # spatial size of the cell's nodes (output)


def _half(n: int) -> int:
    return (n + 1) // 2


@register_space
class DartsSpace(SearchSpace):
    name = "darts"
    config_cls = DartsConfig
    default_preset = "small"
    arch_cls = DartsArch
    zero_op = "none"
    skip_op = "skip_connect"
    text_preset = "cifar10"  # published DARTS cells come from the paper's CIFAR-10 setting
    presets = {
        "small": dict(channels=16, layers=5, input_size=28, in_channels=1, num_classes=10),
        "small32": dict(channels=16, layers=5, input_size=32, in_channels=3, num_classes=10),
        "search": dict(channels=16, layers=8, input_size=32, in_channels=3, num_classes=10),
        "cifar10": dict(channels=36, layers=20, input_size=32, in_channels=3, num_classes=10),
    }
    preset_help = {
        "small": "C=16, 5 cells, 28x28x1, 10 classes (Fashion-MNIST sized; runs in seconds on CPU)",
        "small32": "C=16, 5 cells, 32x32x3, 10 classes (CIFAR sized)",
        "search": "C=16, 8 cells, 32x32x3: the DARTS paper's search network",
        "cifar10": "C=36, 20 cells, 32x32x3: the DARTS paper's CIFAR-10 evaluation network",
    }

    def validate_config(self):
        c = self.config
        self.require_positive("channels", "layers", "nodes", "stem_multiplier", "input_size", "in_channels",
                              "num_classes")
        if c.channels % 2:
            raise SpaceError(f"darts config: channels must be even (factorized reduce halves them), got {c.channels}")

    # ---- structure -----------------------------------------------------------------
    @property
    def edges_per_cell(self) -> int:
        n = self.config.nodes
        return n * (n + 3) // 2  # sum over nodes i of (2 + i) predecessors

    def edge_index(self, node: int, inp: int) -> int:
        return sum(2 + k for k in range(node)) + inp

    def reduction_cells(self) -> list[int]:
        layers = self.config.layers
        return sorted({layers // 3, 2 * layers // 3})

    def _plan(self, arch: DartsArch | None = None) -> list[_CellPlan]:
        cfg = self.config
        nodes_out = {False: cfg.nodes, True: cfg.nodes}
        if arch is not None:
            nodes_out = {False: len(arch.normal_concat), True: len(arch.reduce_concat)}
        c_curr = cfg.stem_multiplier * cfg.channels
        c_pp, c_p, c = c_curr, c_curr, cfg.channels
        hw_pp = hw_p = cfg.input_size
        plans, reduction_prev, reductions = [], False, self.reduction_cells()
        for i in range(cfg.layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            hw = _half(hw_p) if reduction else hw_p
            plans.append(_CellPlan(i, reduction, reduction_prev, c_pp, c_p, c, hw_pp, hw_p, hw))
            c_pp, c_p = c_p, nodes_out[reduction] * c
            hw_pp, hw_p = hw_p, hw
            reduction_prev = reduction
        return plans

    def _stem_spec(self) -> OpSpec:
        cfg = self.config
        s = cfg.input_size
        return OpSpec.make("stem", (s, s, cfg.in_channels), (s, s, cfg.stem_multiplier * cfg.channels),
                           kernel=3, stride=1)

    def _preprocess_specs(self, p: _CellPlan) -> list[OpSpec]:
        if p.reduction_prev:
            pre0 = OpSpec.make("factorized_reduce", (p.hw_pp, p.hw_pp, p.c_pp), (p.hw_p, p.hw_p, p.c))
        else:
            pre0 = OpSpec.make("relu_conv_bn", (p.hw_pp, p.hw_pp, p.c_pp), (p.hw_p, p.hw_p, p.c))
        pre1 = OpSpec.make("relu_conv_bn", (p.hw_p, p.hw_p, p.c_p), (p.hw_p, p.hw_p, p.c))
        return [pre0, pre1]

    def _edge_spec(self, p: _CellPlan, op: str, inp: int) -> OpSpec:
        stride = 2 if p.reduction and inp < 2 else 1
        hw_in = p.hw_p if inp < 2 else p.hw
        return OpSpec.make(op, (hw_in, hw_in, p.c), (p.hw, p.hw, p.c), stride=stride)

    def _logits_spec(self, plans) -> OpSpec:
        last = plans[-1]
        # channels of the last cell's output are the next cell's c_p; recompute from the plan
        return OpSpec.make("Logits", (last.hw, last.hw, self._cell_out_channels(last)), (1, 1, self.config.num_classes))

    def _cell_out_channels(self, p: _CellPlan, arch: DartsArch | None = None) -> int:
        if arch is None:
            return self.config.nodes * p.c
        return len(arch.reduce_concat if p.reduction else arch.normal_concat) * p.c

    # ---- latency-facing ------------------------------------------------------------
    def op_specs(self, arch: DartsArch) -> list[OpSpec]:
        plans = self._plan(arch)
        specs = [self._stem_spec()]
        for p in plans:
            specs += self._preprocess_specs(p)
            pairs = arch.reduce if p.reduction else arch.normal
            specs += [self._edge_spec(p, op, inp) for op, inp in pairs]
        last = plans[-1]
        specs.append(OpSpec.make("Logits", (last.hw, last.hw, self._cell_out_channels(last, arch)),
                                 (1, 1, self.config.num_classes)))
        return specs

    def fixed_specs(self) -> list[OpSpec]:
        plans = self._plan()
        specs = [self._stem_spec()]
        for p in plans:
            specs += self._preprocess_specs(p)
        specs.append(self._logits_spec(plans))
        return specs

    def choice_points(self) -> list[ChoicePoint]:
        plans = self._plan()
        points = []
        for kind, reduction in (("normal", False), ("reduce", True)):
            cells = [p for p in plans if p.reduction == reduction]
            if not cells:
                continue
            for node in range(self.config.nodes):
                for inp in range(node + 2):
                    specs = tuple(tuple(self._edge_spec(p, op, inp) for p in cells) for op in PRIMITIVES)
                    points.append(ChoicePoint(f"{kind}/node{node}/in{inp}", kind, self.edge_index(node, inp),
                                              PRIMITIVES, specs))
        return points

    # ---- genotypes -----------------------------------------------------------------
    def sample(self, rng) -> DartsArch:
        ops = [p for p in PRIMITIVES if p != self.zero_op]

        def cell():
            pairs = []
            for node in range(self.config.nodes):
                for inp in sorted(rng.sample(range(node + 2), 2)):
                    pairs.append((rng.choice(ops), inp))
            return tuple(pairs)

        concat = tuple(range(2, 2 + self.config.nodes))
        return DartsArch(cell(), concat, cell(), concat)

    def parse_arch(self, data) -> DartsArch:
        if isinstance(data, DartsArch):
            data = self.arch_to_json(data)
        require(isinstance(data, dict), f"darts arch must be an object with normal/reduce cells, got {type(data).__name__}")
        n = self.config.nodes
        cells = {}
        for kind in ("normal", "reduce"):
            require(kind in data, f"darts arch: missing '{kind}' cell")
            pairs = data[kind]
            require(isinstance(pairs, (list, tuple)) and len(pairs) == 2 * n,
                    f"darts arch: '{kind}' needs {2 * n} (op, input) pairs (2 per node, {n} nodes), "
                    f"got {len(pairs) if isinstance(pairs, (list, tuple)) else pairs!r}")
            parsed = []
            for k, pair in enumerate(pairs):
                require(isinstance(pair, (list, tuple)) and len(pair) == 2,
                        f"darts arch: '{kind}' entry {k} must be [op, input], got {pair!r}")
                op, inp = pair
                require(op in PRIMITIVES, f"darts arch: unknown op {op!r} in '{kind}' entry {k}; "
                                          f"known: {', '.join(PRIMITIVES)}")
                node = k // 2
                require(isinstance(inp, int) and not isinstance(inp, bool) and 0 <= inp < node + 2,
                        f"darts arch: '{kind}' entry {k} (node {node}) takes input {inp!r}; "
                        f"node {node} can read inputs 0..{node + 1}")
                parsed.append((op, inp))
            concat = data.get(f"{kind}_concat", list(range(2, 2 + n)))
            require(isinstance(concat, (list, tuple)) and len(concat) > 0
                    and all(isinstance(i, int) and 2 <= i < 2 + n for i in concat)
                    and len(set(concat)) == len(concat),
                    f"darts arch: '{kind}_concat' must list distinct node indices in 2..{n + 1}, got {concat!r}")
            cells[kind] = (tuple(parsed), tuple(concat))
        return DartsArch(cells["normal"][0], cells["normal"][1], cells["reduce"][0], cells["reduce"][1])

    def arch_to_json(self, arch: DartsArch) -> dict:
        return {
            "normal": [[o, i] for o, i in arch.normal], "normal_concat": list(arch.normal_concat),
            "reduce": [[o, i] for o, i in arch.reduce], "reduce_concat": list(arch.reduce_concat),
        }

    def describe_arch(self, arch: DartsArch) -> list[str]:
        lines = []
        for kind, pairs in (("normal", arch.normal), ("reduce", arch.reduce)):
            for k in range(0, len(pairs), 2):
                node = k // 2 + 2
                a, b = pairs[k], pairs[k + 1]
                lines.append(f"{kind} node {node} = {a[0]}(n{a[1]}) + {b[0]}(n{b[1]})")
        return lines

    def arch_weights(self, arch: DartsArch) -> dict:
        out = {}
        for kind, pairs in (("normal", arch.normal), ("reduce", arch.reduce)):
            w = torch.zeros(self.edges_per_cell, len(PRIMITIVES))
            for k, (op, inp) in enumerate(pairs):
                w[self.edge_index(k // 2, inp), PRIMITIVES.index(op)] += 1.0
            out[kind] = w
        return out

    def derive(self, weights: dict) -> DartsArch:
        """DARTS' rule: per node keep the 2 strongest incoming edges, each with its best non-none op."""
        none = PRIMITIVES.index(self.zero_op)
        cells = {}
        for kind in ("normal", "reduce"):
            w = weights[kind].detach().float().cpu()
            pairs = []
            for node in range(self.config.nodes):
                cands = []
                for inp in range(node + 2):
                    row = w[self.edge_index(node, inp)].clone()
                    row[none] = float("-inf")
                    best = int(row.argmax())
                    cands.append((float(row[best]), inp, PRIMITIVES[best]))
                top = sorted(cands, key=lambda t: -t[0])[:2]
                pairs += [(op, inp) for _, inp, op in sorted(top, key=lambda t: t[1])]
            cells[kind] = tuple(pairs)
        concat = tuple(range(2, 2 + self.config.nodes))
        return DartsArch(cells["normal"], concat, cells["reduce"], concat)

    def derived_probs(self, param: str, probs: torch.Tensor) -> torch.Tensor:
        """What ``derive`` keeps: per node two of its incoming edges, each with its best non-'none' op.
        Each edge's op distribution is renormalised over non-'none' ops and weighted by
        2 * strength / sum of strengths of the node's edges (strength = the edge's largest non-'none'
        probability), capped at 1. A plain softmax sum counts all 14 edges, while a derived cell runs 8."""
        mask = torch.ones_like(probs)
        mask[:, PRIMITIVES.index(self.zero_op)] = 0
        q = probs * mask
        strength = q.max(dim=1).values
        op_dist = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
        keep = torch.zeros_like(strength)
        nodes = torch.tensor([node for node in range(self.config.nodes) for _ in range(node + 2)], device=probs.device)
        for node in range(int(nodes.max()) + 1):
            m = nodes == node
            keep = keep + torch.where(m, 2 * strength / strength[m].sum().clamp_min(1e-12), torch.zeros_like(strength))
        return op_dist * keep.clamp(max=1.0)[:, None]

    def skip_count(self, arch: DartsArch) -> int:
        """Skip connections of the normal cell: where DARTS collapses (DARTS+ counts those)."""
        return sum(1 for op, _ in arch.normal if op == self.skip_op)

    @classmethod
    def owns_arch(cls, data) -> bool:
        return isinstance(data, dict) and "normal" in data

    @classmethod
    def arch_from_text(cls, text: str):
        if "Genotype" in text and "(" in text and not text.startswith("{"):
            return parse_darts_text(text)
        return None

    def _pairs(self, node: int) -> list[tuple[int, int]]:
        return list(itertools.combinations(range(node + 2), 2))

    def decisions(self) -> list[int]:
        ops = len(PRIMITIVES) - 1  # derived cells never hold 'none'
        per_cell = [n for node in range(self.config.nodes) for n in (len(self._pairs(node)), ops, ops)]
        return per_cell * 2

    def arch_from_decisions(self, choices: list[int]) -> DartsArch:
        ops = [p for p in PRIMITIVES if p != self.zero_op]
        it = iter(choices)
        cells = []
        for _ in range(2):
            pairs = []
            for node in range(self.config.nodes):
                a, b = self._pairs(node)[next(it)]
                pairs += [(ops[next(it)], a), (ops[next(it)], b)]
            cells.append(tuple(pairs))
        concat = tuple(range(2, 2 + self.config.nodes))
        return DartsArch(cells[0], concat, cells[1], concat)

    def decisions_of(self, arch: DartsArch) -> list[int]:
        ops = [p for p in PRIMITIVES if p != self.zero_op]
        out = []
        for pairs in (arch.normal, arch.reduce):
            for node in range(self.config.nodes):
                (oa, a), (ob, b) = sorted(pairs[2 * node: 2 * node + 2], key=lambda t: t[1])
                if a == b or self.zero_op in (oa, ob):
                    raise GenotypeError("this DARTS arch reads one input twice or holds 'none': "
                                        "it has no decision encoding")
                out += [self._pairs(node).index((a, b)), ops.index(oa), ops.index(ob)]
        return out

    # ---- networks --------------------------------------------------------------------
    def build(self, arch: DartsArch, drop_path: float = 0.0) -> "DartsNetwork":
        return DartsNetwork(self, arch, drop_path)

    def supernet(self, **kwargs) -> "DartsSupernet":
        return DartsSupernet(self, **kwargs)


# ---- DARTS paper genotype text ------------------------------------------------------------

_GENOTYPE_RE = re.compile(r"^\s*(?:\w+\s*=\s*)?Genotype\s*\((?P<body>.*)\)\s*$", re.S)


def parse_darts_text(text: str) -> dict:
    """Parse ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``.

    Accepts the forms printed by the DARTS code (``range(2, 6)`` or lists). Only literals are
    evaluated: the text is parsed with ``ast``, never executed.
    """
    m = _GENOTYPE_RE.match(text)
    if not m:
        raise GenotypeError("not a DARTS genotype string: expected 'Genotype(normal=[...], normal_concat=[...], "
                            "reduce=[...], reduce_concat=[...])'")
    try:
        call = ast.parse("f(" + m.group("body") + ")", mode="eval").body
    except SyntaxError as e:
        raise GenotypeError(f"DARTS genotype string does not parse: {e.msg} at column {e.offset}") from None
    out = {}
    for kw in call.keywords:
        node = kw.value
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
                and all(isinstance(a, ast.Constant) for a in node.args)):
            out[kw.arg] = list(range(*[a.value for a in node.args]))
            continue
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise GenotypeError(f"DARTS genotype string: field {kw.arg!r} is not a literal") from None
        out[kw.arg] = [list(p) if isinstance(p, tuple) else p for p in value]
    missing = [k for k in ("normal", "reduce") if k not in out]
    if missing:
        raise GenotypeError(f"DARTS genotype string lacks {', '.join(missing)}")
    return out


# ---- modules ------------------------------------------------------------------------------

def drop_path_(x, drop_prob: float):
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep) * mask


class _Preprocess(nn.Module):
    def __init__(self, p: _CellPlan, affine: bool):
        super().__init__()
        if p.reduction_prev:
            self.pre0 = FactorizedReduce(p.c_pp, p.c, affine)
        else:
            self.pre0 = ReLUConvBN(p.c_pp, p.c, 1, 1, 0, affine)
        self.pre1 = ReLUConvBN(p.c_p, p.c, 1, 1, 0, affine)


class DerivedCell(nn.Module):
    def __init__(self, p: _CellPlan, pairs, concat):
        super().__init__()
        self.pre = _Preprocess(p, affine=True)
        self.reduction = p.reduction
        self.inputs = [inp for _, inp in pairs]
        self.concat = list(concat)
        self.ops = nn.ModuleList(darts_op(op, p.c, 2 if p.reduction and inp < 2 else 1) for op, inp in pairs)
        self.identity = [isinstance(m, nn.Identity) for m in self.ops]

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.pre.pre0(s0), self.pre.pre1(s1)]
        for k in range(0, len(self.ops), 2):
            acc = None
            for j in (k, k + 1):
                h = self.ops[j](states[self.inputs[j]])
                if self.training and drop_prob > 0 and not self.identity[j]:
                    h = drop_path_(h, drop_prob)
                acc = h if acc is None else acc + h
            states.append(acc)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(nn.Module):
    """The standalone network of a derived DARTS genotype (for retraining and export)."""

    def __init__(self, space: DartsSpace, arch: DartsArch, drop_path: float = 0.0):
        super().__init__()
        cfg = space.config
        self.drop_path = drop_path
        stem = space._stem_spec()
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, stem.out_shape[2], 3, padding=1, bias=False),
            nn.BatchNorm2d(stem.out_shape[2]),
        )
        plans = space._plan(arch)
        self.cells = nn.ModuleList(
            DerivedCell(p, arch.reduce if p.reduction else arch.normal,
                        arch.reduce_concat if p.reduction else arch.normal_concat)
            for p in plans
        )
        self.classifier = Logits(space._cell_out_channels(plans[-1], arch), cfg.num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path)
        return self.classifier(s1)


def _search_op(name, c, stride):
    op = darts_op(name, c, stride, affine=False)
    if "pool" in name:  # as in DARTS model_search.py: BN after pooling in the supernet
        op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


class SearchCell(nn.Module):
    def __init__(self, p: _CellPlan, nodes: int, partial_channels: int = 1):
        super().__init__()
        self.pre = _Preprocess(p, affine=False)
        self.reduction = p.reduction
        self.nodes = nodes
        self.channels = p.c
        self.edges = nn.ModuleList()
        k = partial_channels
        for node in range(nodes):
            for inp in range(node + 2):
                stride = 2 if p.reduction and inp < 2 else 1
                if k == 1:
                    self.edges.append(MixedOp(PRIMITIVES, lambda o, s=stride: _search_op(o, p.c, s), DartsSpace.zero_op))
                else:
                    self.edges.append(PartialChannelMixedOp(
                        PRIMITIVES, lambda o, s=stride: _search_op(o, p.c // k, s), k, stride, DartsSpace.zero_op))

    def forward(self, s0, s1, weights, active=None):
        states = [self.pre.pre0(s0), self.pre.pre1(s1)]
        offset = 0
        for node in range(self.nodes):
            acc = None
            for j, h in enumerate(states):
                w = weights[offset + j]
                act = None if active is None else active[offset + j]
                if not is_naive() and not bool((w.detach() != 0).any()) and not act:
                    continue  # edge not selected (ENAS / SPOS / derived paths)
                y = self.edges[offset + j](h, w, act)
                acc = y if acc is None else acc + y
            offset += len(states)
            if acc is None:  # a node with no selected input contributes zeros
                n, _, h, w = states[0].shape
                if self.reduction:
                    h, w = (h + 1) // 2, (w + 1) // 2
                acc = states[0].new_zeros(n, self.channels, h, w)
            states.append(acc)
        return torch.cat(states[-self.nodes:], dim=1)


class DartsSupernet(Supernet):
    """The DARTS search network: every op on every edge, cells share ``arch_params`` per type.

    ``partial_channels`` K > 1 makes it PC-DARTS' (Xu et al., ICLR 2020): each edge runs its ops
    on 1/K of the channels (``PartialChannelMixedOp``), and per cell type ``edge_params`` hold
    one beta per edge, normalised by a softmax over each node's incoming edges. The betas are
    folded into ``softmax_weights()`` (row = beta * softmax(alpha)), so everything reading those
    weights sees the edge normalisation: the forward pass, ``DartsSpace.derive`` (edges ranked by
    beta * max alpha, the paper's rule) and the expected latency of the derived cell. The
    deployed network is built at full width whatever K, so latency is priced at full width.
    """

    def __init__(self, space: DartsSpace, partial_channels: int = 1):
        super().__init__()
        self.space = space
        cfg = space.config
        k = partial_channels
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpaceError(f"partial channels must be a positive integer, got {k!r}")
        if cfg.channels % k:
            raise SpaceError(f"partial channels {k} must divide the supernet's channels ({cfg.channels}): "
                             f"each edge computes channels/{k} of them")
        self.partial_channels = k
        stem = space._stem_spec()
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, stem.out_shape[2], 3, padding=1, bias=False),
            nn.BatchNorm2d(stem.out_shape[2]),
        )
        plans = space._plan()
        self.cells = nn.ModuleList(SearchCell(p, cfg.nodes, k) for p in plans)
        self.classifier = Logits(space._cell_out_channels(plans[-1]), cfg.num_classes)
        kinds = ["normal"] + (["reduce"] if any(p.reduction for p in plans) else [])
        self.init_arch_params({k: (space.edges_per_cell, len(PRIMITIVES)) for k in kinds})
        if self.partial_channels > 1:
            self.edge_params = nn.ParameterDict({
                kind: nn.Parameter(1e-3 * torch.randn(space.edges_per_cell)) for kind in kinds
            })

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith(("arch_params", "edge_params"))]

    def edge_weights(self, kind: str) -> torch.Tensor:
        """PC-DARTS' edge normalisation: softmax of the betas over each node's incoming edges."""
        beta = self.edge_params[kind]
        spans = [node + 2 for node in range(self.space.config.nodes)]
        return torch.cat([torch.softmax(b, dim=0) for b in torch.split(beta, spans)])

    def softmax_weights(self) -> dict:
        probs = super().softmax_weights()
        if self.partial_channels > 1:
            probs = {k: v * self.edge_weights(k)[:, None] for k, v in probs.items()}
        return probs

    def run(self, x, weights: dict, active: dict | None):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], None if active is None else active[kind])
        return self.classifier(s1)
