"""Spaces: networks, supernets, choice points, derivation, and the published-table key match."""

from __future__ import annotations

import random

import pytest
import torch
import yaml

from edgenas.errors import SpaceError
from edgenas.ops.complexity import count_params
from edgenas.spaces import create_space, list_spaces, load_genotype

from conftest import DARTS_V2

PRESETS = [("darts", "small"), ("darts", "small32"), ("proxyless", "small"), ("proxyless", "small32"), ("nb201", "small")]


def test_registry_lists_both_spaces():
    assert {"darts", "proxyless"} <= set(list_spaces())


@pytest.mark.parametrize("space,preset", PRESETS)
def test_random_networks_run_and_match_their_op_specs(space, preset):
    sp = create_space(space, preset)
    rng = random.Random(1)
    for _ in range(3):
        arch = sp.sample(rng)
        net = sp.build(arch).eval()
        y = net(torch.randn(2, *sp.input_shape))
        assert y.shape == (2, sp.num_classes)
        keys = {s.key for s in sp.all_op_specs()}
        assert {s.key for s in sp.op_specs(arch)} <= keys


@pytest.mark.parametrize("space,preset", PRESETS)
def test_supernet_runs_dense_and_single_path(space, preset):
    sp = create_space(space, preset)
    net = sp.supernet()
    x = torch.randn(2, *sp.input_shape)
    y = net(x)
    y.sum().backward()
    assert y.shape == (2, sp.num_classes)
    assert all(p.grad is not None for p in net.arch_params.values())
    arch = sp.sample(random.Random(0))
    w = sp.arch_weights(arch)
    assert set(w) == set(net.arch_params)
    assert net(x, w).shape == (2, sp.num_classes)
    assert sp.derive(w) == arch


@pytest.mark.parametrize("space,preset", PRESETS)
def test_choice_points_index_arch_params(space, preset):
    sp = create_space(space, preset)
    net = sp.supernet()
    for cp in sp.choice_points():
        param = net.arch_params[cp.param]
        assert param.shape[-1] == len(cp.options) == len(cp.specs)
        assert 0 <= cp.row < param.shape[0]
        assert all(len(s) >= 1 for s in cp.specs)


def test_single_path_supernet_matches_standalone_op_count():
    """A one-hot supernet path computes only the chosen ops (skipping the rest)."""
    sp = create_space("proxyless", "small")
    arch = sp.sample(random.Random(5))
    net = sp.supernet()
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for mixed in net.mixed for m in mixed.ops]
    net(torch.randn(1, *sp.input_shape), sp.arch_weights(arch))
    for h in hooks:
        h.remove()
    assert len(calls) == len(arch.ops)


def test_darts_v2_cifar10_has_paper_parameter_count():
    g = load_genotype(DARTS_V2, overrides={"channels": 36, "layers": 20})
    net = g.resolve().build(g.arch)
    assert 3.2e6 < count_params(net) < 3.45e6  # DARTS paper: 3.3 M


def test_darts_derive_keeps_two_strongest_non_none_edges():
    sp = create_space("darts", "small")
    w = {k: torch.zeros(sp.edges_per_cell, 8) for k in ("normal", "reduce")}
    w["normal"][sp.edge_index(0, 0), 0] = 9.0  # 'none' is ignored by the DARTS rule
    w["normal"][sp.edge_index(0, 0), 4] = 1.0
    w["normal"][sp.edge_index(0, 1), 7] = 2.0
    arch = sp.derive(w)
    assert arch.normal[:2] == (("sep_conv_3x3", 0), ("dil_conv_5x5", 1))


def test_proxyless_mobile_layout():
    sp = create_space("proxyless", "mobile")
    layers = sp.layers()
    assert len(layers) == 22
    assert [l.c_out for l in layers[1:5]] == [24] * 4 and layers[-1].c_out == 320
    assert layers[0].options == ("3x3_MBConv1", "5x5_MBConv1", "7x7_MBConv1")
    assert "zero" not in layers[1].options and "zero" in layers[2].options


def test_every_pixel1_key_is_produced_by_the_mobile_preset(shared_data):
    lut = yaml.safe_load((shared_data / "lut" / "proxylessnas-pixel1-mobile_trim.yaml").read_text())
    keys = {s.key for s in create_space("proxyless", "mobile").all_op_specs()}
    expanded = [k for k in lut if k.startswith("expanded_conv-")]
    assert len(expanded) == 69
    assert set(expanded) <= keys
    assert set(lut) <= keys  # Conv, Conv_1 and Logits line up too


@pytest.mark.parametrize("override", [{"channels": 0}, {"channels": 15}, {"layers": -1}])
def test_bad_darts_config_is_rejected(override):
    with pytest.raises(SpaceError):
        create_space("darts", "small", **override)


def test_unknown_space_and_preset():
    with pytest.raises(SpaceError):
        create_space("nasnet")
    with pytest.raises(SpaceError):
        create_space("darts", "huge")


def test_shared_weight_candidates_match_standalone_shapes_and_share_parameters():
    from edgenas.ops.mbconv import ElasticMBConv

    sp = create_space("proxyless", "small")
    shared, independent = sp.supernet(), sp.supernet(shared_weights=False)
    count = lambda m: sum(p.numel() for p in m.weight_parameters())  # noqa: E731
    assert count(shared) < count(independent) / 2
    layer = sp.layers()[3]
    el = ElasticMBConv(layer.c_in, layer.c_out, layer.stride, [3, 6], [3, 5, 7])
    x = torch.randn(2, layer.c_in, layer.hw_in, layer.hw_in)
    for e in (3, 6):
        for k in (3, 5, 7):
            assert el(x, e, k).shape == (2, layer.c_out, layer.hw_out, layer.hw_out)
    assert not torch.allclose(el(x, 3, 3), el(x, 6, 7))


def test_naive_mode_computes_every_candidate():
    from edgenas.spaces.mixed import naive_mode

    sp = create_space("proxyless", "small")
    net = sp.supernet(shared_weights=False)
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for mixed in net.mixed for m in mixed.ops]
    w = sp.arch_weights(sp.sample(random.Random(0)))
    with naive_mode():
        net(torch.randn(1, *sp.input_shape), w)
    for h in hooks:
        h.remove()
    assert len(calls) == sum(len(l.options) for l in sp.layers())


def test_nb201_arch_str_genotype_and_dead_edges_are_not_built():
    from edgenas.ops.darts_ops import ReLUConvBN

    arch_str = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|"  # 0->1, 0->2 are dead
    g = load_genotype(arch_str)
    assert g.space == "nb201" and g.resolve().arch_to_json(g.arch) == arch_str
    assert load_genotype(g.to_json()).arch == g.arch
    sp = g.resolve()
    net = sp.build(g.arch)
    convs = sum(isinstance(m, ReLUConvBN) for m in net.modules())
    specs = sp.op_specs(g.arch)
    assert not any(s.op.startswith("nor_conv") for s in specs)  # only the skip edge is live
    assert convs == 2 * 2  # the two reduction blocks' ReLU-Conv-BNs, no cell conv
    x = torch.randn(1, *sp.input_shape)
    assert net.eval()(x).shape == (1, 10)


def test_nb201_cifar10_network_layout():
    sp = create_space("nb201")
    arch = sp.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    specs = sp.op_specs(arch)
    assert sum(s.op == "nor_conv_3x3" for s in specs) == 6 * 15
    assert {s.in_shape for s in specs if s.op == "nor_conv_3x3"} == {(32, 32, 16), (16, 16, 32), (8, 8, 64)}
    assert sp.build(arch).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_nb201_parameter_counts_match_the_benchmark():
    # NAS-Bench-201 CIFAR-10 networks range from 0.073 M to 1.53 M parameters
    sp = create_space("nb201")
    big = sp.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    small = sp.parse_arch("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert round(count_params(sp.build(big)) / 1e6, 2) == 1.53
    assert round(count_params(sp.build(small)) / 1e6, 3) == 0.073


@pytest.mark.parametrize("space,preset", PRESETS)
def test_space_contract_supernet_zero_op_and_genotype_recognition(space, preset, tmp_path):
    """What generic code asks a space instead of comparing its name (every registered space, same checks)."""
    from edgenas.spaces.genotype import genotype_from_dict, load_genotype
    from edgenas.spaces.mixed import MixedOp, Supernet

    sp = create_space(space, preset)
    net = sp.supernet()
    assert isinstance(net, Supernet)
    assert set(net.arch_params) == {cp.param for cp in sp.choice_points()}
    names = {n for n, _ in net.named_parameters()}
    assert {id(p) for p in net.weight_parameters()} == {id(p) for n, p in net.named_parameters()
                                                         if not n.startswith("arch_params")} and names
    options = {o for cp in sp.choice_points() for o in cp.options}
    assert sp.zero_op in options  # every space here has an option that computes nothing
    for m in net.modules():
        if isinstance(m, MixedOp):
            assert [o == sp.zero_op for o in m.options] == m.zero
    arch = sp.sample(random.Random(4))
    data = sp.arch_to_json(arch)
    owners = [n for n in list_spaces() if create_space(n).owns_arch(data)] if isinstance(data, dict) else []
    texts = [n for n in list_spaces() if isinstance(data, str) and create_space(n).arch_from_text(data) is not None]
    assert owners + texts == [space]  # exactly this space recognises its bare arch
    g = genotype_from_dict(data, preset=preset) if isinstance(data, dict) else load_genotype(data, preset=preset)
    assert g.space == space and sp.decisions_of(g.arch) == sp.decisions_of(arch)
    probs = net.softmax_weights()
    for p, w in probs.items():  # the derivation model: the probabilities unless the derivation drops rows
        d = sp.derived_probs(p, w)
        assert d.shape == w.shape and bool((d >= 0).all()) and bool((d <= 1 + 1e-6).all())
        if space != "darts":
            assert torch.equal(d, w)
    from edgenas.search.base import Candidate
    from edgenas.search.pipeline import Run

    run = Run(tmp_path)  # a search checkpoint holding this space's archs loads back (safe-load allow-list)
    run.save_checkpoint({"strategy": {}, "phase": "retrain", "log": [], "candidates": [Candidate(arch, 1.0, 0.5, "t")]})
    assert isinstance(arch, sp.arch_cls) and run.load_checkpoint()["candidates"][0].arch == arch


def test_wholenet_features_belong_to_their_space_and_load_without_torch():
    """``edgenas.latency.fit`` finds a space's cell features by the space's name (or the cell's text)
    through a torch-free registry: fitting and predicting NB201 networks never import torch."""
    import subprocess
    import sys

    from edgenas.spaces.base import space_class, wholenet_features

    for name in list_spaces():
        cell = wholenet_features(name)
        assert cell is None or (cell.space == name and cell.arch_cls is space_class(name).arch_cls)
    assert wholenet_features("darts") is None and wholenet_features(text=DARTS_V2) is None
    code = ("import sys, random\n"
            "from edgenas.latency.fit import fit_wholenet, WholeNetModel\n"
            "from edgenas.latency.measurements import parse_genotype_text\n"
            "from edgenas.spaces.nb201_arch import NB201_OPS, Nb201Arch\n"
            "rng = random.Random(0)\n"
            "archs = [Nb201Arch(tuple(rng.choice(NB201_OPS) for _ in range(6))) for _ in range(40)]\n"
            "m = fit_wholenet(archs, [1 + 0.1 * len(set(a.live_ops())) for a in archs], level='residual')\n"
            "assert m.space == 'nb201' and m.residual_data is not None\n"
            "WholeNetModel.from_dict(m.to_dict()).predict(parse_genotype_text(archs[0].to_arch_str())[1])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
