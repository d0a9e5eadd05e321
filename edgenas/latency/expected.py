"""Differentiable expected latency of a supernet, in the form the search strategies call.

For every choice point the predictor's op latencies are summed per option into a matrix
``L[param][row, option]``; the expected latency of arch weights ``P`` (softmax probabilities
for DARTS, sampled-path / gate probabilities for ProxylessNAS) is then

    E[lat] = a * S + r * (b + c * K),   S = fixed + sum_param sum(P * L),   K = K_fixed + sum_param sum(P * N)

with the predictor's calibration (a, b, c; L's op latencies weighted per op type or key as its
``weight`` says, like ``predict``'s sum), N the number of executing ops per option and r the
predictor's ``calibration_scale`` (this machine's anchor over the one the fit used): the same
``Calibration.apply`` that ``predict`` uses, so a search's expected latency of a derived cell is
the prediction its summary reports even when the host's quiet-state scale has moved since the
fit. This is linear in P, so its gradient is exact and cheap.

``mode="derived"`` weights the latencies by what the space's derivation keeps
(``SearchSpace.derived_probs``): for DARTS, two incoming edges per node with their best
non-'none' op, where a plain softmax sum counts all 14 edges while a derived cell runs 8. For a
space whose derivation is a per-row argmax it equals ``"softmax"``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgenas.ops.registry import is_zero_cost


class ExpectedLatency(nn.Module):
    def __init__(self, space, predictor, mode: str = "softmax"):
        super().__init__()
        if mode not in ("softmax", "derived"):
            raise ValueError(f"unknown expected-latency mode {mode!r}")
        self.space, self.mode, self.cal = space, mode, predictor.calibration
        self.scale = predictor.calibration_scale
        fixed = space.fixed_specs()
        self.fixed_ms, self.fixed_ops = predictor.features(fixed)
        points = space.choice_points()
        ms = predictor.op_ms([s for cp in points for specs in cp.specs for s in specs])
        rows: dict[str, int] = {}
        for cp in points:
            rows[cp.param] = max(rows.get(cp.param, 0), cp.row + 1)
        width = {cp.param: len(cp.options) for cp in points}
        self.params = sorted(rows)
        for p in self.params:
            self.register_buffer(f"lat_{p}", torch.zeros(rows[p], width[p]))
            self.register_buffer(f"ops_{p}", torch.zeros(rows[p], width[p]))
        for cp in points:
            lat, ops = getattr(self, f"lat_{cp.param}"), getattr(self, f"ops_{cp.param}")
            for j, specs in enumerate(cp.specs):
                lat[cp.row, j] = sum(self.cal.weight(s) * ms[s.key] for s in specs)
                ops[cp.row, j] = sum(1 for s in specs if not is_zero_cost(s))

    def matrices(self) -> dict[str, torch.Tensor]:
        return {p: getattr(self, f"lat_{p}") for p in self.params}

    def forward(self, probs: dict[str, torch.Tensor]) -> torch.Tensor:
        dev = next(iter(probs.values())).device if probs else torch.device("cpu")
        if self.params and getattr(self, f"lat_{self.params[0]}").device != dev:
            self.to(dev)  # the tables follow the architecture weights (a CUDA search), once
        s = torch.as_tensor(self.fixed_ms, dtype=torch.float32, device=dev)
        k = torch.as_tensor(float(self.fixed_ops), dtype=torch.float32, device=dev)
        for p in self.params:
            w = probs[p]
            if self.mode == "derived":
                w = self.space.derived_probs(p, w)
            s = s + (w * getattr(self, f"lat_{p}")).sum()
            k = k + (w * getattr(self, f"ops_{p}")).sum()
        return self.cal.apply(s, k, self.scale)
