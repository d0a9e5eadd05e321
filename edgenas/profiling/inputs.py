"""Deterministic example inputs, so every backend times the very same tensor values."""

from __future__ import annotations

import numpy as np


def example_input(shape, seed: int = 0, layout: str = "nchw") -> np.ndarray:
    """Standard-normal float32 of NCHW ``shape``; ``layout='nhwc'`` returns it transposed."""
    x = np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)
    if layout == "nhwc" and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x
