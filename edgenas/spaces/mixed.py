"""MixedOp: the candidate ops of one choice point in a supernet, weighted by the search."""

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

    def __init__(self, options, build):
        super().__init__()
        self.options = tuple(options)
        self.ops = nn.ModuleList(build(o) for o in options)
        self.zero = [o in ("none", "zero") for o in options]

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

    def __init__(self, options, build, k: int, stride: int):
        super().__init__(options, build)
        self.k = k
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else None

    def forward(self, x, weights, active=None):
        part = x.shape[1] // self.k
        y = super().forward(x[:, :part], weights, active)
        rest = x[:, part:]
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest)
        return channel_shuffle(torch.cat([y, rest * weights.sum()], dim=1), self.k)
