"""Random search: uniform among the architectures predicted feasible, without repeats."""

from __future__ import annotations

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox


@register_blackbox
class RandomSearch(BlackBoxStrategy):
    """Uniform sampling among feasible architectures (the baseline)."""

    name = "random"

    def ask(self):
        return self.random_unseen()
