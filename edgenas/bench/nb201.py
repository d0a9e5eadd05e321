"""``edgenas bench nb201``: search quality on NAS-Bench-201 with real device latency.

For one (accuracy, latency) table and one target, every strategy runs ``seeds`` times for
``queries`` queries of a ``TabularEvaluator``; the pick after q queries is the most accurate
architecture queried so far (every query is predicted feasible). Scores, on the *true* table:

* regret = constrained optimum - true accuracy of the pick (points; the optimum is the most
  accurate architecture whose true latency is <= target);
* feasible = the pick's true latency <= target;
* queries to within 0.5 points: the first q whose pick is feasible with regret <= 0.5.

Exact mode: the search sees the true latency. Realistic mode (``fit_n``, see ``edgenas.bench.fitted``):
the search sees only the latency predicted by the model ``edgenas tables fit`` fits on ``fit_n`` measured
networks, against a target tightened by a margin learned from those networks' held-out error: the
conformal ``coverage`` quantile (default 0.95) of their ratios measured / predicted. With ``verify_k``,
the team measures at most k of the queried candidates before it picks (a pick is then feasible on its
own measurement), and the search may explore further (the margin is the ``explore`` quantile instead).

Targets given as a quantile are quantiles of the true latency over the connected architectures
of the table (the ~250-350 cells whose output is cut off by ``none`` edges measure ~0 ms and
are not networks one would deploy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgenas.spaces import nb201_arch as enc
from edgenas.bench.evaluator import TabularEvaluator
from edgenas.bench.fitted import FittedLatency, best_gain, fit_latency, refit, verify_pick
from edgenas.errors import InputError
from edgenas.search.blackbox.base import Problem, create_blackbox, list_blackbox, run_blackbox

WITHIN = 0.5
# Verify mode: the search explores up to target / (this conformal quantile of the model's held-out ratios),
# i.e. every network with at least this chance of being feasible. Chosen among 0.01, 0.05, 0.25 on seeds 0-9
# (300 queries, k = 10, the 12 cells of benchmarks/search_quality.py): gp-ei's mean regret 0.92 / 0.16 / 0.25;
# a wider search finds the optimum more often but fills the top of the queried list with networks the model
# under-predicts, a narrower one cuts the optimum off.
EXPLORE = 0.05
# Active mode (``active`` > 0): one deliberate measurement after every ACTIVE_EVERY queries, until ``active`` are spent.
ACTIVE_EVERY = 20


@dataclass
class Table:
    accuracy: np.ndarray  # over codes, NaN = missing
    latency: np.ndarray
    # code of the network whose measurement ``latency`` holds (HW-NAS-Bench-360 measured one per
    # isomorphism class); None: every architecture its own
    rep: np.ndarray | None = None

    def __post_init__(self):
        self.valid = np.isfinite(self.accuracy) & np.isfinite(self.latency)
        if not self.valid.any():
            raise InputError("the accuracy and latency sources share no architecture")
        self.rep = np.arange(enc.N_ARCHS) if self.rep is None else np.asarray(self.rep, dtype=np.int64)
        self._fits: dict = {}
        self.archs = enc.all_archs()
        self.arch_tuples = [enc.from_code(c) for c in range(enc.N_ARCHS)]  # pools are rebuilt on every refit
        self.connected = enc.all_live().any(axis=1)
        self.features = enc.all_features()  # surrogate features

    def target_for_quantile(self, q: float) -> float:
        """The q-quantile of true latency over connected architectures."""
        if not 0 < q < 1:
            raise InputError(f"--target-quantile must be in (0, 1), got {q}")
        return float(np.quantile(self.latency[self.valid & self.connected], q))

    def optimum(self, target_ms: float) -> tuple[int, float]:
        # disconnected cells (output cut off by ``none`` edges: a constant network, ~0 ms on the
        # LiteRT rows) are not networks anyone deploys; they stay queryable but never set the optimum
        ok = self.valid & self.connected & (self.latency <= target_ms)
        if not ok.any():
            fastest = float(np.min(self.latency[self.valid & self.connected]))
            raise InputError(f"no architecture is at or under {target_ms:g} ms (the fastest takes {fastest:.4g} ms); "
                             "raise the target")
        acc = np.where(ok, self.accuracy, -np.inf)
        code = int(np.argmax(acc))
        return code, float(acc[code])

    def fitted(self, fit_n: int, seed: int) -> FittedLatency:
        """The realistic mode's model for a seed (fitted once per table: every strategy and target shares it)."""
        key = (fit_n, seed)
        if key not in self._fits:
            self._fits[key] = fit_latency(self, fit_n, seed)
        return self._fits[key]


@dataclass
class Setting:
    """What one seeded run of the search sees."""

    predicted: np.ndarray  # latency the search believes, over codes (inf: unknown)
    search_target: float
    margin: float = 1.0  # the search target is target / margin
    fit: FittedLatency | None = None


def make_setting(table: Table, target_ms: float, fit_n: int = 0, seed: int = 0, coverage: float = 0.95,
                 verify_k: int = 0, explore: float = EXPLORE, local_n: int = 0,
                 fit: FittedLatency | None = None) -> Setting:
    """Exact: the true latency and target. Realistic: the fitted model's predictions (``fit``, default the
    seed's first fit) and a target divided by the conformal ``coverage`` quantile of its held-out ratios
    (never below 1), or with ``verify_k`` by the ``explore`` quantile (the final measurements, not the margin,
    make the pick safe). ``local_n``: those ratios only of the measured networks predicted nearest the target."""
    if not fit_n:
        return Setting(np.where(table.valid, table.latency, np.inf), target_ms)
    fit = (fit or table.fitted(fit_n, seed)).near(target_ms, local_n)
    margin = fit.quantile(explore) if verify_k else max(1.0, fit.quantile(coverage))
    return Setting(fit.predicted, target_ms / margin, margin, fit)


def make_problem(table: Table, setting: Setting) -> Problem:
    feasible = np.flatnonzero(setting.predicted <= setting.search_target)
    if not len(feasible):
        raise InputError(f"no architecture is predicted under the search target {setting.search_target:.4g} ms "
                         f"(target / safety margin {setting.margin:.3f}); raise the target or measure more networks")
    feats = table.features
    pred = setting.predicted
    return Problem(sizes=[enc.N_OPS] * enc.N_EDGES, predicted_ms=lambda a: float(pred[enc.to_code(a)]),
                   target_ms=setting.search_target, pool=[table.arch_tuples[c] for c in feasible],
                   featurize=lambda archs: feats[[enc.to_code(a) for a in archs]], neighbours=enc.neighbours)


@dataclass
class RunResult:
    regret: np.ndarray  # per query count 1..Q (NaN before the first query or without a pick)
    feasible: np.ndarray  # bool per query count
    within: int | None  # first query count with a feasible pick within 0.5 points
    margin: float = 1.0
    no_pick: bool = False  # realistic mode: nothing predicted under target / margin
    measured: np.ndarray | None = None  # verify mode: extra measurements behind the pick, per query count
    verified: np.ndarray | None = None  # verify mode: the pick met the target on its own measurement
    active: np.ndarray | None = None  # active mode: of ``measured``, those made during the search
    snapshots: list | None = None  # active mode: what the team knew from each query count on (``Snapshot``)


@dataclass
class Snapshot:
    """What the team knows from query count ``after`` on (active mode: after each deliberate measurement)."""

    after: int
    fit: FittedLatency  # the (refitted) model with the margin in use
    known: dict = field(default_factory=dict)  # representative's code -> its measurement (ms)
    used: int = 0  # extra measurements made during the search so far


def score(table: Table, trace, queries: int, target_ms: float, optimum: float, verify_k: int = 0,
          setting: Setting | None = None, coverage: float = 0.95, snapshots: list | None = None) -> RunResult:
    """Regret and true feasibility of the pick after every query count.

    Without ``verify_k`` the pick is the most accurate architecture queried. With it (realistic mode,
    ``setting.fit`` given), the pick after q queries is ``fitted.verify_pick`` over the first q queries:
    at most ``verify_k`` of them measured (their table latency), the most accurate measured feasible one
    picked; the measurements are counted per query count. ``snapshots`` (active mode): the model, margin and
    measurements in force from each query count on; those measurements are free to the final check and
    counted with it."""
    regret = np.full(queries, np.nan)
    feasible = np.zeros(queries, dtype=bool)
    codes = np.array([enc.to_code(a) for a, _ in trace.queries[:queries]], dtype=np.int64)
    accs = np.array([acc for _, acc in trace.queries[:queries]], dtype=float)
    measured = verified = active = None
    if verify_k:
        snaps = snapshots or [Snapshot(0, setting.fit)]
        measured, verified = np.zeros(queries, dtype=int), np.zeros(queries, dtype=bool)
        active = np.zeros(queries, dtype=int)
        last, s, p = None, -1, None
        for i in range(queries):
            n = min(i + 1, len(codes))
            now = s
            while now + 1 < len(snaps) and snaps[now + 1].after <= n:
                now += 1
            if now != s:  # a new model and margin: every candidate's P(feasible) changes
                s, last = now, None
                fit = snaps[s].fit
                p = fit.p_feasible(fit.predicted[codes], target_ms) if len(codes) else np.zeros(0)
            # a query with P(feasible) = 0 is never measured nor picked (unless its class was measured): the
            # pick stands
            new = n and (last is None or n != last[0])
            if new and (last is None or p[n - 1] > 0 or table.rep[codes[n - 1]] in snaps[s].known):
                v = verify_pick(codes[:n], accs[:n], p[:n], lambda c: table.latency[c], target_ms, verify_k,
                                coverage, table.rep[codes[:n]], snaps[s].known)
                last = (n, v)
            if last is None or last[1].code is None:
                continue
            v = last[1]
            measured[i], verified[i], active[i] = v.measurements + snaps[s].used, v.verified, snaps[s].used
            regret[i] = optimum - table.accuracy[v.code]
            feasible[i] = table.latency[v.code] <= target_ms
    else:
        best = -1
        for i in range(queries):
            if i < len(codes) and (best < 0 or accs[i] > accs[best]):
                best = i
            if best >= 0:
                regret[i] = optimum - table.accuracy[codes[best]]
                feasible[i] = table.latency[codes[best]] <= target_ms
    ok = np.flatnonzero(feasible & (regret <= WITHIN + 1e-9))
    return RunResult(regret, feasible, int(ok[0]) + 1 if len(ok) else None, measured=measured, verified=verified,
                     active=active)


class ActiveLearner:
    """Active mode: the team measures during the search, and every measurement goes back into the fit.

    After every ``every`` queries (until ``budget`` measurements are spent) it measures the queried candidate
    of largest expected gain, P(feasible) x (accuracy - the best measured-feasible accuracy so far, else the
    lowest queried): first the likeliest pick, then, once one is verified, more accurate networks whose
    feasibility is less certain, i.e. the boundary where the model's error decides the pick. The model is
    refitted on all measured networks (``fitted.refit``), the margin recomputed from them alone, and the search
    continues against the new predictions. A measured network's class (``Table.rep``) is settled: the search
    sees its measurement, not a prediction, so a class measured over the target drops out of the search even
    where the margin would let it in (the networks measured to fit the model are settled from the start)."""

    def __init__(self, table, problem, target_ms, seed, budget, every, coverage, explore, local_n, raw):
        self.table, self.problem, self.target, self.seed = table, problem, target_ms, seed
        self.budget, self.every, self.coverage, self.explore, self.local_n = budget, every, coverage, explore, local_n
        self.raw = raw  # the model without the local margin (what refit extends)
        self.snapshots: list[Snapshot] = []
        self._update(0, dict(zip(raw.measured.tolist(), raw.measured_ms.tolist())), 0)

    def setting(self, known: dict) -> Setting:
        """The search's view: predictions against target / margin, measured classes at their measurement."""
        s = make_setting(self.table, self.target, len(self.raw.measured), self.seed, self.coverage, 1,
                         self.explore, self.local_n, fit=self.raw)
        reps = np.fromiter(known, dtype=np.int64, count=len(known))
        ms = np.full(enc.N_ARCHS, np.nan)
        ms[reps] = np.fromiter(known.values(), dtype=float, count=len(known))
        by_code = ms[self.table.rep]
        # against target / margin, a class measured at m ms is in the search exactly when m <= target
        s.predicted = np.where(np.isfinite(by_code) & self.table.valid, by_code / s.margin, s.predicted)
        return s

    def _update(self, n: int, known: dict, used: int) -> None:
        setting = self.setting(known)
        try:
            new = make_problem(self.table, setting)
        except InputError:  # nothing predicted feasible any more: the search keeps its last view
            new = self.problem
        self.problem.predicted_ms, self.problem.target_ms, self.problem.pool = \
            new.predicted_ms, new.target_ms, new.pool
        self.snapshots.append(Snapshot(n, setting.fit, known, used))

    def __call__(self, trace) -> None:
        n, snap = len(trace.queries), self.snapshots[-1]
        if n % self.every or snap.used >= self.budget:
            return
        codes = np.array([enc.to_code(a) for a, _ in trace.queries], dtype=np.int64)
        accs = np.array([acc for _, acc in trace.queries], dtype=float)
        reps = self.table.rep[codes].tolist()
        p = snap.fit.p_feasible(snap.fit.predicted[codes], self.target)
        ok = np.array([snap.known.get(r, np.inf) <= self.target for r in reps])
        i = best_gain(accs, p, (p > 0) & np.array([r not in snap.known for r in reps]),
                      float(accs[ok].max() if ok.any() else accs.min()))
        if i is None:
            return
        rep = reps[i]
        self.raw = refit(self.table, self.raw, [rep], self.seed)
        self._update(n, {**snap.known, rep: float(self.table.latency[rep])}, snap.used + 1)


def run_one(table: Table, strategy: str, target_ms: float, queries: int, seed: int, fit_n: int = 0,
            coverage: float = 0.95, optimum: float | None = None, options: dict | None = None,
            verify_k: int = 0, explore: float = EXPLORE, active: int = 0, local_n: int = 0,
            every: int = ACTIVE_EVERY) -> RunResult:
    optimum = table.optimum(target_ms)[1] if optimum is None else optimum
    setting = make_setting(table, target_ms, fit_n, seed, coverage, verify_k, explore, local_n)
    try:
        problem = make_problem(table, setting)
    except InputError:
        if not fit_n:
            raise
        # the model's margin left nothing predicted feasible: this run picks nothing (counted as
        # infeasible, no regret), as a team would find that it must measure more networks
        return RunResult(np.full(queries, np.nan), np.zeros(queries, dtype=bool), None, setting.margin, True)
    evaluator = TabularEvaluator(table.accuracy, table.latency)
    strat = create_blackbox(strategy, problem, seed, **(options or {}))
    learner = None
    if fit_n and verify_k and active:
        learner = ActiveLearner(table, problem, target_ms, seed, active, every, coverage, explore, local_n,
                                table.fitted(fit_n, seed))
    trace = run_blackbox(strat, evaluator.accuracy, queries, on_query=learner)
    r = score(table, trace, queries, target_ms, optimum, verify_k if fit_n else 0, setting, coverage,
              learner.snapshots if learner else None)
    if learner is not None:
        r.snapshots = learner.snapshots
    r.margin = setting.margin if learner is None else learner.snapshots[-1].fit.quantile(explore)
    return r


def checkpoints(queries: int) -> list[int]:
    return sorted({q for q in (10, 30, 100, 300, 1000, 3000) if q < queries} | {queries})


@dataclass
class BenchResult:
    target_ms: float
    optimum: float
    optimum_arch: str
    feasible_archs: int
    queries: int
    seeds: int
    fit_n: int
    margin_quantile: float
    verify_k: int = 0
    strategies: dict = field(default_factory=dict)  # name -> summary dict
    curves: dict = field(default_factory=dict)  # name -> (seeds, queries) regret array

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "curves"}


def summarize(runs: list[RunResult], queries: int) -> dict:
    reg = np.stack([r.regret for r in runs])
    feas = np.stack([r.feasible for r in runs])
    within = [r.within for r in runs]
    reached = [w for w in within if w is not None]
    out = {"at": {}}
    for q in checkpoints(queries):
        col = reg[:, q - 1]
        some = bool(np.isfinite(col).any())
        out["at"][str(q)] = {"regret_mean": float(np.nanmean(col)) if some else float("nan"),
                             "regret_std": float(np.nanstd(col)) if some else float("nan"),
                             "feasible_share": float(feas[:, q - 1].mean())}
        checked = [r for r in runs if r.measured is not None]
        if checked:  # verify mode: what the final check cost and how often it found a feasible pick
            out["at"][str(q)]["measurements_mean"] = float(np.mean([r.measured[q - 1] for r in checked]))
            out["at"][str(q)]["measurements_max"] = int(max(r.measured[q - 1] for r in checked))
            out["at"][str(q)]["verified_share"] = float(np.mean([r.verified[q - 1] for r in checked]))
            out["at"][str(q)]["active_mean"] = float(np.mean([r.active[q - 1] for r in checked]))
    out["within_0.5_share"] = len(reached) / len(runs)
    out["within_0.5_median_queries"] = float(np.median(reached)) if reached else None
    out["margin_mean"] = float(np.mean([r.margin for r in runs]))
    out["margin_per_seed"] = [round(float(r.margin), 4) for r in runs]  # the search target is target / margin
    out["no_pick_runs"] = sum(r.no_pick for r in runs)
    return out


def run_bench(table: Table, target_ms: float, strategies: list[str], queries: int, seeds: int, fit_n: int = 0,
              margin_quantile: float = 0.95, seed0: int = 0, on_run=None, verify_k: int = 0,
              explore: float = EXPLORE, active: int = 0, local_n: int = 0) -> BenchResult:
    known = list_blackbox()
    for s in strategies:
        if s not in known:
            raise InputError(f"unknown strategy {s!r}; known: {', '.join(known)}")
    if queries < 1 or seeds < 1:
        raise InputError("--queries and --seeds must be at least 1")
    if verify_k < 0:
        raise InputError(f"--verify-k must be >= 0, got {verify_k}")
    if not 0.5 <= margin_quantile < 1:
        raise InputError(f"--margin-quantile must be in [0.5, 1), got {margin_quantile}")
    if verify_k and not fit_n:
        raise InputError("--verify-k checks a fitted model's picks: give --fit-n too")
    if active < 0 or local_n < 0:
        raise InputError(f"--active and --local-margin must be >= 0, got {active} and {local_n}")
    if (active or local_n) and not verify_k:
        raise InputError("--active and --local-margin refine the check of a fitted model: give --fit-n and --verify-k")
    code, optimum = table.optimum(target_ms)
    res = BenchResult(target_ms, optimum, enc.to_str(enc.from_code(code)),
                      int((table.valid & table.connected & (table.latency <= target_ms)).sum()), queries, seeds,
                      fit_n, margin_quantile, verify_k)
    for s in strategies:
        runs = []
        for k in range(seeds):
            runs.append(run_one(table, s, target_ms, queries, seed0 + k, fit_n, margin_quantile, optimum,
                                verify_k=verify_k, explore=explore, active=active, local_n=local_n))
            if on_run:
                on_run(s, k + 1, seeds)
        res.strategies[s] = summarize(runs, queries)
        res.curves[s] = np.stack([r.regret for r in runs])
    return res


def plot(res: BenchResult, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.arange(1, res.queries + 1)
    for name, curve in res.curves.items():
        mean = np.nanmean(curve, axis=0)
        half = 1.96 * np.nanstd(curve, axis=0) / np.sqrt(curve.shape[0])
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.axhline(WITHIN, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("queries")
    ax.set_ylabel("regret (points of accuracy)")
    mode = f", latency model fitted on {res.fit_n} nets" if res.fit_n else ""
    ax.set_title(title or f"target {res.target_ms:.4g} ms, optimum {res.optimum:.2f}%{mode}", fontsize=9)
    ax.legend(fontsize=8, title=f"mean, 95% CI, {res.seeds} seeds", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
