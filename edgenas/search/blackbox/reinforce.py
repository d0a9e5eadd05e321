"""REINFORCE with the ENAS LSTM controller (``search/enas.py``).

The controller emits the decisions one by one. Each round it draws ``draws`` architectures in
one batched pass; those predicted over the latency target are dropped (never evaluated, no
query spent), and up to ``per_round`` feasible unseen ones are queried. The controller then
takes one Adam step on the round's evaluated samples (and any feasible repeats, rewarded from
the cache at no query cost):

    mean over samples of  -(accuracy/100 - baseline) * log p(arch) - entropy_w * entropy

with an exponential moving-average baseline (Williams 1992; Zoph & Le 2017; Pham et al. 2018).
So the policy only ever proposes feasible architectures and learns only from them. A round
that yields nothing new and feasible falls back to one uniformly random feasible arch.
"""

from __future__ import annotations

import torch

from edgenas.search.blackbox.base import BlackBoxStrategy, register_blackbox
from edgenas.search.base import update


@register_blackbox
class Reinforce(BlackBoxStrategy):
    """REINFORCE with the ENAS LSTM controller; infeasible samples dropped, never evaluated."""

    name = "reinforce"

    def __init__(self, problem, seed=0, **options):
        super().__init__(problem, seed, **options)
        from edgenas.search.enas import Controller

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.controller = Controller(list(problem.sizes), hidden=int(options.get("hidden", 32)))
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=float(options.get("lr", 0.05)))
        self.gen = torch.Generator().manual_seed(seed)
        self.entropy_w = float(options.get("entropy", 1e-3))
        self.decay = float(options.get("baseline_decay", 0.8))
        self.temperature = float(options.get("temperature", 5.0))
        self.draws = int(options.get("draws", 64))
        self.per_round = int(options.get("per_round", 5))
        self.baseline = None
        self.cache: dict = {}
        self.queue: list = []  # archs of this round still to be evaluated
        self.round: list = []  # (arch, log_p, entropy) of this round's samples with a reward

    def _new_round(self):
        if self.round:
            self._update()
        choices, log_p, ent = self.controller.sample_batch(self.draws, self.gen, temperature=self.temperature)
        picked = set()
        for i, row in enumerate(choices.tolist()):
            arch = tuple(row)
            if arch in picked or not self.problem.feasible(arch):
                continue
            if arch in self.cache or len(self.queue) < self.per_round:
                picked.add(arch)
                self.round.append((arch, log_p[i], ent[i]))
                if arch not in self.cache:
                    self.queue.append(arch)
        self.queue.reverse()

    def _update(self):
        rewards = torch.tensor([self.cache[a] / 100.0 for a, _, _ in self.round])
        mean = float(rewards.mean())
        self.baseline = mean if self.baseline is None else self.decay * self.baseline + (1 - self.decay) * mean
        log_p = torch.stack([lp for _, lp, _ in self.round])
        ent = torch.stack([e for _, _, e in self.round])
        loss = (-(rewards - self.baseline) * log_p - self.entropy_w * ent).mean()
        update(self.opt, loss, self.controller.parameters())
        self.round = []

    def ask(self):
        if not self.queue:
            self._new_round()
        while self.queue:
            a = self.queue.pop()
            if a not in self.seen:
                return a
        return self.random_unseen()

    def tell(self, arch, accuracy):
        super().tell(arch, accuracy)
        self.cache[arch] = accuracy
