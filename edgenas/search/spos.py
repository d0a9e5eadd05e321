"""One-shot SPOS (Guo et al., ECCV 2020): uniform single-path supernet training, then evolution.

Every weight step trains one uniformly sampled path (a valid derived architecture), so all
paths get trained equally. After the budget, an evolutionary search (population, top-k parents,
mutation and crossover over the space's decisions) looks for the most accurate architecture
*under the latency constraint* (predicted by the table; infeasible children are rejected),
scoring each with shared weights on the arch split after re-estimating BatchNorm statistics on
a few training batches, as SPOS does.
"""

from __future__ import annotations

import torch

from edgenas.search.base import (Candidate, Strategy, cosine_lr, register_strategy, set_lr, shared_weight_accuracy,
                                 update)


@register_strategy
class SposStrategy(Strategy):
    """SPOS: uniform single-path supernet training, then latency-constrained evolution."""

    name = "spos"

    def setup(self, ctx):
        o = self.options
        self.net = ctx.search_space.supernet().to(ctx.device)
        self.w_lr = float(o.get("lr", 0.05))
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=0.9, nesterov=True,
                                     weight_decay=4e-5)
        self.generations = int(o.get("generations", 5))
        self.parents = int(o.get("parents", 10))
        self.mutation_p = float(o.get("mutation_prob", 0.1))
        self.bn_batches = int(o.get("bn_batches", 2))

    def step(self, ctx):
        set_lr(self.w_opt, cosine_lr(self.step_count, ctx.budget.steps, self.w_lr))
        arch = ctx.search_space.sample(ctx.rng)
        x, y = ctx.batch("weights")
        loss = torch.nn.functional.cross_entropy(self.net(x, ctx.search_space.arch_weights(arch)), y)
        update(self.w_opt, loss, self.net.weight_parameters())
        self.step_count += 1
        return {"ce": loss.item()}

    def _score(self, ctx, arch, cache):
        key = repr(arch)
        if key not in cache:
            acc = shared_weight_accuracy(self.net, ctx.search_space.arch_weights(arch), ctx,
                                         recalibrate_bn=self.bn_batches)
            cache[key] = (arch, acc)
        return cache[key][1]

    def _mutate(self, ctx, parent):
        sizes = ctx.search_space.decisions()
        d = ctx.search_space.decisions_of(parent)
        d = [ctx.rng.randrange(n) if ctx.rng.random() < self.mutation_p else v for v, n in zip(d, sizes)]
        return ctx.search_space.arch_from_decisions(d)

    def _crossover(self, ctx, a, b):
        da, db = ctx.search_space.decisions_of(a), ctx.search_space.decisions_of(b)
        return ctx.search_space.arch_from_decisions([x if ctx.rng.random() < 0.5 else y for x, y in zip(da, db)])

    def candidates(self, ctx):
        pop_size = ctx.budget.population
        per_gen = max(4, pop_size // max(self.generations, 1))
        cache: dict = {}
        population = [ctx.sample_feasible() for _ in range(per_gen)]
        for gen in range(self.generations):
            scored = sorted(population, key=lambda a: -self._score(ctx, a, cache))
            top = scored[: self.parents]
            ctx.log_row(phase="evolution", generation=gen, best_proxy_acc=self._score(ctx, top[0], cache),
                        evaluated=len(cache))
            children = []
            for _ in range(50 * per_gen):
                if len(children) >= per_gen:
                    break
                child = (self._mutate(ctx, ctx.rng.choice(top)) if ctx.rng.random() < 0.5
                         else self._crossover(ctx, ctx.rng.choice(top), ctx.rng.choice(top)))
                if ctx.feasible(child) and repr(child) not in cache:
                    children.append(child)
            population = top + children
        for a in population:
            self._score(ctx, a, cache)
        return [Candidate(a, ctx.predicted_ms(a), acc, "evolution", self.step_count) for a, acc in cache.values()]

    def state_dict(self):
        return {**super().state_dict(), "net": self.net.state_dict(), "w_opt": self.w_opt.state_dict()}

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.net.load_state_dict(s["net"])
        self.w_opt.load_state_dict(s["w_opt"])
