"""Latency-penalised DARTS (Liu et al., ICLR 2019), first or second order.

The supernet runs every op on every edge, weighted by softmax(alpha). Weight steps use the
weights split; alpha steps use the arch split with ``CE + latency penalty`` (``hinge`` or the
``smooth`` hinge, see ``objectives.py``) on the expected latency of the *derived* cell (see
``ExpectedLatency(mode='derived')``).

Second order uses DARTS' unrolled approximation: a virtual weight step w' = w - xi * dL_train/dw,
the arch gradient at w', and the finite-difference Hessian-vector product
(dL_train/dalpha(w+) - dL_train/dalpha(w-)) / 2eps.

Guard against the collapse into skip connections (DARTS degenerates to parameter-free cells
when trained long): by default **early stopping on the skip count** (DARTS+, Liang et al. 2019):
the search stops once the derived normal cell holds ``max_skips`` (2) skip connections or more,
and the last derived cell before that is kept. Optionally ``skip_dropout`` (P-DARTS, Chen et
al. 2019): operation-level dropout on skip connections during weight steps. The space says what a
skip connection is and where collapse is counted (``SearchSpace.skip_op``, ``skip_count``); in a
space without one both are off.

``partial_channels`` K > 1 searches PC-DARTS' supernet (Xu et al., ICLR 2020; see
``DartsSupernet``): ops on 1/K of each edge's channels, plus per-edge betas that the arch
optimiser trains with the alphas. The derived cell is deployed, and priced, at full width. On
darts/small (batch 32, CPU) K=4 ran 2.5-2.65x the naive every-op step at 0.31x its peak memory
(benchmarks/results/search_throughput_darts_cpu_pc4.md).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from edgenas.errors import InputError
from edgenas.search.base import (Strategy, cosine_lr, rank_candidates, register_strategy, set_lr,
                                 update)
from edgenas.search.objectives import latency_loss

def arch_parameters(net) -> dict:
    """The parameters the arch optimiser owns, by name: the alphas, and PC-DARTS' edge betas."""
    return {n: p for n, p in net.named_parameters() if n.startswith(("arch_params.", "edge_params."))}


@register_strategy
class DartsStrategy(Strategy):
    """DARTS (1st/2nd order) with a hinge or smooth latency penalty; early stop on skip collapse."""

    name = "darts"
    expected_latency = "derived"  # the penalty prices the cell that derive() will keep
    needs_op_latencies = True
    cli_options = ("order",)

    def setup(self, ctx):
        o = self.options
        self.order = int(o.get("order", 1))
        self.loss_form = o.get("latency_loss", "hinge")
        self.lam = float(o.get("lam", 2.0))
        self.max_skips = int(o.get("max_skips", 2))
        self.skip_dropout = float(o.get("skip_dropout", 0.0))
        self.skip_columns = ctx.search_space.skip_columns()  # {arch param: its skip option's column}
        self.warmup = int(o.get("warmup_fraction", 0.2) * ctx.budget.steps)
        # the guard watches the second half: early derivations of near-uniform alphas are noise
        self.guard_start = int(o.get("guard_start_fraction", 0.5) * ctx.budget.steps)
        k = o.get("partial_channels", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"darts: partial channels must be a positive integer, got {k!r}")
        net = ctx.search_space.supernet(partial_channels=k) if k > 1 else ctx.search_space.supernet()
        self.net = net.to(ctx.device)
        if getattr(self.net, "partial_channels", 1) != k:
            raise InputError(f"darts: partial channels (PC-DARTS) need a supernet that has them; "
                             f"the {ctx.search_space.name} space's has not")
        self.w_lr = float(o.get("lr", 0.05))
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=0.9, weight_decay=3e-4)
        self.a_opt = torch.optim.Adam(list(arch_parameters(self.net).values()), lr=float(o.get("arch_lr", 6e-3)),
                                      betas=(0.5, 0.999), weight_decay=1e-3)
        self.stopped_at = None
        self.history = []  # derived archs per evaluation point: (step, arch)
        self.gen = torch.Generator().manual_seed(ctx.seed)

    def _weights(self, train: bool):
        w = self.net.softmax_weights()
        if train and self.skip_dropout > 0:
            w = {k: v.clone() for k, v in w.items()}
            for k, col in self.skip_columns.items():
                v = w[k]
                keep = (torch.rand(v.shape[0], generator=self.gen) >= self.skip_dropout).float().to(v.device)
                v[:, col] = v[:, col] * keep
        return w

    def step(self, ctx):
        row = {}
        if self.step_count >= self.warmup:
            row.update(self._arch_step(ctx))
        set_lr(self.w_opt, cosine_lr(self.step_count, ctx.budget.steps, self.w_lr, 1e-3))
        x, y = ctx.batch("weights")
        w = {k: v.detach() for k, v in self._weights(train=True).items()}
        loss = torch.nn.functional.cross_entropy(self.net(x, w), y)
        update(self.w_opt, loss, self.net.weight_parameters())
        row["ce"] = loss.item()
        self.step_count += 1
        if self.step_count >= self.warmup:
            arch = self.derived(ctx)
            row["skips"] = ctx.search_space.skip_count(arch)
            if not self.history or self.history[-1][1] != arch:
                self.history.append((self.step_count, arch))
            if row["skips"] >= self.max_skips and self.stopped_at is None and self.step_count >= self.guard_start:
                self.stopped_at = self.step_count
        return row

    def stop_reason(self) -> str | None:
        return None if self.stopped_at is None else "skip-connection guard (DARTS+)"

    def _arch_loss(self, ctx, x, y, params=None):
        probs = self.net.softmax_weights()
        out = self.net(x, probs) if params is None else functional_call(self.net, params, (x, probs))
        ce = torch.nn.functional.cross_entropy(out, y)
        expected = ctx.expected(probs)
        return latency_loss(self.loss_form, ce, expected, ctx.target_ms, lam=self.lam), ce, expected

    def _arch_step(self, ctx) -> dict:
        xv, yv = ctx.batch("arch")
        alphas = list(arch_parameters(self.net).values())
        if self.order == 1:
            loss, ce, expected = self._arch_loss(ctx, xv, yv)
            self.a_opt.zero_grad(set_to_none=True)
            loss.backward()
        else:
            loss, ce, expected = self._unrolled(ctx, xv, yv, alphas)
        self.a_opt.step()
        self.net.zero_grad(set_to_none=True)
        return {"arch_ce": ce.item(), "expected_ms": expected.item(), "arch_loss": loss.item()}

    def _unrolled(self, ctx, xv, yv, alphas):
        """DARTS' second-order step (finite-difference Hessian-vector product)."""
        xt, yt = ctx.batch("weights")
        arch = arch_parameters(self.net)
        names = [n for n, _ in self.net.named_parameters() if n not in arch]
        weights = [p for n, p in self.net.named_parameters() if n not in arch]
        buffers = dict(self.net.named_buffers())
        xi = self.w_opt.param_groups[0]["lr"]
        train_loss = torch.nn.functional.cross_entropy(self.net(xt, self.net.softmax_weights()), yt)
        gw = torch.autograd.grad(train_loss, weights, allow_unused=True)
        unrolled = {n: (p - xi * g).detach().requires_grad_(True) if g is not None else p.detach()
                    for n, p, g in zip(names, weights, gw)}
        params = {**unrolled, **arch, **buffers}
        loss, ce, expected = self._arch_loss(ctx, xv, yv, params)
        dw = torch.autograd.grad(loss, [unrolled[n] for n in names if unrolled[n].requires_grad], retain_graph=True,
                                 allow_unused=True)
        dalpha = torch.autograd.grad(loss, alphas)
        dws = {}
        it = iter(dw)
        for n in names:
            if unrolled[n].requires_grad:
                dws[n] = next(it)
        norm = torch.sqrt(sum((d * d).sum() for d in dws.values() if d is not None)).clamp_min(1e-12)
        eps = 0.01 / norm
        hessian = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for n, p in zip(names, weights):
                    if dws.get(n) is not None:
                        p.add_(sign * eps * dws[n])
            tl = torch.nn.functional.cross_entropy(self.net(xt, self.net.softmax_weights()), yt)
            hessian.append(torch.autograd.grad(tl, alphas))
            with torch.no_grad():
                for n, p in zip(names, weights):
                    if dws.get(n) is not None:
                        p.sub_(sign * eps * dws[n])
        self.a_opt.zero_grad(set_to_none=True)
        for a, da, hp, hm in zip(alphas, dalpha, hessian[0], hessian[1]):
            a.grad = da - xi * (hp - hm) / (2 * eps)
        return loss, ce, expected

    def derived(self, ctx):
        return ctx.search_space.derive({k: v.detach() for k, v in self.net.softmax_weights().items()})

    def candidates(self, ctx):
        """Derived cells along the search (the last ones first), ranked with shared weights."""
        picks = [(self.step_count, self.derived(ctx))] if self.stopped_at is None else []
        picks += [(s, a) for s, a in reversed(self.history) if ctx.search_space.skip_count(a) < self.max_skips]
        return rank_candidates(self.net, [(a, f"derived at step {s}", s) for s, a in picks[: ctx.budget.population]],
                               ctx)

    def state_dict(self):
        return {**super().state_dict(), "net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "stopped_at": self.stopped_at, "history": self.history,
                "gen": self.gen.get_state()}

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.net.load_state_dict(s["net"])
        self.w_opt.load_state_dict(s["w_opt"])
        self.a_opt.load_state_dict(s["a_opt"])
        self.stopped_at, self.history = s["stopped_at"], s["history"]
        self.gen.set_state(s["gen"])
