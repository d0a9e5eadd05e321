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
