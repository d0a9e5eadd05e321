"""Random search: the baseline every result is shown against.

Under the same target and budget: architectures are drawn uniformly among those *predicted* at
or under the target, and the weight-step budget is split evenly between them, each trained from
scratch for ``steps / n`` steps and scored on the arch split. The pipeline then retrains the
best ones exactly as it does for every other strategy.
"""

from __future__ import annotations

import torch

from edgenas.search.base import Candidate, Strategy, cosine_lr, register_strategy, set_lr, update
from edgenas.search.data import accuracy


@register_strategy
class RandomStrategy(Strategy):
    """Random search: feasible uniform samples, budget split evenly, trained from scratch."""

    name = "random"

    def setup(self, ctx):
        self.n = int(self.options.get("samples", max(2, min(ctx.budget.population, ctx.budget.steps // 25))))
        self.per = max(1, ctx.budget.steps // self.n)
        self.archs = [ctx.sample_feasible() for _ in range(self.n)]
        self.results: list[tuple] = []  # (arch, acc)
        self.model = None
        self.lr = float(self.options.get("lr", 0.05))

    def _start(self, ctx, i):
        torch.manual_seed(ctx.seed * 1000 + i)
        self.model = ctx.search_space.build(self.archs[i]).to(ctx.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.9, nesterov=True,
                                   weight_decay=4e-5)

    def step(self, ctx):
        i, j = divmod(self.step_count, self.per)
        if i >= self.n:
            self.step_count += 1
            return {}
        if j == 0 or self.model is None:
            self._start(ctx, i)
            pending = getattr(self, "_pending", None)
            if pending is not None and j > 0:
                self.model.load_state_dict(pending["model"])
                self.opt.load_state_dict(pending["opt"])
            self._pending = None
        set_lr(self.opt, cosine_lr(j, self.per, self.lr))
        x, y = ctx.batch("weights")
        loss = torch.nn.functional.cross_entropy(self.model(x), y)
        update(self.opt, loss)
        self.step_count += 1
        row = {"ce": loss.item(), "sample": i}
        if j == self.per - 1:
            acc = accuracy(self.model, ctx.arch_batches, limit=ctx.budget.eval_examples, device=ctx.device)
            self.results.append((self.archs[i], acc))
            row["proxy_acc"] = acc
            self.model = None
        return row

    def candidates(self, ctx):
        return [Candidate(a, ctx.predicted_ms(a), acc, "random sample", self.step_count) for a, acc in self.results]

    def state_dict(self):
        s = {**super().state_dict(), "archs": self.archs, "results": self.results}
        if self.model is not None:
            s["model"], s["opt"] = self.model.state_dict(), self.opt.state_dict()
        return s

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.archs, self.results = s["archs"], s["results"]
        self.model = None
        self._pending = s if "model" in s else None  # restored when step() rebuilds the sample's model
