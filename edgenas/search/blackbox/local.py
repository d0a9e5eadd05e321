"""Local search (White et al., UAI 2021, a strong NAS-Bench-201 baseline): hill climbing with restarts.

From a random feasible architecture, evaluate its feasible one-decision neighbours in random
order and move to the first that is more accurate (first improvement); at a local optimum
(no neighbour better) restart from a random unseen feasible architecture.
"""

from __future__ import annotations

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox


@register_blackbox
class LocalSearch(BlackBoxStrategy):
    """Local search: first-improvement hill climbing over feasible neighbours, random restarts."""

    name = "local"

    def __init__(self, problem, seed=0, **options):
        super().__init__(problem, seed, **options)
        self.current = None  # (arch, acc)
        self.queue: list = []

    def _neighbours(self, arch):
        nb = [a for a in self.problem.mutations(arch) if self.problem.feasible(a)]
        order = self.rng.permutation(len(nb))
        return [nb[i] for i in order]

    def ask(self):
        while self.current is not None and self.queue:
            a = self.queue.pop()
            if a not in self.seen:
                return a
        self.current = None  # local optimum (or start): restart
        return self.random_unseen()

    def tell(self, arch, accuracy):
        super().tell(arch, accuracy)
        if self.current is None or accuracy > self.current[1]:
            self.current = (arch, accuracy)
            self.queue = self._neighbours(arch)
