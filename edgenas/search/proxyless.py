"""ProxylessNAS (Cai et al., ICLR 2019): path binarization with two sampled paths per step.

Weight step: one path per choice point is sampled from softmax(alpha) and only its weights are
trained (binary gates; the memory-saving recipe). Architecture step, on the arch split: per
choice point two candidates are sampled from softmax(alpha), one of them active; both are
computed so that the gate gradients dL/dg_k = <dL/dout, o_k> exist, and they go to alpha
through the softmax renormalised over the pair:

    dL/dalpha_i = sum_j dL/dg_j * p~_j * (delta_ij - p~_i)

The latency term is differentiated exactly through the expected latency of softmax(alpha), in
either published form (``mul#log`` or ``add#linear``; see ``objectives.py``).
"""

from __future__ import annotations

import torch

from edgenas.search.base import (Strategy, cosine_lr, cross_entropy, rank_candidates, register_strategy,
                                 set_lr, update)
from edgenas.search.objectives import latency_loss


def sample_rows(probs: torch.Tensor, k: int, gen) -> torch.Tensor:
    """k distinct indices per row, drawn from each row's distribution (rows with < k options repeat).

    Drawn on the CPU, where the seeded generator lives (a CUDA search passes CUDA probabilities).
    """
    out = []
    for row in probs.detach().cpu():
        nz = int((row > 0).sum())
        out.append(torch.multinomial(row, min(k, nz), replacement=False, generator=gen))
    return out


@register_strategy
class ProxylessStrategy(Strategy):
    """ProxylessNAS: binarized paths (2 sampled per arch step), latency loss mul#log or add#linear."""

    name = "proxyless"
    needs_op_latencies = True

    def setup(self, ctx):
        o = self.options
        self.loss_form = o.get("latency_loss", "mul#log")
        self.lam = float(o.get("lam", 0.1))
        self.alpha_coef, self.beta = float(o.get("alpha", 0.2)), float(o.get("beta", 0.3))
        self.warmup = int(o.get("warmup_fraction", 0.25) * ctx.budget.steps)  # weights only, as ProxylessNAS
        self.net = ctx.search_space.supernet().to(ctx.device)
        self.w_lr = float(o.get("lr", 0.05))
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=0.9, nesterov=True,
                                     weight_decay=4e-5)
        self.a_opt = torch.optim.Adam(self.net.arch_params.parameters(), lr=float(o.get("arch_lr", 6e-3)),
                                      betas=(0.0, 0.999), eps=1e-8)
        self.gen = torch.Generator().manual_seed(ctx.seed)

    # ---- weights -------------------------------------------------------------------------
    def _one_path(self, probs: dict) -> dict:
        out = {}
        for name, p in probs.items():
            w = torch.zeros_like(p)
            for r, idx in enumerate(sample_rows(p.detach(), 1, self.gen)):
                w[r, idx] = 1.0
            out[name] = w
        return out

    def step(self, ctx):
        set_lr(self.w_opt, cosine_lr(self.step_count, ctx.budget.steps, self.w_lr))
        probs = {k: v.detach() for k, v in self.net.softmax_weights().items()}
        x, y = ctx.batch("weights")
        loss, _ = cross_entropy(self.net, x, y, self._one_path(probs))
        update(self.w_opt, loss, self.net.weight_parameters())
        row = {"ce": loss.item()}
        if self.step_count >= self.warmup:
            row.update(self._arch_step(ctx))
        self.step_count += 1
        return row

    # ---- architecture ------------------------------------------------------------------------
    def _arch_step(self, ctx) -> dict:
        x, y = ctx.batch("arch")
        probs = self.net.softmax_weights()
        pairs, gates, active = {}, {}, {}
        for name, p in probs.items():
            pd = p.detach()
            rows = sample_rows(pd, 2, self.gen)
            g = torch.zeros_like(pd)
            act = []
            pc = pd.cpu()
            for r, idx in enumerate(rows):
                sub = pc[r, idx] / pc[r, idx].sum()
                on = idx[torch.multinomial(sub, 1, generator=self.gen)]
                g[r, on] = 1.0
                act.append(idx.tolist())
            pairs[name], active[name] = rows, act
            gates[name] = g.requires_grad_(True)
        out = self.net(x, gates, active)
        ce = torch.nn.functional.cross_entropy(out, y)
        expected = ctx.expected(probs)
        loss = latency_loss(self.loss_form, ce, expected, ctx.target_ms, alpha=self.alpha_coef, beta=self.beta,
                            lam=self.lam)
        self.a_opt.zero_grad(set_to_none=True)
        loss.backward()  # alpha.grad: the latency path; gates.grad: the CE path through the binary gates
        with torch.no_grad():
            for name, param in self.net.arch_params.items():
                grad = torch.zeros_like(param) if param.grad is None else param.grad
                pd = probs[name].detach()
                for r, idx in enumerate(pairs[name]):
                    if len(idx) < 2:
                        continue
                    sub = pd[r, idx] / pd[r, idx].sum()
                    v = gates[name].grad[r, idx] * sub  # dL/dg_b * p~_b
                    grad[r, idx] += v - sub * v.sum()  # = sum_b dL/dg_b p~_b (delta_ab - p~_a)
                param.grad = grad
        self.a_opt.step()
        return {"arch_ce": ce.item(), "expected_ms": expected.item(), "arch_loss": loss.item()}

    # ---- results ---------------------------------------------------------------------------
    def derived(self, ctx):
        return ctx.search_space.derive({k: v.detach() for k, v in self.net.arch_params.items()})

    def candidates(self, ctx):
        """The argmax architecture, plus samples from softmax(alpha), ranked with shared weights."""
        probs = {k: v.detach() for k, v in self.net.softmax_weights().items()}
        archs = [("argmax", self.derived(ctx))]
        for _ in range(4 * ctx.budget.population):
            if len(archs) >= ctx.budget.population:
                break
            archs.append(("sampled", ctx.search_space.derive(self._one_path(probs))))
        return rank_candidates(self.net, [(arch, source, self.step_count) for source, arch in archs], ctx)

    def state_dict(self):
        return {**super().state_dict(), "net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.net.load_state_dict(s["net"])
        self.w_opt.load_state_dict(s["w_opt"])
        self.a_opt.load_state_dict(s["a_opt"])
        self.gen.set_state(s["gen"])
