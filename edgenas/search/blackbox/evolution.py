"""Regularized evolution (Real et al., AAAI 2019): aging population, tournament selection.

A population of ``population`` feasible architectures; each step draws ``sample`` of them at
random, mutates the most accurate one (one decision changed) into a *feasible*, unseen child
(infeasible mutations are redrawn, never evaluated), and the child replaces the *oldest* member.
"""

from __future__ import annotations

from collections import deque

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox


def mutate_feasible(strategy: BlackBoxStrategy, parent, exclude) -> tuple | None:
    """A random one-decision mutation of ``parent`` that is predicted feasible and not in ``exclude``."""
    options = [a for a in strategy.problem.mutations(parent) if a not in exclude and strategy.problem.feasible(a)]
    return options[int(strategy.rng.integers(len(options)))] if options else None


@register_blackbox
class RegularizedEvolution(BlackBoxStrategy):
    """Regularized evolution: aging population, tournament selection, feasible mutations."""

    name = "evolution"

    def __init__(self, problem, seed=0, **options):
        super().__init__(problem, seed, **options)
        self.population_size = int(options.get("population", 20))
        self.sample_size = int(options.get("sample", 5))
        self.population: deque = deque()

    def ask(self):
        if len(self.history) < self.population_size:
            return self.random_unseen()
        pop = list(self.population)
        idx = self.rng.choice(len(pop), size=min(self.sample_size, len(pop)), replace=False)
        parent = max((pop[i] for i in idx), key=lambda t: t[1])[0]
        return mutate_feasible(self, parent, self.seen) or self.random_unseen()

    def tell(self, arch, accuracy):
        first = arch not in self.seen
        super().tell(arch, accuracy)
        if first:
            self.population.append((arch, accuracy))
            if len(self.population) > self.population_size:
                self.population.popleft()
