"""The legacy ONNX exporter is used for single ops only where it gives dynamo's graph, exactly.

What onnxruntime times is the graph after its own optimisation, so "exact" means: for every op
kind in LEGACY_EXACT_OPS, the legacy export (all-zero Conv biases dropped) and the dynamo export
of the same module optimise to the same nodes, attributes and weight shapes, with equal outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgenas.ops.registry import is_zero_cost
from edgenas.profiling.base import create_backend
from edgenas.profiling.onnx_exporters import LEGACY_EXACT_OPS, export_op_legacy, graph_difference
from edgenas.profiling.onnxruntime_backend import export_onnx
from edgenas.profiling.runner import nchw, op_module, space_specs


def _variants():
    """One op instance per structure: kind, kernel, stride, expanded or not, dilation, skip.

    Shapes alone do not change the graph, but these do (an expanded MBConv has a BatchNorm-folded
    depthwise Conv whose zero bias the exporter shares, one without has not)."""
    seen = {}
    for s in space_specs(["darts", "proxyless", "nb201"], "small"):
        if not is_zero_cost(s):
            seen.setdefault((s.op, s.kernel, s.stride, min(s.expand, 2), s.dilation, s.idskip), s)
    return list(seen.values())


VARIANTS = _variants()
KINDS = {s.op: s for s in reversed(VARIANTS)}  # the first instance of each kind


def _same_graph(spec, batch, tmp_path):
    shape, module = nchw(spec, batch), op_module(spec)
    export_onnx(module, shape, tmp_path / "dynamo.onnx")  # the reference: what export ships
    export_op_legacy(module, shape, tmp_path / "legacy.onnx")
    return graph_difference(tmp_path / "dynamo.onnx", tmp_path / "legacy.onnx")


def test_every_listed_kind_is_an_op_of_a_space():
    assert LEGACY_EXACT_OPS <= set(KINDS)


@pytest.mark.parametrize("spec", [s for s in VARIANTS if s.op in LEGACY_EXACT_OPS], ids=lambda s: s.key)
def test_legacy_export_optimises_to_the_dynamo_graph(spec, tmp_path):
    assert _same_graph(spec, 1, tmp_path) == ""


def test_batch_8_too(tmp_path):
    richest = max((s for s in VARIANTS if s.op == "expanded_conv"), key=lambda s: (s.expand, s.stride))
    assert _same_graph(richest, 8, tmp_path) == ""


def test_the_check_sees_a_kept_zero_bias(tmp_path):
    """Not vacuous: the raw legacy export (zero bias kept) of a Conv+BatchNorm op differs from dynamo's."""
    spec = KINDS["relu_conv_bn"]
    module, shape = op_module(spec), nchw(spec, 1)
    export_onnx(module, shape, tmp_path / "dynamo.onnx")
    export_onnx(module, shape, tmp_path / "raw_legacy.onnx", prefer_dynamo=False)
    assert "node" in graph_difference(tmp_path / "dynamo.onnx", tmp_path / "raw_legacy.onnx")


def test_only_all_zero_conv_biases_are_dropped(tmp_path):
    import torch

    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.0, 0.5, 0.0, 0.0]))
    export_op_legacy(conv, (1, 3, 8, 8), tmp_path / "kept.onnx")
    with torch.no_grad():
        conv.bias.zero_()
    export_op_legacy(conv, (1, 3, 8, 8), tmp_path / "dropped.onnx")
    kept, dropped = onnx.load(tmp_path / "kept.onnx"), onnx.load(tmp_path / "dropped.onnx")
    assert len(kept.graph.node[0].input) == 3 and len(dropped.graph.node[0].input) == 2
    assert len(dropped.graph.initializer) == 1  # the weight; the bias initializer is gone too
    bias = numpy_helper.to_array({i.name: i for i in kept.graph.initializer}[kept.graph.node[0].input[2]])
    assert np.array_equal(bias, [0.0, 0.5, 0.0, 0.0])


def test_backend_routes_only_tagged_single_ops_to_the_legacy_exporter(tmp_path):
    """A tagged op of a listed kind goes legacy; the same module untagged (as inside a network) goes dynamo."""
    be = create_backend("onnxruntime")
    spec = KINDS["expanded_conv"]
    tagged = op_module(spec)
    be.export(tagged, nchw(spec, 1), tmp_path / "tagged.onnx")
    export_op_legacy(tagged, nchw(spec, 1), tmp_path / "legacy.onnx")
    del tagged.edgenas_op
    be.export(tagged, nchw(spec, 1), tmp_path / "untagged.onnx")
    export_onnx(tagged, nchw(spec, 1), tmp_path / "dynamo.onnx")

    def nodes(name):
        return [(n.op_type, [helper.get_attribute_value(a) for a in n.attribute])
                for n in onnx.load(tmp_path / name).graph.node]

    assert nodes("tagged.onnx") == nodes("legacy.onnx")
    assert nodes("untagged.onnx") == nodes("dynamo.onnx")
    assert nodes("legacy.onnx") != nodes("dynamo.onnx")  # raw graphs differ; optimised they agree (above)
