"""Evaluator: architecture in, accuracy and latency out.

Two implementations: *look it up* (``TabularEvaluator``, a tabular benchmark such as
NAS-Bench-201 + HW-NAS-Bench-360) and *train it* (``TrainedEvaluator``, a thin adapter over the
retrain path of ``search/pipeline.py``). Black-box strategies see only the accuracy; latency
they see is the prediction of ``Problem.predicted_ms``, so that the benchmark can score the
pick on the true latency an evaluator reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from edgenas.spaces import nb201_arch as enc


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # percent
    latency_ms: float


class Evaluator(ABC):
    @abstractmethod
    def evaluate(self, arch) -> Evaluation:
        """Accuracy (%) and latency (ms) of one architecture."""

    def accuracy(self, arch) -> float:
        return self.evaluate(arch).accuracy


class TabularEvaluator(Evaluator):
    """Look-up in arrays over the 15,625 NAS-Bench-201 codes (NaN: not in the table)."""

    def __init__(self, accuracy: np.ndarray, latency_ms: np.ndarray):
        self.acc = np.asarray(accuracy, dtype=float)
        self.lat = np.asarray(latency_ms, dtype=float)

    def evaluate(self, arch) -> Evaluation:
        c = enc.to_code(arch)
        return Evaluation(float(self.acc[c]), float(self.lat[c]))


class TrainedEvaluator(Evaluator):
    """Train the architecture from scratch (``pipeline.retrain``) and report its accuracy on the
    *arch* split (never the test split, which stays for the final report) with the latency the
    context's predictor gives. ``to_space_arch`` maps a black-box arch (tuple of decisions) to the
    space's own arch (default: ``space.arch_from_decisions``)."""

    def __init__(self, ctx, epochs: float = 1.0, lr: float = 0.05, to_space_arch=None):
        self.ctx = ctx
        self.epochs = epochs
        self.lr = lr
        self.to_space_arch = to_space_arch or ctx.space.arch_from_decisions
        self.cache: dict = {}

    def evaluate(self, arch) -> Evaluation:
        from edgenas.search.pipeline import retrain

        key = tuple(arch)
        if key not in self.cache:
            space_arch = self.to_space_arch(list(arch))
            _, arch_acc, _ = retrain(self.ctx, space_arch, self.epochs, self.lr, seed=self.ctx.seed)
            self.cache[key] = Evaluation(100.0 * arch_acc, self.ctx.predicted_ms(space_arch))
        return self.cache[key]
