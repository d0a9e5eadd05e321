"""Learning a device from whole-network measurements: NB201 arch_str, readers, the fit, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenas.errors import GenotypeError, InputError
from edgenas.latency.fit import fit_wholenet, nb201_features, within
from edgenas.latency.measurements import read_generic_csv, read_hwnasbench, read_nnmeter_log, write_generic_csv
from edgenas.spaces.nb201_arch import NB201_OPS, Nb201Arch, parse_arch_str

ARCH = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _random_archs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Nb201Arch(tuple(NB201_OPS[k] for k in rng.integers(0, 5, 6))) for _ in range(n)]


def test_arch_str_round_trip_and_errors():
    a = parse_arch_str(ARCH)
    assert a.to_arch_str() == ARCH
    assert a.ops == ("nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    for bad in ("|nor_conv_3x3~0|+|none~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(GenotypeError):
            parse_arch_str(bad)


def test_dead_edges_under_both_prunings():
    # node 2 takes only none edges: the conv 2->3 runs on zeros. Path pruning drops it, output pruning keeps it.
    a = parse_arch_str("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert a.live_edges() == (True, False, False, False, True, False)
    assert a.executed_edges("output") == (True, True, True, True, True, True)
    # an edge out of a node that never reaches the output is dead under both
    b = parse_arch_str("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert b.live_edges() == (False, False, False, True, False, False)
    assert b.executed_edges("output") == (False, False, False, True, True, True)
    assert not parse_arch_str("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|").connected


def test_zero_nodes_are_all_none_nodes_that_still_feed_the_output():
    # node 2 sums only none edges, and its skip to node 3 is dead under path pruning: a zero node
    a = parse_arch_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|")
    assert a.zero_nodes() == (2,) and not a.live_edges()[5]
    assert nb201_features(a, "additive")["zero2"] == 1.0 and "zero1" not in nb201_features(a, "additive")
    # node 1 = none(node 0) feeding two edges that reach the output: a zero node 1
    assert parse_arch_str("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|"
                          "nor_conv_1x1~2|").zero_nodes() == (1,)
    # an all-none node whose out-edges are none too is not one (nothing of it could run)
    assert parse_arch_str(ARCH.replace("skip_connect~2", "none~2")).zero_nodes() == ()
    assert parse_arch_str(ARCH).zero_nodes() == ()


def test_a_model_stored_without_zero_terms_still_predicts_as_before():
    # models fitted before zero<n> existed name no such feature: the new term must not change their predictions
    a = parse_arch_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|")
    from edgenas.latency.fit import WholeNetModel

    m = WholeNetModel.from_dict({"format": "edgenas.wholenet-model", "version": 2, "space": "nb201",
                                 "level": "additive", "pruning": "path", "names": ["const", "op:nor_conv_3x3"],
                                 "coef": [1.0, 0.5]})
    assert m.predict(a) == pytest.approx(1.5)


def test_fit_recovers_an_additive_device_exactly():
    rng = np.random.default_rng(1)
    cost = {op: c for op, c in zip(NB201_OPS[1:], (0.05, 0.3, 0.9, 0.2))}
    edge_scale = rng.uniform(0.8, 1.2, 6)
    archs = [a for a in _random_archs(300) if a.connected]
    y = np.array([2.0 + sum(15 * cost[op] * s for op, s, on in zip(a.ops, edge_scale, a.live_edges()) if on)
                  for a in archs])
    m = fit_wholenet(archs[:150], y[:150], level="additive", pruning="path", ridge=1e-6)
    assert within(m.predict_many(archs[150:]), y[150:], 0.01) == 1.0
    again = type(m).from_dict(json.loads(json.dumps(m.to_dict())))
    assert np.allclose(again.predict_many(archs[150:]), m.predict_many(archs[150:]))


def test_fit_picks_the_pruning_the_device_does():
    archs = [a for a in _random_archs(400, seed=2) if a.connected]
    y = np.array([1.0 + sum(0.5 * (op == "nor_conv_3x3") + 0.05 for op, on in zip(a.ops, a.executed_edges("output"))
                            if on) for a in archs])
    assert fit_wholenet(archs[:200], y[:200], level="additive").pruning == "output"
    assert set(nb201_features(archs[0], "fusion")) >= {"const"}


def test_generic_csv_refuses_bad_rows_with_line_numbers(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text(f"genotype,latency_ms\n{ARCH},3.2\n|bad|,1.0\n{ARCH},abc\n{ARCH},2.0\n")
    with pytest.raises(InputError, match=r"2 row\(s\) do not parse \(lines 3, 4\).*nothing was imported"):
        read_generic_csv(p)
    p.write_text(f"arch,ms\n{ARCH},3.2\n")
    with pytest.raises(InputError, match="line 1 must be the header"):
        read_generic_csv(p)
    p.write_text(f"genotype,latency_ms,batch,threads\n{ARCH},3.2,1,4\n")
    (net,) = read_generic_csv(p).nets
    assert (net.space, net.latency_ms, net.batch, net.threads) == ("nb201", 3.2, 1, 4)


def _synthetic_csv(path, n, seed):
    from edgenas.latency.measurements import MeasuredNet

    archs = [a for a in _random_archs(n, seed) if a.connected]
    nets = [MeasuredNet(a.to_arch_str(), 1.0 + sum(0.4 if "conv" in op else 0.05 for op in a.live_ops()
                                                    if op != "none"), a, "nb201") for a in archs]
    write_generic_csv(nets, path)
    return nets


def test_cli_new_device_fit_predict_many_verify(cli, tmp_path):
    tables = tmp_path / "tables"
    _synthetic_csv(tmp_path / "train.csv", 80, 3)
    _synthetic_csv(tmp_path / "test.csv", 60, 4)
    code, out, err = cli("tables", "fit", "-d", "never-seen-board", "-b", "tflite", "-m", tmp_path / "train.csv",
                         "--tables-dir", tables, "--json")
    assert code == 0, err
    fit = json.loads(out)
    assert fit["space"] == "nb201" and fit["n"] > 50 and len(fit["sha256"]) == 64
    code, out, err = cli("predict", "--many", tmp_path / "test.csv", "-d", "never-seen-board", "-b", "tflite",
                         "--tables-dir", tables, "--out", tmp_path / "pred.csv", "--json")
    assert code == 0, err
    assert (tmp_path / "pred.csv").read_text().splitlines()[0].endswith("predicted_ms")
    code, out, err = cli("verify", "-d", "never-seen-board", "-b", "tflite", "-m", tmp_path / "test.csv",
                         "--tables-dir", tables, "--plot", tmp_path / "v.png", "--json")
    assert code == 0, err
    v = json.loads(out)
    assert v["within_10pct"] == 1.0 and (tmp_path / "v.png").is_file()
    # a malformed file is refused in one line naming the rows, and the stored model is unchanged
    before = (tables / "never-seen-board" / "tflite.wholenet.json").read_text()
    (tmp_path / "bad.csv").write_text(f"genotype,latency_ms\n{ARCH},1.0\nnot-a-genotype,2.0\n")
    code, out, err = cli("tables", "fit", "-d", "never-seen-board", "-b", "tflite", "-m", tmp_path / "bad.csv",
                         "--tables-dir", tables)
    assert code == 2 and "line 3" in err and len(err.strip().splitlines()) == 1
    assert (tables / "never-seen-board" / "tflite.wholenet.json").read_text() == before


def test_nnmeter_pixel4_cpu_from_50_networks(shared_data):
    ms = read_nnmeter_log(shared_data / "nnmeter-nb201" / "cpu-nasbench201-log.csv",
                          shared_data / "nnmeter-nb201" / "nasbench201-configs.json")
    assert len(ms.nets) == 2000
    archs, y = [n.arch for n in ms.nets], np.array([n.latency_ms for n in ms.nets])
    perm = np.random.default_rng(1000).permutation(len(y))
    m = fit_wholenet([archs[i] for i in perm[:50]], y[perm[:50]])
    assert m.pruning == "path"
    assert within(m.predict_many([archs[i] for i in perm[50:]]), y[perm[50:]], 0.10) >= 0.98


def _cv_without_and_with_zero_terms(archs, y, folds=5):
    """5-fold held-out predictions of the additive fit, refitted with and without the ``zero<n>`` terms
    (the same fit, given feature dicts with those terms removed)."""
    feats = [nb201_features(a, "additive", "path") for a in archs]
    plain = [{k: v for k, v in f.items() if not k.startswith("zero")} for f in feats]
    fold = np.random.default_rng(0).permutation(len(y)) % folds
    out = {"without": np.empty(len(y)), "with": np.empty(len(y))}
    for k in range(folds):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        m = fit_wholenet([plain[i] for i in tr], y[tr], space="nb201", level="additive", pruning="path")
        out["without"][te] = m.predict_many([plain[i] for i in te])
        m = fit_wholenet([archs[i] for i in tr], y[tr], level="additive", pruning="path")
        out["with"][te] = m.predict_many([archs[i] for i in te])
    return out


def test_ncs2_runs_an_all_none_node_2_and_the_zero_term_learns_it(shared_data):
    # Intel NCS2 (nn-Meter): a node 2 made only of none edges that feeds node 3 costs about a quarter of
    # the network, though path pruning calls its out-edge dead; a zero node 1 costs nothing (measured, not assumed)
    ms = read_nnmeter_log(shared_data / "nnmeter-nb201" / "vpu-nasbench201-log.csv",
                          shared_data / "nnmeter-nb201" / "nasbench201-configs.json")
    nets = [n for n in ms.nets if n.arch.connected]
    archs, y = [n.arch for n in nets], np.array([n.latency_ms for n in nets])
    m = fit_wholenet(archs, y, level="additive", pruning="path")
    coef = dict(zip(m.names, m.coef))
    assert coef["zero2"] > 0.15 * np.median(y) and abs(coef.get("zero1", 0.0)) < 0.05 * np.median(y)
    cv = _cv_without_and_with_zero_terms(archs, y)
    zero2 = np.array([2 in a.zero_nodes() for a in archs])
    assert zero2.sum() >= 10
    assert within(cv["with"][zero2], y[zero2], 0.10) >= 0.8 > within(cv["without"][zero2], y[zero2], 0.10)
    assert within(cv["with"], y, 0.10) > within(cv["without"], y, 0.10)


def test_hwnasbench_reader_dedups_and_runtime_keeps_convs_on_zero_nodes(shared_data):
    ms = read_hwnasbench(shared_data / "hwnasbench360" / "dataset.parquet", shared_data / "nb201_arch_strings.csv",
                         "pi5", "onnx", "cifar100")
    assert 6000 < len(ms.nets) < 7000  # one per isomorphism class, not 15,625
    nets = [n for n in ms.nets if n.arch.connected][:1500]
    archs, y = [n.arch for n in nets], np.array([n.latency_ms for n in nets])
    m = fit_wholenet(archs[:500], y[:500], level="additive")
    assert m.pruning == "output"
    assert within(m.predict_many(archs[500:]), y[500:], 0.10) >= 0.93


def test_generic_csv_with_darts_genotypes_fits_over_op_keys(cli, tmp_path):
    import csv
    import random

    from conftest import DARTS_V2
    from edgenas.spaces import create_space

    sp = create_space("darts", "small")
    rng = random.Random(0)
    with open(tmp_path / "darts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genotype", "latency_ms"])
        for _ in range(30):
            a = sp.sample(rng)
            w.writerow([sp.genotype(a).to_json().replace("\n", ""),
                        1.0 + 0.1 * sum("conv" in s.op for s in sp.op_specs(a))])
    tables = tmp_path / "tables"
    code, out, err = cli("tables", "fit", "-d", "other-board", "-b", "onnxruntime", "-m", tmp_path / "darts.csv",
                         "--tables-dir", tables, "--json")
    assert code == 0, err
    assert json.loads(out)["space"] == "darts"
    (tmp_path / "one.csv").write_text("genotype,latency_ms\n" + '"' + DARTS_V2 + '",1.0\n')
    code, out, err = cli("predict", "--many", tmp_path / "one.csv", "-d", "other-board", "-b", "onnxruntime",
                         "--tables-dir", tables, "--json")
    # the paper's network is another config (C=36, 20 cells): its op keys were never fitted, so it is refused
    assert code == 2 and "not fitted on" in err


def test_prior_from_op_latencies_is_used_as_far_as_cross_validation_trusts_it():
    from edgenas.latency.fit import nb201_prior
    from edgenas.spaces import create_space

    sp = create_space("nb201", "small")
    cost = {"none": 0.0, "skip_connect": 0.0, "nor_conv_1x1": 0.02, "nor_conv_3x3": 0.05, "avg_pool_3x3": 0.01}
    prior = nb201_prior(sp, lambda specs: {s.key: cost[s.op] if s.op in cost else 0.1 for s in specs})
    assert prior["op:nor_conv_3x3"] == pytest.approx(3 * 0.05) and prior["const"] == pytest.approx(0.4)
    archs = [a for a in _random_archs(300, seed=5) if a.connected]
    rng = np.random.default_rng(0)
    for scale in (1.0, 1.3):  # a table that is right, and one 30% off: neither may hurt
        y = np.array([scale * (0.4 + sum(3 * cost[op] for op in a.live_ops())) for a in archs])
        y *= rng.uniform(0.97, 1.03, len(y))
        acc = {}
        for name, pr in (("with", prior), ("without", None)):
            m = fit_wholenet(archs[:20], y[:20], level="additive", prior=pr, pruning="path")
            acc[name] = within(m.predict_many(archs[20:]), y[20:], 0.10)
        assert acc["with"] >= acc["without"] - 0.02 and acc["with"] >= 0.9, (scale, acc)


def _residual_model(n=240, seed=7):
    archs = [a for a in _random_archs(n, seed) if a.connected]
    rng = np.random.default_rng(seed)
    y = np.array([1.0 + sum(0.4 if "conv" in op else 0.05 for op in a.live_ops())
                  + 0.3 * (a.ops[0] == a.ops[5] == "nor_conv_3x3") for a in archs]) * rng.uniform(0.97, 1.03, len(archs))
    return archs, fit_wholenet(archs, y, level="residual", pruning="path", seed=3)


def test_residual_model_is_stored_as_data_and_refitted_identically():
    from edgenas.latency import fit as fitmod

    archs, m = _residual_model()
    d = json.loads(json.dumps(m.to_dict()))
    text = json.dumps(d)
    assert "pickle" not in text and "b64" not in text
    assert d["residual"]["params"]["random_state"] == 3 and len(d["residual"]["train_arch"]) == len(archs)
    saved = m.predict_many(archs)
    fitmod._RESIDUAL_CACHE.clear()  # force the refit a fresh process would do
    again = type(m).from_dict(d)
    assert np.array_equal(again.predict_many(archs), saved)
    assert not np.allclose(again.linear_many(archs), saved)  # the correction is really used
    assert again.residual is again.residual  # fitted once per process


def test_wholenet_file_with_pickle_or_corruption_is_refused_in_one_line(cli, tmp_path):
    _, m = _residual_model()
    tables = tmp_path / "tables"
    from edgenas.latency.store import TableStore
    from edgenas.latency.wholenet_store import WholeNetStore

    store = WholeNetStore(TableStore(tables))
    path = store.put("dev-x", "tflite", m, {"n": 1, "source": "t.csv"})
    good = json.loads(path.read_text())

    def refused(mutate, match):
        d = json.loads(json.dumps(good))
        mutate(d["models"]["nb201/b1/tany"]["model"])
        path.write_text(json.dumps(d))
        code, out, err = cli("predict", ARCH, "-d", "dev-x", "-b", "tflite", "--tables-dir", tables)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert str(path) in err and match in err, err

    refused(lambda e: e.update(residual_pickle_b64="gASV"), "never loads code")
    refused(lambda e: e["residual"]["train_latency_ms"].__setitem__(0, -1.0), "finite latencies > 0")
    refused(lambda e: e["coef"].pop(), "'coef'")
    refused(lambda e: e.update(level="magic"), "'level'")
    refused(lambda e: e["residual"]["train_arch"].__setitem__(0, "|x~0|"), "train_arch[0]")
    path.write_text("{not json")
    code, out, err = cli("predict", ARCH, "-d", "dev-x", "-b", "tflite", "--tables-dir", tables)
    assert code == 2 and str(path) in err and len(err.strip().splitlines()) == 1
