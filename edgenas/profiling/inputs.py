"""Deterministic example inputs, so every backend times the very same tensor values."""

from __future__ import annotations

import numpy as np


def example_input(shape, seed: int = 0, layout: str = "nchw") -> np.ndarray:
    """Standard-normal float32 of NCHW ``shape``; ``layout='nhwc'`` returns it transposed."""
    x = np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)
    if layout == "nhwc" and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """NCHW images as an artifact of ``layout`` takes them (a view; other ranks pass through)."""
    return x.transpose(0, 2, 3, 1) if layout == "nhwc" and x.ndim == 4 else x


def from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    """An artifact's ``layout`` output back in NCHW, to compare with PyTorch."""
    return y.transpose(0, 3, 1, 2) if layout == "nhwc" and y.ndim == 4 else y
