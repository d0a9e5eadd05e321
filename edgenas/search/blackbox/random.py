"""Random search: uniform among the architectures predicted feasible, without repeats."""

from __future__ import annotations

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox


@register_blackbox
class RandomSearch(BlackBoxStrategy):
    name = "random"
    summary = "uniform sampling among feasible architectures (the baseline)"

    def ask(self):
        return self.random_unseen()
