"""PC-DARTS (``--partial-channels K``): partial channel edges, edge normalisation, and what must not move.

Latency comes from the shipped, measured x86-64-host onnxruntime table (real data); training uses
the synthetic dataset only to keep these smoke tests short.
"""

from __future__ import annotations

import pytest
import torch

from edgenas.errors import InputError, SpaceError
from edgenas.latency.expected import ExpectedLatency
from edgenas.latency.predictor import LatencyPredictor
from edgenas.ops.darts_ops import PRIMITIVES
from edgenas.search.base import Budget, SearchContext, create_strategy
from edgenas.search.data import load_data
from edgenas.spaces import create_space
from edgenas.spaces.mixed import PartialChannelMixedOp, channel_shuffle


@pytest.fixture(scope="module")
def space():
    return create_space("darts", "small")


@pytest.fixture(scope="module")
def tiny():
    """The supernet's proxy width (``--search-channels 4``): same cells, a fraction of the compute."""
    return create_space("darts", "small", channels=4)


def _ctx(space, pred):
    return SearchContext(space=space, data=load_data("synthetic", 600, 300, 200), predictor=pred,
                         expected=ExpectedLatency(space, pred, "derived"), target_ms=0.5,
                         budget=Budget(steps=4, batch_size=8, population=2, eval_examples=64),
                         search_space=create_space("darts", "small", channels=4))


@pytest.fixture(scope="module")
def predictor(space):
    return LatencyPredictor.load("x86-64-host", "onnxruntime", space, 1)


@pytest.fixture
def ctx(space, predictor):
    return _ctx(space, predictor)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_partial_edges_run_ops_on_a_quarter_and_keep_every_shape():
    torch.manual_seed(0)
    space = create_space("darts", "small", channels=8)
    plain, pc = space.supernet(), space.supernet(partial_channels=4)
    for cell_plain, cell_pc in zip(plain.cells, pc.cells):
        edge = cell_pc.edges[0]
        assert isinstance(edge, PartialChannelMixedOp)
        sep = edge.ops[PRIMITIVES.index("sep_conv_3x3")]
        assert sep[0][1].in_channels == cell_pc.channels // 4  # the depthwise conv sees C/4 channels
        x = torch.randn(2, cell_pc.channels, 14, 14)
        w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
        assert edge(x, w).shape == cell_plain.edges[0](x, w).shape  # stride-2 bypass pooled to match
    out = pc(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in pc.edge_params.values())
    assert sum(p.numel() for p in pc.weight_parameters()) < 0.3 * sum(p.numel() for p in plain.weight_parameters())


def test_edge_betas_are_normalised_over_each_nodes_inputs(tiny):
    space = tiny
    net = space.supernet(partial_channels=4)
    with torch.no_grad():
        net.edge_params["normal"].copy_(torch.randn(space.edges_per_cell) * 3)
    beta = net.edge_weights("normal").detach()
    spans = torch.split(beta, [node + 2 for node in range(space.config.nodes)])
    assert all(float(s.sum()) == pytest.approx(1.0) for s in spans)
    assert not torch.allclose(beta, spans[0].new_full(beta.shape, 0.5))
    rows = net.softmax_weights()["normal"].detach().sum(dim=1)  # beta folded into the op weights
    assert torch.allclose(rows, beta)


def test_derive_ranks_edges_by_beta_times_the_best_alpha(space, tiny):
    """PC-DARTS' rule: node 1 (inputs 0, 1, 2) keeps the two edges with the largest
    softmax(beta) * max softmax(alpha); plain DARTS would keep the two largest alphas."""
    net = tiny.supernet(partial_channels=4)
    sep3 = PRIMITIVES.index("sep_conv_3x3")
    with torch.no_grad():
        for kind in net.arch_params:
            net.arch_params[kind].zero_()
            net.edge_params[kind].zero_()
            for inp, logit in ((0, 3.0), (1, 2.0), (2, 1.0)):  # alpha strength: in0 > in1 > in2
                net.arch_params[kind][space.edge_index(1, inp), sep3] = logit
            net.edge_params[kind][space.edge_index(1, 0)] = -3.0  # beta turns in0 down
    plain = space.derive({k: torch.softmax(v, -1) for k, v in net.arch_params.items()})
    pc = space.derive({k: v.detach() for k, v in net.softmax_weights().items()})
    assert [i for _, i in plain.normal[2:4]] == [0, 1]
    assert pc.normal[2:4] == (("sep_conv_3x3", 1), ("sep_conv_3x3", 2))
    space.op_specs(pc)  # a valid genotype of the deployed space


def test_expected_latency_is_priced_at_full_width(space, tiny, ctx):
    """The deployed cell has full channels whatever K: with uniform betas K=4 gives K=1's expected
    latency for the same alphas, and with sharp alphas and betas it is the derived cell's
    predicted latency (the full-width table rows)."""
    plain, pc = tiny.supernet(), tiny.supernet(partial_channels=4)
    with torch.no_grad():
        for kind in plain.arch_params:
            pc.arch_params[kind].copy_(plain.arch_params[kind])
            pc.edge_params[kind].zero_()
    with torch.no_grad():
        same = float(ctx.expected(pc.softmax_weights())), float(ctx.expected(plain.softmax_weights()))
    assert same[0] == pytest.approx(same[1], rel=1e-5)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for kind in pc.arch_params:
            # one op per edge at +30, the rest at -30: sharp (30 * randn left near-ties between two ops)
            rows, width = pc.arch_params[kind].shape
            assert PRIMITIVES.index("none") == 0  # never picked below
            pick = torch.randint(1, width, (rows,), generator=gen)
            pc.arch_params[kind].fill_(-30.0)
            pc.arch_params[kind][torch.arange(rows), pick] = 30.0
            for node in range(space.config.nodes):  # two edges per node, as a derived cell keeps
                keep = torch.randperm(node + 2, generator=gen)[:2]
                for inp in range(node + 2):
                    pc.edge_params[kind][space.edge_index(node, inp)] = 30.0 if inp in keep else -30.0
    probs = {k: v.detach() for k, v in pc.softmax_weights().items()}
    arch = space.derive(probs)
    assert float(ctx.expected(probs)) == pytest.approx(ctx.predicted_ms(arch), rel=0.02)


def test_plain_darts_is_the_same_run_with_the_option_at_one(space, predictor):
    """K=1 is plain DARTS: no betas, and the same seed gives bit-identical weights and alphas.
    (Checked against main before this option by hashing the state after 3 steps: identical.)"""
    states = []
    for opts in ({}, {"partial_channels": 1}):
        torch.manual_seed(0)
        ctx = _ctx(space, predictor)  # fresh data iterators: both runs see the same batches
        s = create_strategy("darts", warmup_fraction=0.0, max_skips=99, **opts)
        s.setup(ctx)
        s.step(ctx)  # one arch step and one weight step
        assert not hasattr(s.net, "edge_params")
        states.append(s.net.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_pc_darts_search_trains_betas_and_derives_valid_candidates(ctx):
    torch.manual_seed(0)
    s = create_strategy("darts", partial_channels=4, warmup_fraction=0.0, max_skips=99)
    s.setup(ctx)
    start = {k: v.detach().clone() for k, v in s.net.edge_params.items()}
    for _ in range(2):
        row = s.step(ctx)
    assert row["expected_ms"] > 0
    assert any(not torch.equal(start[k], v) for k, v in s.net.edge_params.items())
    cands = s.candidates(ctx)
    assert cands
    for c in cands:
        ctx.space.op_specs(c.arch)
        assert c.predicted_ms == pytest.approx(ctx.predicted_ms(c.arch))
    again = create_strategy("darts", partial_channels=4)
    again.setup(ctx)
    again.load_state_dict(s.state_dict())
    assert torch.equal(again.net.edge_params["normal"], s.net.edge_params["normal"])


def test_partial_channels_that_do_not_divide_the_channels_are_refused(ctx, space):  # ctx: channels 4
    with pytest.raises(SpaceError, match="must divide"):
        space.supernet(partial_channels=3)
    s = create_strategy("darts", partial_channels=3)
    with pytest.raises(InputError, match="must divide"):
        s.setup(ctx)


def test_partial_channels_need_a_space_whose_supernet_has_them():
    nb = create_space("nb201", "small")
    pred = LatencyPredictor.load("x86-64-host", "onnxruntime", create_space("darts", "small"), 1)
    c = SearchContext(space=nb, data=load_data("synthetic", 64, 32, 32), predictor=pred, expected=None,
                      target_ms=1.0, budget=Budget(steps=1, batch_size=8), search_space=nb)
    with pytest.raises(InputError, match="partial channels"):
        create_strategy("darts", partial_channels=4).setup(c)


def test_cli_refuses_partial_channels_outside_darts(cli, tmp_path):
    code, _, err = cli("search", "--target-ms", "1", "--strategy", "proxyless", "--partial-channels", "4",
                       "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "--partial-channels" in err
    assert not (tmp_path / "run").exists()
