"""NAS-Bench-201 search-quality benchmark: encoding, black-box strategy contract, sources, CLI errors.

Most tests use synthetic tables written as the generic CSVs (no third-party data); the ones that
read HW-NAS-Bench-360 skip cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenas.bench import nb201
from edgenas.spaces import nb201_arch as enc
from edgenas.bench import sources
from edgenas.bench import fitted
from edgenas.errors import GenotypeError
from edgenas.search.blackbox import Problem, create_blackbox, list_blackbox, run_blackbox

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_encoding_round_trips_and_rejects_bad_strings():
    a = enc.from_str(ARCH0)
    assert enc.to_str(a) == ARCH0 and enc.from_code(enc.to_code(a)) == a
    assert all(tuple(enc.all_archs()[c]) == enc.from_code(c) for c in (0, 1, 777, enc.N_ARCHS - 1))
    for bad in ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|",
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(GenotypeError):
            enc.from_str(bad)


def test_live_edges():
    # only edge 3 (0->3) is on an input->output path; 0->1 feeds node 1, which reaches nothing
    a = enc.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert enc.live_edges(a) == (False, False, False, True, False, False)
    dead = enc.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")
    assert not enc.is_connected(dead)
    assert sum(not enc.is_connected(enc.from_code(c)) for c in range(enc.N_ARCHS)) == 341
    assert len(set(enc.neighbours(a))) == 24
    assert enc.features(enc.all_archs()[:5]).shape == (5, 130)


def synthetic_table(seed=0):
    """Accuracy with interactions (not additive), latency additive over live edges plus noise."""
    rng = np.random.default_rng(seed)
    archs = enc.all_archs()
    feats = enc.all_features()
    acc = 60 + 0.5 * (feats @ rng.normal(size=feats.shape[1]))
    cost = np.array([0.0, 0.05, 0.4, 1.0, 0.2])
    live = enc.all_live()
    lat = 0.3 + (cost[archs] * live).sum(1) * rng.uniform(0.95, 1.05, len(archs))
    return acc, lat


@pytest.fixture(scope="module")
def table():
    acc, lat = synthetic_table()
    return nb201.Table(acc, lat)


@pytest.mark.parametrize("name", list_blackbox())
def test_strategy_contract_feasible_deterministic_and_better_than_nothing(table, name):
    target = table.target_for_quantile(0.25)
    setting = nb201.make_setting(table, target)
    evaluator = nb201.TabularEvaluator(table.accuracy, table.latency)

    def run(seed):
        strat = create_blackbox(name, nb201.make_problem(table, setting), seed)
        return run_blackbox(strat, evaluator.accuracy, 60)

    t1, t2, t3 = run(0), run(0), run(1)
    assert [a for a, _ in t1.queries] == [a for a, _ in t2.queries]  # deterministic for a seed
    assert [a for a, _ in t1.queries] != [a for a, _ in t3.queries]
    assert len(t1.queries) == 60 and len({a for a, _ in t1.queries}) == 60  # no query spent twice
    assert all(table.latency[enc.to_code(a)] <= target for a, _ in t1.queries)  # never asks infeasible
    r = nb201.score(table, t1, 60, target, table.optimum(target)[1])
    assert r.feasible.all() and np.all(np.diff(r.regret) <= 1e-12)


def test_strategies_run_without_a_pool():
    """A space too big to enumerate: strategies fall back to sampling and mutating feasible archs."""
    sizes = [4] * 8
    problem = Problem(sizes=sizes, predicted_ms=lambda a: float(sum(a)), target_ms=10.0)
    for name in list_blackbox():
        strat = create_blackbox(name, problem, 0)
        trace = run_blackbox(strat, lambda a: float(sum(v * (i + 1) for i, v in enumerate(a))), 25)
        assert len(trace.queries) == 25 and all(sum(a) <= 10 for a, _ in trace.queries)


def test_run_blackbox_rejects_an_infeasible_ask():
    from edgenas.search.blackbox.base import BlackBoxStrategy

    class Cheat(BlackBoxStrategy):
        name = "cheat"

        def ask(self):
            return (3, 3)

    problem = Problem(sizes=[4, 4], predicted_ms=lambda a: float(sum(a)), target_ms=2.0)
    with pytest.raises(RuntimeError, match="over the target"):
        run_blackbox(Cheat(problem), lambda a: 1.0, 5)


def test_fit_mode_uses_the_tables_fit_model_and_a_conformal_margin(table):
    target = table.target_for_quantile(0.25)
    s = nb201.make_setting(table, target, fit_n=100, seed=3)
    fit = s.fit
    assert fit.model.startswith("additive/")  # what `edgenas tables fit` fits from 100 networks
    assert len(fit.measured) == len(set(fit.measured)) == 100 and len(fit.ratios) == 100
    # the margin is the conformal 95% rank of the 100 held-out ratios: the 96th smallest
    assert s.margin == pytest.approx(max(1.0, fit.ratios[95])) and s.search_target == pytest.approx(target / s.margin)
    assert fit.p_feasible([target / fit.ratios[95]], target)[0] == pytest.approx(96 / 101)
    # the synthetic latency is additive over live edges up to +-5%: the model is close, the margin small
    assert 1.0 <= s.margin < 1.1


def test_margin_sees_only_the_fitted_networks(table):
    """Changing the latency of every network the team did not measure changes nothing the search sees."""
    fit = table.fitted(60, seed=5)
    lat = table.latency.copy()
    others = np.setdiff1d(np.arange(enc.N_ARCHS), fit.measured)
    lat[others] *= np.random.default_rng(0).uniform(0.5, 2.0, len(others))
    other = nb201.Table(table.accuracy, lat).fitted(60, seed=5)
    assert np.array_equal(other.measured, fit.measured)
    assert np.array_equal(other.ratios, fit.ratios) and np.array_equal(other.predicted, fit.predicted)


def test_fit_mode_is_deterministic_for_a_seed(table):
    target = table.target_for_quantile(0.25)
    runs = [nb201.run_bench(table, target, ["evolution"], 60, 2, fit_n=80, seed0=s, verify_k=5)
            for s in (0, 0, 7)]
    assert runs[0].strategies == runs[1].strategies and np.array_equal(runs[0].curves["evolution"],
                                                                       runs[1].curves["evolution"], equal_nan=True)
    assert not np.array_equal(runs[0].curves["evolution"], runs[2].curves["evolution"], equal_nan=True)


def test_verified_picks_are_feasible_on_their_measurement():
    """A table the additive model gets wrong (latency x0.7-1.4 per network): picks the check verified meet
    the target, even where the model alone would not."""
    acc, lat = synthetic_table(1)
    lat = lat * np.random.default_rng(1).uniform(0.7, 1.4, len(lat))
    table = nb201.Table(acc, lat)
    target = table.target_for_quantile(0.25)
    optimum = table.optimum(target)[1]
    for seed in range(4):
        r = nb201.run_one(table, "evolution", target, 150, seed, fit_n=100, optimum=optimum, verify_k=10)
        assert r.verified.any() and r.measured.max() <= 10
        assert np.all(r.feasible[r.verified])  # measured = true latency here
        assert np.all(r.regret[r.verified] >= -1e-9)  # a feasible pick never beats the optimum


def wrong_table(seed=1):
    """A table the additive model gets wrong (latency x0.7-1.4 per network)."""
    acc, lat = synthetic_table(seed)
    return nb201.Table(acc, lat * np.random.default_rng(seed).uniform(0.7, 1.4, len(lat)))


def test_refit_moves_a_measured_network_toward_its_measurement():
    table = wrong_table()
    fit = table.fitted(60, seed=2)
    err = np.abs(fit.predicted - table.latency) / table.latency
    err[fit.measured] = 0
    worst = int(np.argmax(np.where(table.connected, err, 0)))  # the network the model gets most wrong
    new = fitted.refit(table, fit, [worst], seed=2)
    assert worst in new.measured and len(new.measured) == 61 and len(new.ratios) == 61
    assert abs(new.predicted[worst] - table.latency[worst]) < abs(fit.predicted[worst] - table.latency[worst])
    assert new.model == fit.model  # same level and pruning


def test_active_mode_measures_during_the_search_and_refits():
    table = wrong_table()
    target = table.target_for_quantile(0.25)
    optimum = table.optimum(target)[1]
    r = nb201.run_one(table, "evolution", target, 200, 0, fit_n=60, optimum=optimum, verify_k=5, active=4, every=20)
    snaps = r.snapshots
    assert 2 <= len(snaps) <= 5 and [s.used for s in snaps] == list(range(len(snaps)))
    assert all(s.after % 20 == 0 for s in snaps) and snaps[0].after == 0
    for before, after in zip(snaps, snaps[1:]):
        (rep,) = set(after.known) - set(before.known)  # one new measurement per step, and it enters the fit
        assert rep in after.fit.measured and rep not in before.fit.measured
        assert after.known[rep] == table.latency[rep]
    # measurements are counted: the search's plus the final check's, at most active + verify_k
    assert np.all(r.active <= r.measured) and r.measured.max() <= 4 + 5 and r.active[-1] == len(snaps) - 1
    assert np.all(r.feasible[r.verified])


def test_a_measured_class_is_in_the_search_exactly_when_it_meets_the_target():
    table = wrong_table()
    target = table.target_for_quantile(0.25)
    setting = nb201.make_setting(table, target, fit_n=60, seed=1, verify_k=5)
    problem = nb201.make_problem(table, setting)
    learner = nb201.ActiveLearner(table, problem, target, 1, 4, 20, 0.95, nb201.EXPLORE, 0, table.fitted(60, 1))
    view = learner.setting({5000: target * 1.02, 6000: target * 0.98, 7000: target * 0.5})
    assert view.margin < 1  # the search explores past the target, yet a class measured over it is out
    inside = view.predicted <= view.search_target
    assert not inside[5000] and inside[6000] and inside[7000]
    assert all(problem.feasible(table.arch_tuples[c]) == (table.latency[c] <= target) for c in learner.raw.measured)


def test_active_mode_is_deterministic_and_sees_only_measured_networks():
    """Changing the true latency of every network the team never measured changes nothing it did."""
    table = wrong_table()
    target = table.target_for_quantile(0.25)
    optimum = table.optimum(target)[1]

    def run(t, seed=3):
        return nb201.run_one(t, "gp-ei", target, 120, seed, fit_n=60, optimum=optimum, verify_k=5, active=4,
                             local_n=30)

    a, b = run(table), run(table)
    assert np.array_equal(a.regret, b.regret, equal_nan=True) and np.array_equal(a.measured, b.measured)
    assert [s.known for s in a.snapshots] == [s.known for s in b.snapshots]
    lat = table.latency.copy()
    others = np.setdiff1d(np.arange(enc.N_ARCHS), list(a.snapshots[-1].known))
    lat[others] *= np.random.default_rng(0).uniform(0.9, 1.1, len(others))
    c = run(nb201.Table(table.accuracy, lat))
    assert [(s.after, s.known) for s in c.snapshots] == [(s.after, s.known) for s in a.snapshots]
    assert np.array_equal(c.snapshots[-1].fit.ratios, a.snapshots[-1].fit.ratios)
    assert [(s.after, s.known) for s in run(table, seed=4).snapshots] != [(s.after, s.known) for s in a.snapshots]


def test_local_margin_uses_the_measured_networks_nearest_the_target():
    table = wrong_table()
    fit = table.fitted(60, seed=2)
    target = table.target_for_quantile(0.25)
    local = fit.near(target, 20)
    assert len(local.ratios) == 20 and np.array_equal(local.predicted, fit.predicted)
    near = np.argsort(np.abs(np.log(fit.held_out / target)))[:20]
    assert np.allclose(np.sort(local.ratios), np.sort(fit.measured_ms[near] / fit.held_out[near]))
    assert fit.near(target, 0) is fit and fit.near(target, 60) is fit


def test_verify_pick_counts_nothing_for_known_measurements():
    measured = []

    def measure(c):
        measured.append(c)
        return {10: 1.2, 11: 0.9}[c]

    # 10 is known over the target (never measured again), 12 known under it: the check measures only 11
    v = fitted.verify_pick([10, 11, 12], [80.0, 75.0, 70.0], [0.5, 0.5, 0.5], measure, 1.0, k=3, coverage=0.95,
                           known={10: 1.2, 12: 0.8})
    assert (v.code, v.verified, v.measurements, measured) == (11, True, 1, [11])


def test_verify_pick_measures_the_best_gain_and_never_falls_back_on_a_failed_measurement():
    lat = {10: 1.2, 11: 0.9, 12: 0.8, 13: 0.5}
    measured = []

    def measure(c):
        measured.append(c)
        return lat[c]

    codes, acc, p = [10, 11, 12, 13], [80.0, 75.0, 70.0, 60.0], [0.5, 0.5, 0.97, 0.99]
    v = fitted.verify_pick(codes, acc, p, measure, 1.0, k=10, coverage=0.95)
    # baseline 70 (12 is safe): gains 10 x 0.5 = 5 for 10, 2.5 for 11; 10 fails, 11 passes, nothing beats 75
    assert (v.code, v.verified, v.measurements) == (11, True, 2) and measured == [10, 11]
    measured.clear()
    v = fitted.verify_pick(codes, acc, p, measure, 0.85, k=1, coverage=0.95)
    assert (v.code, v.verified, measured) == (12, True, [12])  # one check, nothing verified: it checks the fallback
    measured.clear()
    v = fitted.verify_pick(codes, acc, p, measure, 0.7, k=2, coverage=0.95)
    # 10 fails, then the fallback 12 fails too: out of checks, the next safe one (13), unverified
    assert (v.code, v.verified, measured) == (13, False, [10, 12])
    measured.clear()
    v = fitted.verify_pick([12, 13], [70.0, 60.0], [0.97, 0.99], measure, 0.6, k=2, coverage=0.95)
    # no candidate beats the safe baseline: the fallback 12 is measured (fails), then the next safe one (passes)
    assert (v.code, v.verified, measured) == (13, True, [12, 13])
    v = fitted.verify_pick([12], [70.0], [0.97], measure, 0.6, k=3, coverage=0.95)
    assert v.code is None and not v.verified  # measured over the target: never picked anyway


def test_verify_k_picks_the_best_measured_feasible(table):
    from edgenas.search.blackbox.base import Trace

    target = table.target_for_quantile(0.25)
    fast = [int(c) for c in np.flatnonzero(table.latency <= target)[:3]]
    slow = [int(c) for c in np.flatnonzero(table.latency > target)[:3]]
    acc = {c: a for c, a in zip(slow + fast, [90.0, 89.0, 88.0, 50.0, 49.0, 48.0])}
    trace = Trace([(enc.from_code(c), a) for c, a in acc.items()])
    opt = table.optimum(target)[1]
    setting = nb201.make_setting(table, target, fit_n=100, seed=0, verify_k=4)
    plain = nb201.score(table, trace, 6, target, opt)
    checked = nb201.score(table, trace, 6, target, opt, verify_k=4, setting=setting)
    assert not plain.feasible[-1] and checked.feasible[-1] and checked.verified[-1]
    assert checked.regret[-1] == pytest.approx(opt - table.accuracy[fast[0]])
    assert 1 <= checked.measured[-1] <= 4


# ---- CLI with the generic CSV sources ------------------------------------------------------

@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    d = tmp_path_factory.mktemp("nb201")
    acc, lat = synthetic_table()
    sources.write_csv(d / "lat.csv", lat, "latency_ms")
    sources.write_csv(d / "acc.csv", acc, "accuracy")
    return d


def test_cli_bench_on_csv_sources(cli, csvs, tmp_path):
    code, out, err = cli("bench", "nb201", "--latency", csvs / "lat.csv", "--accuracy", csvs / "acc.csv",
                         "--target-quantile", "0.25", "--strategies", "random,evolution", "--queries", "40",
                         "--seeds", "2", "--json", "--plot", tmp_path / "r.png")
    assert code == 0, err
    r = json.loads(out)
    assert set(r["strategies"]) == {"random", "evolution"}
    assert r["strategies"]["random"]["at"]["40"]["feasible_share"] == 1.0
    assert (tmp_path / "r.png").stat().st_size > 1000
    code2, out2, _ = cli("bench", "nb201", "--latency", csvs / "lat.csv", "--accuracy", csvs / "acc.csv",
                         "--target-quantile", "0.25", "--strategies", "random,evolution", "--queries", "40",
                         "--seeds", "2", "--json")
    assert json.loads(out2)["strategies"] == r["strategies"]  # deterministic


def test_cli_realistic_mode_reports_its_checks(cli, csvs):
    args = ["bench", "nb201", "--latency", csvs / "lat.csv", "--accuracy", csvs / "acc.csv", "--target-quantile",
            "0.25", "--strategies", "evolution", "--queries", "30", "--seeds", "2", "--fit-n", "60", "--verify-k", "4",
            "--json"]
    code, out, err = cli(*args)
    assert code == 0, err
    at = json.loads(out)["strategies"]["evolution"]["at"]["30"]
    assert 1 <= at["measurements_max"] <= 4 and at["verified_share"] == 1.0 and at["feasible_share"] == 1.0
    assert json.loads(cli(*args)[1]) == json.loads(out)  # deterministic for the seeds
    code, out, err = cli(*args[:-1], "--active", "2", "--json")  # measurements during the search, counted
    assert code == 0, err
    at = json.loads(out)["strategies"]["evolution"]["at"]["30"]
    assert at["active_mean"] <= 2 and at["measurements_max"] <= 2 + 4 and at["feasible_share"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["--latency", "hwnas:nokia-3310"], "unknown latency source"),
    (["--latency", "no/such.csv"], "unknown latency source"),
    (["--target-ms", "0.01"], "no architecture is at or under"),
    (["--strategies", "magic"], "unknown strategy"),
    (["--latency", "hwnas:pi5-litert", "--hwnasbench", "/nonexistent"], "no HW-NAS-Bench-360"),
    (["--verify-k", "3"], "give --fit-n too"),
    (["--fit-n", "60", "--active", "3"], "give --fit-n and --verify-k"),
    (["--fit-n", "60", "--verify-k", "3", "--active", "-1"], "--active and --local-margin must be >= 0"),
    (["--fit-n", "5"], "--fit-n must be between 10 and"),
])
def test_cli_bad_input_is_one_line(cli, csvs, args, message):
    base = {"--latency": str(csvs / "lat.csv"), "--accuracy": str(csvs / "acc.csv"), "--target-ms": "2"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    code, out, err = cli("bench", "nb201", *[x for kv in base.items() for x in kv], "--queries", "5", "--seeds", "1")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("text, message", [
    ("arch,ms\nx,1\n", "want a CSV with columns"),
    (f"genotype,latency_ms\n{ARCH0},fast\n", ":2: latency_ms 'fast' is not a number"),
    ("genotype,latency_ms\n|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|,1\n", ":2: unknown NAS-Bench-201 op"),
    (f"genotype,latency_ms\n{ARCH0},-1\n", "finite non-negative"),
])
def test_cli_malformed_csv(cli, csvs, tmp_path, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    code, _, err = cli("bench", "nb201", "--latency", bad, "--accuracy", csvs / "acc.csv", "--target-ms", "1")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# ---- HW-NAS-Bench-360 (third-party data; skipped without ../shared) -------------------------

def test_hwnasbench_pi5_litert_matches_the_issue_reference(shared_data):
    path = shared_data / "hwnasbench360" / "dataset.parquet"
    table = nb201.Table(sources.load_accuracy("hwnas:cifar100", path), sources.load_latency("hwnas:pi5-litert", path))
    target = table.target_for_quantile(0.25)
    assert target == pytest.approx(1.53, abs=0.01)
    assert table.optimum(target)[1] == pytest.approx(68.48, abs=0.01)
    assert np.nanmax(table.accuracy) == pytest.approx(73.51, abs=0.01)
    res = nb201.run_bench(table, target, ["random", "local"], 100, 2)
    assert all(s["at"]["100"]["feasible_share"] == 1.0 for s in res.strategies.values())


def test_hwnasbench_realistic_mode_measures_representatives(shared_data):
    path = shared_data / "hwnasbench360" / "dataset.parquet"
    rep = sources.load_representatives("hwnas:pi5-litert", path)
    table = nb201.Table(sources.load_accuracy("hwnas:cifar100", path), sources.load_latency("hwnas:pi5-litert", path),
                        rep)
    assert len(np.unique(rep)) == 6466 and np.array_equal(table.latency, table.latency[rep])  # copies carry it
    fit = table.fitted(100, seed=0)
    assert np.all(rep[fit.measured] == fit.measured)  # the team measures distinct networks
    assert 1.0 < fit.quantile(0.95) < 1.25  # the fitted model is within a few % on most held-out networks
    target = table.target_for_quantile(0.25)
    r = nb201.run_bench(table, target, ["random"], 100, 2, fit_n=100, verify_k=10)
    at = r.strategies["random"]["at"]["100"]
    assert at["feasible_share"] == 1.0 and at["verified_share"] == 1.0 and at["measurements_max"] <= 10


def test_trained_evaluator_adapts_the_retrain_path(monkeypatch):
    from edgenas.bench.evaluator import TrainedEvaluator
    import edgenas.search.pipeline as pipeline

    calls = []

    def fake_retrain(ctx, arch, epochs, lr=0.05, seed=0, on_step=None):
        calls.append((arch, epochs))
        return None, 0.75, 0.7

    class Ctx:
        seed = 0
        space = type("S", (), {"arch_from_decisions": staticmethod(lambda d: ("arch", tuple(d)))})()

        def predicted_ms(self, arch):
            return 1.5

    monkeypatch.setattr(pipeline, "retrain", fake_retrain)
    ev = TrainedEvaluator(Ctx(), epochs=0.5)
    e = ev.evaluate((1, 2))
    assert (e.accuracy, e.latency_ms) == (75.0, 1.5) and ev.evaluate((1, 2)) == e and len(calls) == 1
