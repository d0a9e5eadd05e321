"""Model-based search: a Gaussian-process surrogate of accuracy and expected improvement.

After ``init`` random feasible queries, a scikit-learn ``GaussianProcessRegressor`` (RBF +
white noise, hyper-parameters fitted by marginal likelihood, no random restarts, so it is
deterministic) is fitted on the queried architectures' features (``Problem.features``: for
NAS-Bench-201 one-hot ops of live edges + BANANAS-style path encoding). Every *feasible*
unqueried architecture is scored by expected improvement over the best accuracy so far and the
top ``batch`` are queried before the next refit; the batch grows with the history
(``refit_growth``, default 20%) so a 1,000-query run refits about 25 times.

The candidates are the problem's pool of feasible architectures when it has one, else
``candidates`` (1,000) random feasible samples plus the feasible mutations of the 10 best.
"""

from __future__ import annotations

import math

import numpy as np

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    from scipy.stats import norm

    sigma = np.maximum(sigma, 1e-9)
    z = (mu - best - xi) / sigma
    return (mu - best - xi) * norm.cdf(z) + sigma * norm.pdf(z)


@register_blackbox
class GPSurrogate(BlackBoxStrategy):
    """Gaussian-process surrogate of accuracy (scikit-learn), expected improvement over feasible archs."""

    name = "gp-ei"

    def __init__(self, problem, seed=0, **options):
        super().__init__(problem, seed, **options)
        self.init = int(options.get("init", 10))
        self.growth = float(options.get("refit_growth", 0.25))
        self.max_batch = int(options.get("max_batch", 100))
        self.n_candidates = int(options.get("candidates", 1000))
        self.train_max = int(options.get("train_max", 150))
        self.length_scale = float(options.get("length_scale", 3.0))
        self.noise = float(options.get("noise", 0.05))
        self.queue: list = []

    def _candidates(self):
        """Unqueried feasible archs: a random subset of the pool (``candidates``) plus every feasible
        unqueried neighbour of the 10 best queried so far (where the optimum usually lies)."""
        out = set()
        if self.problem.pool is not None and len(self.problem.pool) <= self.n_candidates + len(self.seen):
            out.update(a for a in self.problem.pool if a not in self.seen)
        else:
            for _ in range(self.n_candidates):
                a = self.problem.sample_feasible(self.rng, self.seen, tries=50)
                if a is not None:
                    out.add(a)
        for a, _ in sorted(self.history, key=lambda t: -t[1])[:10]:
            out.update(m for m in self.problem.mutations(a) if m not in self.seen and self.problem.feasible(m))
        return sorted(out)

    def _refit(self):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        # the model only needs to rank the good region: train on the best ``train_max`` points,
        # with the few collapsed networks (accuracy near chance) clipped so they do not dominate
        hist = sorted(self.history, key=lambda t: -t[1])[: self.train_max]
        archs = [a for a, _ in hist]
        y = np.array([acc for _, acc in hist], dtype=float)
        y = np.maximum(y, np.quantile(y, 0.1))
        kernel = (ConstantKernel(1.0, "fixed") * RBF(self.length_scale, "fixed")
                  + WhiteKernel(self.noise, "fixed"))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, optimizer=None)
        gp.fit(self.problem.features(archs), y)
        cands = self._candidates()
        if not cands:
            return []
        mu, sigma = gp.predict(self.problem.features(cands), return_std=True)
        ei = expected_improvement(mu, sigma, float(y.max()))
        batch = min(self.max_batch, max(1, math.ceil(self.growth * len(self.history))))
        order = np.lexsort((np.arange(len(cands)), -ei))[:batch]  # ties broken by candidate order
        return [cands[i] for i in order][::-1]

    def ask(self):
        if len(self.history) < self.init:
            return self.random_unseen()
        while self.queue:
            a = self.queue.pop()
            if a not in self.seen:
                return a
        self.queue = self._refit()
        return self.queue.pop() if self.queue else self.random_unseen()
