"""Predictor, calibration fit, differentiable expected latency, and verification metrics."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from edgenas.errors import TableMissError
from edgenas.latency.expected import ExpectedLatency
from edgenas.latency.predictor import Calibration, LatencyPredictor, fit_calibration
from edgenas.latency.table import LatencyTable, TableSelection, rows_from_stats
from edgenas.latency.verify import kendall_tau, score
from edgenas.ops import is_zero_cost
from edgenas.spaces import create_space

SEL = TableSelection("dev", "onnxruntime", "fp32", 1, 1, "1.0")


def _synthetic_table(space, drop_op=None):
    """Entry value = a deterministic function of the op key (ref_ratio * ref_ms = ms)."""
    rows = []
    for s in space.all_op_specs():
        if is_zero_cost(s) or s.op == drop_op:
            continue
        ms = 0.01 + (sum(map(ord, s.key)) % 97) / 1000
        rows.append((s, {"median_ms": ms * 1.3, "ref_ms": 0.05, "ref_ratio": ms / 0.05, "stable": True}))
    return LatencyTable().upsert(rows_from_stats(rows, SEL, "1.0", "r"))


@pytest.mark.parametrize("space_name,preset", [("darts", "small"), ("proxyless", "small")])
def test_prediction_is_calibrated_op_sum(space_name, preset):
    sp = create_space(space_name, preset)
    pred = LatencyPredictor(_synthetic_table(sp), SEL, Calibration(a=0.5, b=0.2, c=0.001, model="x"))
    arch = sp.sample(random.Random(0))
    specs = sp.op_specs(arch)
    expected_sum = sum(0.01 + (sum(map(ord, s.key)) % 97) / 1000 for s in specs if not is_zero_cost(s))
    k = sum(1 for s in specs if not is_zero_cost(s))
    p = pred.predict(sp, arch)
    assert p.sum_ms == pytest.approx(expected_sum)  # drift-corrected: ref_ratio * anchor, not the raw median
    assert p.predicted_ms == pytest.approx(0.5 * expected_sum + 0.2 + 0.001 * k)
    assert sum(r["ms_total"] for r in p.breakdown) == pytest.approx(expected_sum)


def test_table_miss_lists_keys_and_the_fill_command():
    sp = create_space("darts", "small")
    pred = LatencyPredictor(_synthetic_table(sp, drop_op="dil_conv_5x5"), SEL, profile_hint="edgenas profile --x")
    arch = next(a for a in (sp.sample(random.Random(i)) for i in range(50))
                if any(o == "dil_conv_5x5" for o, _ in a.normal + a.reduce))
    with pytest.raises(TableMissError) as e:
        pred.predict(sp, arch)
    assert all(k.startswith("dil_conv_5x5") for k in e.value.missing_keys) and "edgenas profile --x" in str(e.value)


def test_calibration_fit_recovers_a_known_correction_and_prefers_the_smaller_model():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.5, 2.0, 12)
    k = rng.integers(40, 60, 12)
    cal = fit_calibration(list(zip(s, k)), list(0.5 * s + 0.1), [str(i) for i in range(12)])
    assert cal.model == "scale+offset" and cal.a == pytest.approx(0.5) and cal.b == pytest.approx(0.1)
    assert cal.fit_mape < 1e-9 and cal.fit_within_10pct == 1.0 and cal.n_networks == 12
    cal3 = fit_calibration(list(zip(s, k)), list(0.5 * s + 0.1 + 0.02 * k), [])
    assert cal3.model == "scale+offset+per-op" and cal3.c == pytest.approx(0.02)


@pytest.mark.parametrize("space_name,preset,mode", [("proxyless", "small", "softmax"), ("darts", "small", "softmax"),
                                                    ("darts", "small", "derived")])
def test_expected_latency_of_one_hot_weights_equals_the_prediction(space_name, preset, mode):
    sp = create_space(space_name, preset)
    pred = LatencyPredictor(_synthetic_table(sp), SEL, Calibration(a=0.7, b=0.05, c=0.002, model="x"))
    exp = ExpectedLatency(sp, pred, mode=mode)
    for seed in range(3):
        arch = sp.sample(random.Random(seed))
        got = float(exp(sp.arch_weights(arch)))
        assert got == pytest.approx(pred.predict(sp, arch).predicted_ms, rel=1e-5)


@pytest.mark.parametrize("mode", ["softmax", "derived"])
def test_expected_latency_follows_the_prediction_when_the_anchor_moved(mode):
    """A calibration fitted at another quiet-state scale (this host got 1.25x slower since): ``predict``
    rescales its offset terms by anchor now / anchor at fit, and the search's expected latency must
    do the same, or a search aims at a different number than its summary reports (found 2026-12-02:
    4-6% apart on the shipped darts calibration after the host's anchor moved)."""
    sp = create_space("darts", "small")
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    pred.calibration = Calibration(a=0.7, b=0.3, c=0.004, model="x", n_networks=10, anchor_ms=pred.anchor_ms / 1.25)
    assert pred.calibration_scale == pytest.approx(1.25)
    exp = ExpectedLatency(sp, pred, mode=mode)
    for seed in range(3):
        arch = sp.sample(random.Random(seed))
        assert float(exp(sp.arch_weights(arch))) == pytest.approx(pred.predict(sp, arch).predicted_ms, rel=1e-5)


def test_expected_latency_is_differentiable_and_moves_the_right_way():
    sp = create_space("proxyless", "small")
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    exp = ExpectedLatency(sp, pred)
    net = sp.supernet()
    lat = exp(net.softmax_weights())
    lat.backward()
    g = net.arch_params["layer3"].grad[0]
    lat_row = exp.matrices()["layer3"][0]
    assert int(g.argmax()) == int(lat_row.argmax()) and int(g.argmin()) == int(lat_row.argmin())


def test_metrics():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    m = score([1.0, 1.08, 1.2, 0.5], [1.0, 1.0, 1.0, 1.0])
    assert m["within_5pct"] == 0.25 and m["within_10pct"] == 0.5 and m["mape"] == pytest.approx((0 + .08 + .2 + .5) / 4)


def test_predict_cli_on_the_shipped_pixel1_table(cli, tmp_path):
    """The imported Pixel 1 table prices a ProxylessNAS mobile network (uncalibrated op sum of published means)."""
    sp = create_space("proxyless", "mobile")
    g = sp.genotype(sp.sample(random.Random(3)))
    path = g.save(tmp_path / "g.json")
    code, out, err = cli("predict", path, "--device", "pixel-1", "--backend", "tflite", "--json")
    assert code == 0, err
    r = json.loads(out)
    table = LatencyTable.read(__import__("edgenas.paths", fromlist=["x"]).REPO_ROOT / "latency_tables/pixel-1/tflite.csv")
    means = dict(zip(table.df["op_key"], table.df["mean_ms"]))
    want = sum(means[s.key] for s in sp.op_specs(g.arch) if not is_zero_cost(s))
    assert r["predicted_ms"] == pytest.approx(want) and not r["calibrated"]
    assert 40 < r["predicted_ms"] < 200  # ProxylessNAS mobile nets on a Pixel 1 run at tens of ms


def test_predict_cli_reports_a_table_miss_in_one_line(cli):
    code, _, err = cli("predict", "{\"space\": \"proxyless\", \"preset\": \"small\", \"arch\": {\"layers\": "
                       "[\"3x3_MBConv1\", \"3x3_MBConv3\", \"zero\", \"3x3_MBConv3\", \"zero\", \"3x3_MBConv3\", "
                       "\"zero\", \"3x3_MBConv3\", \"zero\", \"3x3_MBConv3\"]}}", "--device", "pixel-1",
                       "--backend", "tflite")
    assert code == 4 and "no entry for" in err and "edgenas profile --device pixel-1" in err
    assert len(err.strip().splitlines()) == 1


def _type_data(sp, n=36, seed=0):
    """Networks whose 'measured' latency weights op types differently (convs 1.4x, pools 0.7x their table ms)."""
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    weight = {"sep_conv_3x3": 1.4, "sep_conv_5x5": 1.4, "max_pool_3x3": 0.7, "avg_pool_3x3": 0.7}
    archs = [sp.sample(random.Random(seed + i)) for i in range(n)]
    specs = [sp.op_specs(a) for a in archs]
    feats = [pred.features(s, weighted=False) for s in specs]
    sums = [pred.type_sums(s) for s in specs]
    y = [0.5 * sum(weight.get(t, 1.0) * v for t, v in d.items()) + 0.1 for d in sums]
    return pred, archs, feats, sums, y


def test_per_type_calibration_recovers_op_type_weights_and_prices_like_the_data():
    """The per-type model exists because a runtime fuses some op types into their neighbours more than
    others; given data made that way it must be chosen over one scale and predict the data."""
    sp = create_space("darts", "small")
    pred, archs, feats, sums, y = _type_data(sp)
    one = fit_calibration(feats, y)  # without per-type sums: one scale cannot follow
    cal = fit_calibration(feats, y, type_sums=sums)
    assert cal.model == "scale+offset+per-type" and cal.fit_within_10pct >= one.fit_within_10pct
    assert cal.fit_mape < one.fit_mape
    m = cal.type_scale
    assert m["sep_conv_3x3"] / m["max_pool_3x3"] == pytest.approx(2.0, rel=0.1)
    pred.calibration = cal
    for a, want in zip(archs[:5], y[:5]):
        assert pred.predict(sp, a).predicted_ms == pytest.approx(want, rel=0.03)
    few = fit_calibration(feats[:8], y[:8], type_sums=sums[:8])  # too few networks for 7 types: not offered
    assert few.model != "scale+offset+per-type"


def test_per_key_calibration_learns_ops_that_cost_less_in_a_network_than_alone():
    """TFLite/XNNPACK at batch 8 times some single 7x7 MBConvs at 1.6-10x what they cost inside a network;
    the per-key model must learn that from whole networks (one op type: per-type cannot), predict
    networks it was not fitted on, leave ops no network held at their table latency, and stay off
    below PER_KEY_MIN_NETWORKS."""
    from edgenas.latency.predictor import PER_KEY_MIN_NETWORKS

    sp = create_space("proxyless", "small")
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    archs = [sp.sample(random.Random(100 + i)) for i in range(50)]
    specs = [sp.op_specs(a) for a in archs]
    slow = {s.key for ss in specs for s in ss if s.kernel == 7}
    ms = pred.op_ms([s for ss in specs for s in ss])

    def truth(ss):  # kernel-7 ops cost a fifth of their table latency in a network
        return 0.8 * sum((0.2 if s.key in slow else 1.0) * ms[s.key] for s in ss if not is_zero_cost(s)) + 0.05

    y = [truth(ss) for ss in specs]
    feats = [pred.features(ss, weighted=False) for ss in specs]
    keys = [pred.key_sums(ss) for ss in specs]
    types = [pred.type_sums(ss) for ss in specs]
    cal = fit_calibration(feats[:30], y[:30], type_sums=types[:30], key_sums=keys[:30])
    assert cal.model == "scale+offset+per-key"
    # more keys than networks: single weights are not identified, but the slow ones are pulled down
    assert np.median([v for k, v in cal.key_scale.items() if k in slow]) < 0.7 * np.median(
        [v for k, v in cal.key_scale.items() if k not in slow])
    pred.calibration = cal

    def held_out_errors():
        return np.array([abs(pred.predict(sp, a).predicted_ms / t - 1) for a, t in zip(archs[30:], y[30:])])

    per_key = held_out_errors()
    pred.calibration = fit_calibration(feats[:30], y[:30], type_sums=types[:30])  # without per-key sums
    without = held_out_errors()
    assert np.mean(per_key <= 0.10) >= 0.9 and per_key.mean() < 0.7 * without.mean()
    unseen = next(s for s in sp.all_op_specs() if not is_zero_cost(s) and s.key not in cal.key_scale)
    assert cal.weight(unseen) == 1.0
    few = fit_calibration(feats[:PER_KEY_MIN_NETWORKS - 1], y[:PER_KEY_MIN_NETWORKS - 1],
                          key_sums=keys[:PER_KEY_MIN_NETWORKS - 1])
    assert few.model != "scale+offset+per-key" and not few.key_scale


def test_calibration_advice_names_the_fix_only_for_a_poor_fit():
    from edgenas.latency.predictor import calibration_advice

    poor = Calibration(a=0.1, b=2.0, model="scale+offset", n_networks=10, fit_within_10pct=0.2)
    assert "--n 30" in calibration_advice(poor) and "20%" in calibration_advice(poor)
    assert "--calibration-n 30" in calibration_advice(poor, "--calibration-n")
    poor.n_networks = 30
    assert "tables fit" in calibration_advice(poor)
    assert calibration_advice(Calibration(a=1.0, model="scale+offset", n_networks=10, fit_within_10pct=0.9)) == ""
    assert calibration_advice(Calibration()) == ""  # uncalibrated: nothing fitted, nothing to advise


def test_expected_latency_applies_the_per_key_weights_like_predict():
    sp = create_space("proxyless", "small")
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    keys = sorted({s.key for s in sp.all_op_specs() if s.kernel == 7})
    pred.calibration = Calibration(a=0.6, b=0.1, model="scale+offset+per-key",
                                   key_scale={k: 0.1 + 0.05 * i for i, k in enumerate(keys)})
    exp = ExpectedLatency(sp, pred, mode="softmax")
    for seed in range(3):
        arch = sp.sample(random.Random(seed))
        assert float(exp(sp.arch_weights(arch))) == pytest.approx(pred.predict(sp, arch).predicted_ms, rel=1e-5)


@pytest.mark.parametrize("mode", ["softmax", "derived"])
def test_expected_latency_applies_the_per_type_weights_like_predict(mode):
    sp = create_space("darts", "small")
    pred = LatencyPredictor(_synthetic_table(sp), SEL)
    pred.calibration = Calibration(a=0.6, b=0.1, model="scale+offset+per-type",
                                   type_scale={"sep_conv_3x3": 1.5, "max_pool_3x3": 0.5})
    exp = ExpectedLatency(sp, pred, mode=mode)
    for seed in range(3):
        arch = sp.sample(random.Random(seed))
        assert float(exp(sp.arch_weights(arch))) == pytest.approx(pred.predict(sp, arch).predicted_ms, rel=1e-5)


def test_a_calibration_fitted_on_this_cpu_is_preferred_here_and_the_generic_one_elsewhere(tmp_path):
    """Calibrations are filed per CPU for a device that is this machine kind (VMs of one kind differ in CPU and
    their runtimes in kernels); the CPU-less key stays the fallback."""
    from edgenas.latency.predictor import CalibrationStore, calibration_key, is_this_machine, this_cpu
    from edgenas.latency.store import TableStore

    if not is_this_machine("x86-64-host"):
        pytest.skip("this machine is not an x86-64-host")
    sp = create_space("proxyless", "small")
    store = TableStore(tmp_path)
    sel = TableSelection("x86-64-host", "onnxruntime", "fp32", 1, 1, "1.0")
    rows = [(s, {"median_ms": 0.02, "mean_ms": 0.02, "stable": True}) for s in sp.all_op_specs() if not is_zero_cost(s)]
    store.save(LatencyTable().upsert(rows_from_stats(rows, sel, "1.0", "r")), "x86-64-host", "onnxruntime")
    cals = CalibrationStore(store)
    cals.put("x86-64-host", "onnxruntime", calibration_key(sp, sel), Calibration(a=2.0, model="scale+offset"))
    load = lambda: LatencyPredictor.load("x86-64-host", "onnxruntime", sp, 1, threads=1, store=store,  # noqa: E731
                                        auto_anchor=False).calibration
    assert load().a == 2.0  # only the generic one: used
    cals.put("x86-64-host", "onnxruntime", calibration_key(sp, sel, "Some Other CPU"), Calibration(a=3.0, model="scale+offset"))
    assert load().a == 2.0  # another CPU's: not used here
    cals.put("x86-64-host", "onnxruntime", calibration_key(sp, sel, this_cpu()), Calibration(a=4.0, model="scale+offset"))
    assert load().a == 4.0  # this CPU's: preferred
