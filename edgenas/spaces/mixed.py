"""The supernet contract every space keeps (``Supernet``), and ``MixedOp``: the candidate ops of
one choice point, weighted by the search."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

_NAIVE = False


@contextmanager
def naive_mode():
    """Compute every candidate of every edge, whatever its weight: the plain MixedOp loop that
    benchmarks/search_throughput.py compares our path-skipping implementation against."""
    global _NAIVE
    old, _NAIVE = _NAIVE, True
    try:
        yield
    finally:
        _NAIVE = old


def is_naive() -> bool:
    return _NAIVE


class MixedOp(nn.Module):
    """All candidate ops on one edge; output = sum of weight * op(x) over ops with non-zero weight.

    Skipping zero-weight ops makes the same module serve dense DARTS weights, one-hot SPOS/ENAS
    paths and ProxylessNAS' two sampled paths without computing unused candidates.
    """

    def __init__(self, options, build, zero_op: str | None = None):
        """``zero_op``: the space's option that outputs zeros (its ``SearchSpace.zero_op``): never computed."""
        super().__init__()
        self.options = tuple(options)
        self.ops = nn.ModuleList(build(o) for o in options)
        self.zero = [o == zero_op for o in options]

    def forward(self, x, weights, active=None):
        """``active``: indices to compute even where their weight is 0 (ProxylessNAS needs the
        output of both sampled paths to get the gate gradients); default: non-zero weights."""
        if _NAIVE:
            return sum(self.ops[k](x) * weights[k] for k in range(len(self.ops)))
        if active is None:
            active = torch.nonzero(weights.detach()).flatten().tolist()
        out = None
        for k in active:
            if not self.zero[k]:
                y = self.ops[k](x) * weights[k]
                out = y if out is None else out + y
        if out is None:  # only zero ops active (or none): zeros of the right shape, weight kept in the graph
            k = active[0] if active else self.zero.index(True)
            out = self.ops[k](x) * weights[k]
        return out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups (ShuffleNet's shuffle, as PC-DARTS applies it
    after each partial edge). Without it the same first 1/K channels would be the only ones any
    candidate op ever sees; with it, each edge's computed channels spread over the whole output."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialChannelMixedOp(MixedOp):
    """PC-DARTS' partial channel connection (Xu et al., ICLR 2020): the candidates run on the first
    1/``k`` of the input channels (the ops are built for that width), the rest bypass the edge
    (max-pooled 2x2 where the edge has stride 2), the two are concatenated and channel-shuffled.

    The bypass is scaled by the sum of the edge's weights. A softmax over ops sums to 1, so with
    PC-DARTS' edge normalisation folded into the weights (``beta * softmax(alpha)``) that sum is
    the edge's beta, the factor the paper multiplies the whole edge output by; a one-hot path
    weight gives 1, the edge as a derived cell would use it.
    """

    def __init__(self, options, build, k: int, stride: int, zero_op: str | None = None):
        super().__init__(options, build, zero_op)
        self.k = k
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else None

    def forward(self, x, weights, active=None):
        part = x.shape[1] // self.k
        y = super().forward(x[:, :part], weights, active)
        rest = x[:, part:]
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest)
        return channel_shuffle(torch.cat([y, rest * weights.sum()], dim=1), self.k)


class Supernet(nn.Module):
    """What every space's supernet offers the strategies, and nothing more.

    - ``arch_params``: name -> [rows, options] architecture logits (``init_arch_params``), the names
      and shapes the space's ``arch_weights`` / ``derive`` / ``choice_points`` use;
    - ``forward(x, weights=None, active=None)``: ``weights`` maps the same names to per-option weights
      (default: ``softmax_weights()``); ``active`` names options to compute even at weight 0;
    - ``weight_parameters()``: every parameter but the architecture logits.
    """

    def init_arch_params(self, shapes: dict[str, tuple[int, int]]) -> None:
        """Architecture logits near zero (uniform softmax), in ``shapes`` order (draws from torch's RNG)."""
        self.arch_params = nn.ParameterDict({k: nn.Parameter(1e-3 * torch.randn(*s)) for k, s in shapes.items()})

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("arch_params")]

    def softmax_weights(self) -> dict:
        return {k: torch.softmax(v, dim=-1) for k, v in self.arch_params.items()}

    def forward(self, x, weights: dict | None = None, active: dict | None = None):
        return self.run(x, self.softmax_weights() if weights is None else weights, active)

    def run(self, x, weights: dict, active: dict | None):
        """The forward pass with explicit per-option weights (what a space implements)."""
        raise NotImplementedError
