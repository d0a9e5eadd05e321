"""Black-box strategies: ask an architecture, tell its accuracy, under a hard latency constraint.

The weight-sharing ``Strategy`` (``search/base.py``) advances in weight-update steps over a
``SearchContext`` with data splits; a black-box strategy instead spends *queries*: each query is
one architecture trained (or looked up) by an evaluator. The two interfaces differ, so black-box
strategies sit in a sibling registry built by the same helper (``edgenas.registry.Registry``).

The latency target is a constraint, never a penalty: ``Problem.feasible`` says whether an
architecture is *predicted* (by a table, a fitted model or, in the exact benchmark, the true
latency) at or under the target, predicting is free, and a strategy only ever asks feasible
architectures. ``run_blackbox`` checks that and fails loudly otherwise.

A strategy is deterministic for a given seed: all randomness comes from ``self.rng``
(a ``numpy.random.Generator``) or generators seeded from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import numpy as np

from edgenas.errors import InputError
from edgenas.registry import Registry

Arch = tuple  # a tuple of decision indices, one per entry of Problem.sizes


@dataclass
class Problem:
    """What a black-box strategy may know: the decisions, the constraint, and cheap features.

    ``predicted_ms(arch)`` is the latency the search believes (free to call); ``target_ms`` the
    limit it must respect. ``pool`` lists every feasible architecture when the space is small
    enough to enumerate (NAS-Bench-201: 15,625); strategies then sample from it directly.
    ``featurize`` maps a list of archs to a 2-D float array for surrogate models.
    """

    sizes: Sequence[int]
    predicted_ms: Callable[[Arch], float]
    target_ms: float
    pool: list[Arch] | None = None
    featurize: Callable[[list[Arch]], np.ndarray] | None = None
    neighbours: Callable[[Arch], list[Arch]] | None = None

    def feasible(self, arch: Arch) -> bool:
        return self.predicted_ms(arch) <= self.target_ms

    def sample(self, rng: np.random.Generator) -> Arch:
        return tuple(int(rng.integers(n)) for n in self.sizes)

    def sample_feasible(self, rng: np.random.Generator, exclude=frozenset(), tries: int = 10000) -> Arch | None:
        """A uniformly random feasible arch not in ``exclude``; None when there is none left."""
        if self.pool is not None:
            for _ in range(64):  # fast path: rejection from the pool
                a = self.pool[int(rng.integers(len(self.pool)))]
                if a not in exclude:
                    return a
            left = [a for a in self.pool if a not in exclude]
            return left[int(rng.integers(len(left)))] if left else None
        for _ in range(tries):
            a = self.sample(rng)
            if a not in exclude and self.feasible(a):
                return a
        return None

    def mutations(self, arch: Arch) -> list[Arch]:
        """Every arch one decision away (``neighbours`` when the space gives its own)."""
        if self.neighbours is not None:
            return self.neighbours(arch)
        return [arch[:i] + (v,) + arch[i + 1:] for i, n in enumerate(self.sizes) for v in range(n) if v != arch[i]]

    def features(self, archs: list[Arch]) -> np.ndarray:
        if self.featurize is not None:
            return self.featurize(archs)
        out = np.zeros((len(archs), sum(self.sizes)), dtype=np.float32)  # one-hot per decision
        offsets = np.cumsum([0, *self.sizes[:-1]])
        for r, a in enumerate(archs):
            out[r, offsets + np.asarray(a)] = 1.0
        return out


class BlackBoxStrategy(ABC):
    """Ask/tell interface. ``ask`` returns a feasible, preferably unseen, arch (None: nothing left)."""

    name: ClassVar[str]

    def __init__(self, problem: Problem, seed: int = 0, **options):
        self.problem = problem
        self.seed = seed
        self.options = options
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[Arch, float]] = []
        self.seen: set[Arch] = set()

    @abstractmethod
    def ask(self) -> Arch | None:
        """The next architecture to evaluate."""

    def tell(self, arch: Arch, accuracy: float) -> None:
        """Record an evaluated architecture (subclasses extend, calling super)."""
        self.history.append((arch, accuracy))
        self.seen.add(arch)

    def random_unseen(self) -> Arch | None:
        return self.problem.sample_feasible(self.rng, self.seen)


_BLACKBOX: Registry[BlackBoxStrategy] = Registry("black-box strategy", tuple(
    f"edgenas.search.blackbox.{m}" for m in ("random", "evolution", "reinforce", "local", "surrogate")),
    group="edgenas.strategies", base=BlackBoxStrategy)


def register_blackbox(cls):
    return _BLACKBOX.register(cls)


def blackbox_class(name: str) -> type[BlackBoxStrategy]:
    return _BLACKBOX.get(name)


def list_blackbox() -> list[str]:
    return _BLACKBOX.names()


def create_blackbox(name: str, problem: Problem, seed: int = 0, **options) -> BlackBoxStrategy:
    return _BLACKBOX.create(name, problem, seed, **options)


@dataclass
class Trace:
    """Every query of one run, in order: (arch, accuracy)."""

    queries: list[tuple[Arch, float]] = field(default_factory=list)

    def best_after(self, q: int) -> tuple[Arch, float] | None:
        """The pick after ``q`` queries: the most accurate arch queried so far (all are feasible)."""
        head = self.queries[:q]
        return max(head, key=lambda t: t[1]) if head else None


def run_blackbox(strategy: BlackBoxStrategy, evaluate: Callable[[Arch], float], queries: int,
                 on_query: Callable[[Trace], None] | None = None) -> Trace:
    """Spend ``queries`` evaluations. A re-asked arch is answered from the cache and not counted;
    the run ends early when the strategy has nothing left to ask (the feasible set is exhausted).

    ``on_query(trace)`` runs after each new query and may change the problem's prediction (the realistic
    benchmark refits its latency model on new measurements); an arch a strategy queued before that and
    now predicted over the target is then dropped, never evaluated. Without it such an ask is a bug."""
    trace = Trace()
    cache: dict[Arch, float] = {}
    repeats = 0
    while len(trace.queries) < queries:
        arch = strategy.ask()
        if arch is None:
            break
        arch = tuple(int(v) for v in arch)
        if not strategy.problem.feasible(arch):
            if on_query is None:
                raise RuntimeError(f"{strategy.name} asked an architecture predicted over the target: {arch}")
            repeats += 1
            if repeats > 100 * queries:
                break
            continue
        if arch in cache:
            repeats += 1
            if repeats > 100 * queries:
                break
            strategy.tell(arch, cache[arch])
            continue
        acc = float(evaluate(arch))
        cache[arch] = acc
        trace.queries.append((arch, acc))
        strategy.tell(arch, acc)
        if on_query is not None:
            on_query(trace)
    return trace


def check_problem(problem: Problem) -> None:
    if problem.pool is not None and not problem.pool:
        raise InputError(f"no architecture is predicted at or under {problem.target_ms:g} ms; raise the target")
