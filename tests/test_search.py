"""Search: every strategy through one contract, the latency objectives, data, and resumable runs.

Latency comes from the shipped, measured x86-64-host onnxruntime table (real data); training
uses the synthetic dataset only to keep these smoke tests short (never reported as results).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from edgenas.errors import InputError, TableMissError
from edgenas.latency.expected import ExpectedLatency
from edgenas.latency.predictor import LatencyPredictor
from edgenas.search.base import Budget, SearchContext, create_strategy, list_strategies, strategy_class
from edgenas.search.data import FMNIST_DIR, load_data
from edgenas.search.objectives import latency_loss, latency_reward
from edgenas.search.pipeline import SearchConfig, pareto, run_search
from edgenas.spaces import create_space

STRATEGIES = ["proxyless", "darts", "enas", "spos", "random"]


def _ctx(space_name="proxyless", steps=12, target=None, strategy="proxyless", **overrides):
    space = create_space(space_name, "small")
    search_space = create_space(space_name, "small", **overrides) if overrides else space
    pred = LatencyPredictor.load("x86-64-host", "onnxruntime", space, 1)
    mode = strategy_class(strategy).expected_latency  # as the pipeline picks it
    data = load_data("synthetic", 600, 300, 200)
    if target is None:  # the median of random architectures: half the space is feasible
        import random

        rng = random.Random(0)
        target = float(np.median([pred.predict(space, space.sample(rng)).predicted_ms for _ in range(40)]))
    return SearchContext(space=space, data=data, predictor=pred, expected=ExpectedLatency(space, pred, mode),
                         target_ms=target, budget=Budget(steps=steps, batch_size=16, population=4, eval_examples=64),
                         search_space=search_space)


def test_every_strategy_is_registered():
    assert set(STRATEGIES) <= set(list_strategies())
    with pytest.raises(InputError):
        create_strategy("grid")


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("space_name", ["proxyless", "darts"])
def test_strategy_contract(name, space_name):
    overrides = {"channels": 4} if space_name == "darts" else {}
    ctx = _ctx(space_name, steps=8, strategy=name, **overrides)
    s = create_strategy(name)
    s.setup(ctx)
    while s.step_count < 8 and not s.finished_early():
        row = s.step(ctx)
        assert all(np.isfinite(v) for v in row.values() if isinstance(v, float))
    state = s.state_dict()
    cands = s.candidates(ctx)
    assert cands
    for c in cands:
        assert 0.0 <= c.proxy_acc <= 1.0
        assert c.predicted_ms == pytest.approx(ctx.predicted_ms(c.arch))
        ctx.space.op_specs(c.arch)  # a valid arch of the deployed space
    again = create_strategy(name)
    again.setup(ctx)
    again.load_state_dict(state)
    assert again.step_count == s.step_count


def test_proxyless_latency_loss_pulls_expected_latency_down():
    ctx = _ctx("proxyless", steps=40)
    ctx.target_ms = 0.5 * float(ctx.expected(create_space("proxyless", "small").supernet().softmax_weights()))
    s = create_strategy("proxyless", latency_loss="add#linear", lam=5.0, warmup_fraction=0.0, arch_lr=0.05)
    s.setup(ctx)
    start = float(ctx.expected(s.net.softmax_weights()))
    for _ in range(25):
        s.step(ctx)
    assert float(ctx.expected(s.net.softmax_weights())) < 0.97 * start


def test_darts_hinge_pulls_expected_latency_down_second_order_too():
    ctx = _ctx("darts", steps=10, strategy="darts", channels=4)
    ctx.target_ms = 0.3 * float(ctx.expected({k: torch.softmax(torch.zeros(14, 8), -1) for k in ("normal", "reduce")}))
    s = create_strategy("darts", order=2, lam=20.0, warmup_fraction=0.0, arch_lr=0.05, max_skips=99)
    s.setup(ctx)
    start = float(ctx.expected(s.net.softmax_weights()))
    for _ in range(3):
        s.step(ctx)
    assert float(ctx.expected(s.net.softmax_weights())) < start


def test_darts_skip_guard_and_dropout_ask_the_space_nb201_stand_in_latency():
    """The darts strategy on nb201: skip dropout drops nb201's skip_connect column (not the column DARTS'
    op list has it in) and the guard counts the derived cell's skip connections. No nb201 table is
    shipped, so a linear stand-in prices the cell's options (what the arch step needs, nothing more)."""
    from edgenas.spaces.nb201_arch import NB201_OPS

    nb = create_space("nb201", "small")
    skip, darts_skip = NB201_OPS.index("skip_connect"), 3  # 3: skip_connect's column in DARTS' PRIMITIVES
    cost = torch.linspace(0.1, 0.5, len(NB201_OPS))
    ctx = SearchContext(space=nb, data=load_data("synthetic", 64, 32, 32), predictor=None,
                        expected=lambda probs: (probs["cell"] * cost).sum(), target_ms=1.0,
                        budget=Budget(steps=4, batch_size=8, population=2, eval_examples=16), search_space=nb)
    s = create_strategy("darts", warmup_fraction=0.0, guard_start_fraction=0.0, max_skips=2, skip_dropout=1.0)
    s.setup(ctx)
    w = s._weights(train=True)["cell"]
    assert torch.all(w[:, skip] == 0) and torch.all(w[:, darts_skip] > 0)
    with torch.no_grad():  # a supernet that prefers skip_connect on every edge: the collapse the guard stops
        s.net.arch_params["cell"][:, skip] = 10.0
    row = s.step(ctx)
    assert row["skips"] == nb.skip_count(s.derived(ctx)) == 6
    assert s.stop_reason() == "skip-connection guard (DARTS+)"
    assert create_space("proxyless", "small").skip_columns() == {}  # no skip op: dropout and guard are off


def test_objective_forms():
    ce = torch.tensor(2.0)
    lat = torch.tensor(12.0, requires_grad=True)
    assert float(latency_loss("add#linear", ce, lat, 10.0, lam=0.5)) == pytest.approx(2.0 + 0.5 * 0.2)
    assert float(latency_loss("hinge", ce, torch.tensor(8.0), 10.0, lam=0.5)) == pytest.approx(2.0)
    assert float(latency_loss("mul#log", ce, torch.tensor(10.0), 10.0, alpha=0.2, beta=0.3)) == pytest.approx(0.4)
    smooth = latency_loss("smooth", ce, lat, 10.0, lam=1.0)
    smooth.backward()
    assert lat.grad > 0
    assert latency_reward(0.8, 5.0, 10.0) == 0.8 and latency_reward(0.8, 20.0, 10.0) < 0.8
    with pytest.raises(InputError):
        latency_loss("quadratic", ce, lat, 10.0)


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.6), (0.5, 0.3)]
    assert sorted(pareto(pts)) == [0, 1, 4]


def test_fashion_mnist_splits_are_disjoint_and_real():
    if not (FMNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
    d = load_data("fashion-mnist", 1000, 500, 300, seed=1)
    assert d.weights.x.shape == (1000, 1, 28, 28) and d.weights.x.dtype == torch.uint8
    assert len(d.arch) == 500 and len(d.test) == 300 and d.classes == 10
    assert set(d.weights.y.unique().tolist()) == set(range(10))
    w = {bytes(x.numpy()) for x in d.weights.x}
    assert not any(bytes(x.numpy()) in w for x in d.arch.x)


def test_bad_data_spec_is_one_line(cli, tmp_path):
    code, _, err = cli("search", "--target-ms", 1, "--data", "imagenet", "--out", tmp_path / "run")
    assert code == 2 and "unknown data 'imagenet'" in err
    assert not (tmp_path / "run").exists()  # nothing half-made to trip a later --resume


@pytest.mark.parametrize("tolerance", ["-0.1", "1.5"])
def test_bad_tolerance_is_one_line(cli, tmp_path, tolerance):
    code, _, err = cli("search", "--target-ms", 1, "--tolerance", tolerance, "--out", tmp_path / "run")
    assert code == 2 and "--tolerance must be a share in [0, 1)" in err


def test_search_fails_cleanly_on_a_table_miss(tmp_path):
    cfg = SearchConfig(device="x86-64-host", backend="onnxruntime", target_ms=1.0, space="proxyless",
                       preset="small32", data="synthetic")
    with pytest.raises(TableMissError, match="edgenas profile --device x86-64-host"):
        run_search(cfg, tmp_path / "run")


@pytest.mark.slow
def test_search_run_resumes_after_interruption(tmp_path):
    cfg = SearchConfig(device="x86-64-host", backend="onnxruntime", target_ms=0.6, strategy="spos", data="synthetic",
                       budget=dict(steps=24, batch_size=16, top_k=2, retrain_epochs=0.05, population=4,
                                   eval_examples=64), weights_size=600, arch_size=300, test_size=200, measure=False)
    out = tmp_path / "run"

    def interrupt(phase, done, total):
        if phase == "search" and done == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, out, on_progress=interrupt)
    assert (out / "checkpoint.pt").exists() and not (out / "summary.json").exists()
    with pytest.raises(InputError, match="--resume"):
        run_search(cfg, out)
    summary = run_search(cfg, out, resume=True)
    log = (out / "search_log.csv").read_text().splitlines()
    steps = [int(line.split(",")[0]) for line in log[1:] if ",search," in line]
    assert steps == list(range(1, 25))  # every step once: resumed from step 12, none repeated
    assert summary["steps_run"] == 24 and not (out / "checkpoint.pt").exists()
    # stage times survive the interruption: the search stage holds both halves, and no stage is lost
    stages = summary["stage_s"]
    assert set(stages) == {"search", "rank candidates", "retrain", "measure"}, stages
    assert 0 < sum(stages.values()) <= summary["elapsed_s"] + 0.5
    for name in ("genotype.json", "weights.safetensors", "candidates.csv", "pareto.png", "summary.md"):
        assert (out / name).exists(), name
    g = json.loads((out / "genotype.json").read_text())
    assert g["meta"]["target_ms"] == 0.6 and g["meta"]["predicted_ms"] <= 0.6


@pytest.mark.slow
def test_successive_halving_tests_only_the_pick_and_resumes_mid_way(tmp_path):
    """Every top-k candidate trains to the rung; only the pick trains on and sees the test split. A run
    interrupted while the pick trains on resumes from its rung state to the same numbers."""
    cfg = SearchConfig(device="x86-64-host", backend="onnxruntime", target_ms=0.6, strategy="random",
                       data="synthetic", budget=dict(steps=4, batch_size=16, top_k=3, retrain_epochs=0.3,
                                                     population=8, eval_examples=64),
                       weights_size=600, arch_size=300, test_size=200, measure=False)
    straight = run_search(cfg, tmp_path / "a")
    rs = straight["retrained"]
    assert len(rs) >= 2 and all(r["of"] == 11 for r in rs)  # 0.3 epochs of 600 images at 16 a batch
    tested = [r for r in rs if r["test_acc"] is not None]
    assert len(tested) == 1 and tested[0]["steps"] == 11 and "rung_arch_acc" in tested[0]
    assert all(r["steps"] == 4 for r in rs if r["test_acc"] is None)  # round(11 / 3)
    assert straight["chosen"]["test_acc"] == tested[0]["test_acc"]
    # the pick led at the rung (all meet the target here: arch-split accuracy decides)
    assert tested[0]["rung_arch_acc"] == max(r.get("rung_arch_acc", r["arch_acc"]) for r in rs)

    def interrupt(phase, done, total):
        if phase.startswith("retrain") and done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "b", on_progress=interrupt)
    resumed = run_search(cfg, tmp_path / "b", resume=True)
    assert resumed["retrained"] == rs and resumed["chosen"] == straight["chosen"]


def test_retraining_stopped_and_resumed_equals_a_straight_run():
    """Successive halving goes on with a stopped candidate: its state (weights, momentum, data order,
    RNG) resumed to the last step must give the very weights of one uninterrupted run."""
    from edgenas.executors.retrain import RetrainTask
    from edgenas.search.pipeline import retrain, retrain_steps

    space = create_space("proxyless", "small")
    data = load_data("synthetic", weights_size=96, arch_size=40, test_size=40)
    ctx = RetrainTask(space, data, Budget(batch_size=16), "cpu", space.sample(random.Random(1)), 1.0, 3,
                      torch.get_num_threads(), 0, 1)
    assert retrain_steps(ctx, 1.0) == 6
    straight, state, arch_acc, test_acc = retrain(ctx, ctx.arch, 1.0, seed=3)
    assert state is None and test_acc is not None
    _, state, _, no_test = retrain(ctx, ctx.arch, 1.0, seed=3, stop=2, test=False)
    assert state["step"] == 2 and no_test is None
    torch.manual_seed(99)  # other work between the rung and the rest (other candidates) moves torch's RNG
    resumed, done, arch_acc2, test_acc2 = retrain(ctx, ctx.arch, 1.0, seed=3, resume=state)
    assert done is None and (arch_acc2, test_acc2) == (arch_acc, test_acc)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_cifar10_pickle_batches_load(tmp_path):
    """The CIFAR-10 python format (written here with a few images, as the official files lay it out)."""
    import pickle

    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 20))}
        (tmp_path / name).write_bytes(pickle.dumps(d))
    data = load_data(f"cifar10:{tmp_path}", arch_size=20)
    assert data.weights.x.shape == (80, 3, 32, 32) and len(data.arch) == 20 and len(data.test) == 20
    x = __import__("edgenas.search.data", fromlist=["prepare"]).prepare(data.weights.x[:4], data, (1, 28, 28))
    assert x.shape == (4, 1, 28, 28)  # adapted to a grey 28x28 space


def test_image_folder_loads_and_bad_layout_is_clear(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (40, 30), (i * 40, 10, 200 if cls == "dog" else 0)).save(tmp_path / split / cls / f"{i}.png")
    data = load_data(f"folder:{tmp_path}", arch_size=2)
    assert data.classes == 2 and data.weights.x.shape[1:] == (3, 32, 32) and len(data.test) == 8
    with pytest.raises(InputError, match="one sub-directory per class"):
        load_data(f"folder:{tmp_path / 'train' / 'cat'}")


def _pixel1_predictor():
    space = create_space("proxyless", "mobile")
    pred = LatencyPredictor.load("pixel-1", "tflite", space, 1)
    return space, lambda a: pred.predict(space, a).predicted_ms


def test_repair_brings_over_target_archs_under_it_with_few_changes():
    from edgenas.search.repair import repair_to_target

    space, predict = _pixel1_predictor()
    rng = random.Random(3)
    over = [a for a in (space.sample(rng) for _ in range(40)) if predict(a) > 80][:5]
    assert over, "random mobile archs should mostly be over 80 ms on the Pixel 1 table"
    for arch in over:
        fixed, ms, changes = repair_to_target(space, predict, arch, 80.0)
        assert ms <= 80.0 and abs(predict(fixed) - ms) < 1e-9
        differing = sum(a != b for a, b in zip(space.decisions_of(arch), space.decisions_of(fixed)))
        assert 1 <= differing <= changes <= 2 * len(space.decisions())


def test_repair_gives_up_on_an_unreachable_target():
    from edgenas.search.repair import repair_to_target

    space, predict = _pixel1_predictor()
    assert repair_to_target(space, predict, space.sample(random.Random(0)), 1.0) is None


def test_ranking_scores_only_candidates_that_can_be_picked_and_scores_them_as_before():
    """With top_k candidates predicted under the target, over-target ones are skipped (never retrained
    nor repaired); those scored get the same shared-weight accuracy as when every one is, and the
    progress callback counts the scored ones."""
    ctx = _ctx("proxyless", steps=2)
    s = create_strategy("proxyless", warmup_fraction=0.0)
    s.setup(ctx)
    s.step(ctx)
    state = s.state_dict()

    def ranked(target, top_k):
        c = _ctx("proxyless", steps=2, target=target)
        c.budget.top_k = top_k
        calls = []
        c.progress = lambda done, total: calls.append((done, total))
        s.load_state_dict(state)
        return s.candidates(c), calls

    every, _ = ranked(ctx.target_ms, top_k=1000)  # fewer feasible than top_k: all are scored
    target = min(c.predicted_ms for c in every)
    assert any(c.predicted_ms > target for c in every)
    some, calls = ranked(target, top_k=1)
    assert [repr(c.arch) for c in some] == [repr(c.arch) for c in every if c.predicted_ms <= target]
    assert [c.proxy_acc for c in some] == [c.proxy_acc for c in every if c.predicted_ms <= target]
    assert calls[0] == (0, len(some)) and calls[-1] == (len(some), len(some))
