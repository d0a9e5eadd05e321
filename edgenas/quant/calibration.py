"""Calibration data for static int8 quantization, with the ranges it covered recorded.

A static quantizer fixes each activation's scale from the values it sees while calibrating,
so the artifact (and so its latency and accuracy) depends on that data. A ``CalibrationSet``
therefore carries its provenance (``source``) and a ``fingerprint`` that enters the artifact
cache key, and ``ranges`` that go into a table entry's or export report's metadata.

Two sources: real images of the run's dataset for whole networks (``from_images``), and
representative inputs for single ops (``representative``: standard normal, the distribution
a BatchNorm'd activation has, which is what every op of our spaces receives).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CalibrationSet:
    """NCHW float32 samples (``samples[i]`` is one batch-sized input) and where they came from."""

    samples: tuple[np.ndarray, ...]
    source: str
    ranges: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Short hash of the data itself: two sets with equal values give equal artifacts."""
        h = hashlib.sha256(self.source.encode())
        for s in self.samples:
            h.update(str(s.shape).encode())
            h.update(np.ascontiguousarray(s, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {"source": self.source, "n": len(self.samples), "fingerprint": self.fingerprint(), **self.ranges}


def _ranges(samples) -> dict:
    allv = np.concatenate([np.asarray(s, dtype=np.float32).ravel() for s in samples])
    return {"min": float(allv.min()), "max": float(allv.max()), "mean": float(allv.mean()), "std": float(allv.std())}


def from_samples(samples, source: str) -> CalibrationSet:
    samples = tuple(np.ascontiguousarray(s, dtype=np.float32) for s in samples)
    if not samples:
        raise ValueError("a calibration set needs at least one sample")
    return CalibrationSet(samples, source, _ranges(samples))


def representative(input_shape, n: int = 8, seed: int = 0) -> CalibrationSet:
    """``n`` standard-normal inputs of NCHW ``input_shape``: what a single op is calibrated on."""
    rng = np.random.default_rng(seed)
    return from_samples([rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(n)],
                        f"representative:normal(0,1):n={n}:seed={seed}")


def from_images(images: np.ndarray, batch: int, source: str, n: int | None = None) -> CalibrationSet:
    """Batches of ``batch`` real NCHW images (``images`` already normalised as the network sees them)."""
    images = np.asarray(images, dtype=np.float32)
    count = len(images) // batch if n is None else min(n, len(images) // batch)
    if count < 1:
        raise ValueError(f"need at least {batch} images to calibrate at batch {batch}, got {len(images)}")
    return from_samples([images[i * batch:(i + 1) * batch] for i in range(count)], source)
