"""ENAS (Pham et al., ICML 2018): an LSTM controller, REINFORCE, shared child weights.

The controller emits the space's decisions one by one (``space.decisions()``: per DARTS node an
input pair and two ops; per ProxylessNAS layer an op). Each weight step trains the shared
weights of one sampled child on the weights split. Every ``controller_every`` steps the
controller samples ``controller_samples`` children and is updated with REINFORCE on

    reward = accuracy on an *arch-split* batch (never training accuracy) x latency factor

(MnasNet-style: (lat / T) ** w above the target, see ``objectives.latency_reward``), with a
moving-average baseline, an entropy bonus and gradient-norm clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from edgenas.search.base import (Strategy, cosine_lr, rank_candidates, register_strategy, set_lr,
                                 update)
from edgenas.search.objectives import latency_reward


class Controller(nn.Module):
    def __init__(self, sizes: list[int], hidden: int = 64):
        super().__init__()
        self.sizes = sizes
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        self.hidden = hidden
        for head in self.heads:  # start near uniform
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def sample(self, gen=None, temperature: float = 5.0, tanh_c: float = 2.5):
        h = c = torch.zeros(1, self.hidden)
        inp = self.start
        choices, log_p, entropy = [], 0.0, 0.0
        for i, n in enumerate(self.sizes):
            h, c = self.lstm(inp, (h, c))
            logits = tanh_c * torch.tanh(self.heads[i](h) / temperature)
            probs = torch.softmax(logits, -1)
            k = int(torch.multinomial(probs.detach()[0].cpu(), 1, generator=gen))  # the generator is a CPU one
            lp = torch.log_softmax(logits, -1)[0]
            log_p = log_p + lp[k]
            entropy = entropy - (probs[0] * lp).sum()
            choices.append(k)
            inp = self.embed[i](torch.tensor([k]))
        return choices, log_p, entropy

    def sample_batch(self, n: int, gen=None, temperature: float = 5.0, tanh_c: float = 2.5):
        """``n`` independent samples in one batched pass: (choices (n, len(sizes)) long tensor,
        log-probabilities (n,), entropies (n,)), differentiable like ``sample``."""
        h = c = torch.zeros(n, self.hidden)
        inp = self.start.expand(n, -1)
        choices, log_p, entropy = [], 0.0, 0.0
        for i in range(len(self.sizes)):
            h, c = self.lstm(inp, (h, c))
            logits = tanh_c * torch.tanh(self.heads[i](h) / temperature)
            lp = torch.log_softmax(logits, -1)
            k = torch.multinomial(lp.detach().exp(), 1, generator=gen)[:, 0]
            log_p = log_p + lp.gather(1, k[:, None])[:, 0]
            entropy = entropy - (lp.exp() * lp).sum(-1)
            choices.append(k)
            inp = self.embed[i](k)
        return torch.stack(choices, 1), log_p, entropy


@register_strategy
class EnasStrategy(Strategy):
    """ENAS: LSTM controller + REINFORCE (moving-average baseline), shared weights, held-out reward."""

    name = "enas"

    def setup(self, ctx):
        o = self.options
        self.net = ctx.search_space.supernet().to(ctx.device)
        self.w_lr = float(o.get("lr", 0.05))
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=0.9, nesterov=True,
                                     weight_decay=1e-4)
        self.controller = Controller(ctx.search_space.decisions())
        self.c_opt = torch.optim.Adam(self.controller.parameters(), lr=float(o.get("controller_lr", 3.5e-3)))
        self.every = int(o.get("controller_every", 10))
        self.samples = int(o.get("controller_samples", 4))
        self.entropy_w = float(o.get("entropy", 1e-3))
        self.baseline_decay = float(o.get("baseline_decay", 0.95))
        self.reward_w = float(o.get("reward_w", -0.5))
        self.baseline = None
        self.warmup = int(o.get("warmup_fraction", 0.2) * ctx.budget.steps)
        self.gen = torch.Generator().manual_seed(ctx.seed)
        self.seen: dict[str, tuple] = {}

    def _arch(self, ctx, choices):
        return ctx.search_space.arch_from_decisions(choices)

    def step(self, ctx):
        set_lr(self.w_opt, cosine_lr(self.step_count, ctx.budget.steps, self.w_lr))
        with torch.no_grad():
            choices, _, _ = self.controller.sample(self.gen)
        arch = self._arch(ctx, choices)
        x, y = ctx.batch("weights")
        loss = torch.nn.functional.cross_entropy(self.net(x, ctx.search_space.arch_weights(arch)), y)
        update(self.w_opt, loss, self.net.weight_parameters())
        row = {"ce": loss.item()}
        self.step_count += 1
        if self.step_count >= self.warmup and self.step_count % self.every == 0:
            row.update(self._controller_step(ctx))
        return row

    def _controller_step(self, ctx) -> dict:
        x, y = ctx.batch("arch")
        # batch statistics (train-mode BN, no grad): running statistics mix every sampled child
        rewards, logps, ents = [], [], []
        for _ in range(self.samples):
            choices, log_p, ent = self.controller.sample(self.gen)
            arch = self._arch(ctx, choices)
            with torch.no_grad():
                acc = float((self.net(x, ctx.search_space.arch_weights(arch)).argmax(1) == y).float().mean())
            lat = ctx.predicted_ms(arch)
            r = latency_reward(acc, lat, ctx.target_ms, self.reward_w)
            rewards.append(r)
            logps.append(log_p)
            ents.append(ent)
            self.seen[repr(arch)] = (arch, lat)
        mean_r = sum(rewards) / len(rewards)
        self.baseline = mean_r if self.baseline is None else self.baseline_decay * self.baseline + (
            1 - self.baseline_decay) * mean_r
        loss = sum(-(r - self.baseline) * lp - self.entropy_w * e for r, lp, e in zip(rewards, logps, ents)) / len(rewards)
        update(self.c_opt, loss, self.controller.parameters())
        return {"reward": mean_r, "baseline": self.baseline}

    def candidates(self, ctx):
        """Children sampled from the trained controller, ranked with shared weights on the arch split."""
        archs, seen = [], set()
        with torch.no_grad():
            for _ in range(3 * ctx.budget.population):
                if len(archs) >= ctx.budget.population:
                    break
                choices, _, _ = self.controller.sample(self.gen)
                arch = self._arch(ctx, choices)
                if repr(arch) not in seen:
                    seen.add(repr(arch))
                    archs.append((arch, "controller sample", self.step_count))
        return rank_candidates(self.net, archs, ctx)

    def state_dict(self):
        return {**super().state_dict(), "net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "controller": self.controller.state_dict(), "c_opt": self.c_opt.state_dict(),
                "baseline": self.baseline, "gen": self.gen.get_state()}

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.net.load_state_dict(s["net"])
        self.w_opt.load_state_dict(s["w_opt"])
        self.controller.load_state_dict(s["controller"])
        self.c_opt.load_state_dict(s["c_opt"])
        self.baseline = s["baseline"]
        self.gen.set_state(s["gen"])
