"""Latency-aware objectives, in the published forms.

- ProxylessNAS ``mul#log``:   loss = CE * alpha * (log E[lat] / log T) ** beta
- ProxylessNAS ``add#linear``: loss = CE + lambda * (E[lat] - T) / T
- DARTS ``hinge``:             loss = CE + lambda * max(0, E[lat] - T) / T
- DARTS ``smooth``:            loss = CE + lambda * softplus(k (E[lat] - T) / T) / k   (a smooth hinge)
- reward (ENAS, MnasNet-style): acc * (lat / T) ** w, with w = -0.07 over the target, 0 under it

Latencies are in ms; T is the target. The relative forms (divided by T) make lambda mean the same
for a 5 ms phone target and a 0.5 ms GPU one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgenas.errors import InputError

LOSSES = ("mul#log", "add#linear", "hinge", "smooth")


def latency_loss(form: str, ce: torch.Tensor, expected_ms: torch.Tensor, target_ms: float, *, alpha: float = 0.2,
                 beta: float = 0.3, lam: float = 0.1, sharpness: float = 20.0) -> torch.Tensor:
    t = float(target_ms)
    if form == "mul#log":
        if t <= 1.0:  # log T <= 0 breaks the published form; work in units where T = e
            scale = math.e / t
            ratio = torch.log(expected_ms * scale) / math.log(t * scale)
        else:
            ratio = torch.log(expected_ms) / math.log(t)
        return ce * alpha * ratio.clamp_min(1e-6) ** beta
    if form == "add#linear":
        return ce + lam * (expected_ms - t) / t
    if form == "hinge":
        return ce + lam * F.relu(expected_ms - t) / t
    if form == "smooth":
        return ce + lam * F.softplus(sharpness * (expected_ms - t) / t) / sharpness
    raise InputError(f"unknown latency loss {form!r}; known: {', '.join(LOSSES)}")


def latency_reward(acc: float, latency_ms: float, target_ms: float, w: float = -0.07) -> float:
    """MnasNet's soft constraint with a hard edge: no bonus under the target, a penalty over it."""
    return acc * (latency_ms / target_ms) ** (w if latency_ms > target_ms else 0.0)
