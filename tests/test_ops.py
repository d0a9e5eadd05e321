"""Every op type builds from its spec and produces the spec's output shape; keys round-trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgenas.ops import OpSpec, build_op, is_zero_cost
from edgenas.ops.darts_ops import PRIMITIVES, ExactAvgPool
from edgenas.spaces import create_space

SMALL = [("darts", "small"), ("darts", "small32"), ("proxyless", "small"), ("proxyless", "small32"), ("nb201", "small")]


def _all_specs():
    seen = {}
    for space, preset in SMALL:
        for spec in create_space(space, preset).all_op_specs():
            seen.setdefault(spec.key, spec)
    return list(seen.values())


@pytest.mark.parametrize("spec", _all_specs(), ids=lambda s: s.key)
def test_op_output_shape_matches_spec(spec):
    m = build_op(spec).eval()
    h, w, c = spec.in_shape
    with torch.no_grad():
        y = m(torch.randn(2, c, h, w))
    oh, ow, oc = spec.out_shape
    expected = (2, oc) if spec.op in ("Logits", "nb201_head") else (2, oc, oh, ow)
    assert tuple(y.shape) == expected


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", PRIMITIVES)
@pytest.mark.parametrize("hw", [8, 7])
def test_darts_primitive_shapes_every_stride(op, stride, hw):
    spec = OpSpec.make(op, (hw, hw, 8), ((hw + stride - 1) // stride,) * 2 + (8,), stride=stride)
    y = build_op(spec).eval()(torch.randn(1, 8, hw, hw))
    assert tuple(y.shape) == (1, 8, spec.out_shape[0], spec.out_shape[1])


def test_spec_keys_round_trip():
    specs = _all_specs()
    assert len(specs) > 100
    for spec in specs:
        assert OpSpec.from_key(spec.key) == spec


def test_mbconv_key_is_the_proxylessnas_string():
    spec = OpSpec.make("expanded_conv", (112, 112, 16), (56, 56, 24), expand=3, kernel=3, stride=2, idskip=0)
    assert spec.key == "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0"


@pytest.mark.parametrize("hw", [28, 14, 7, 5])
def test_exact_avg_pool_equals_reference_stride2(hw):
    x = torch.randn(2, 4, hw, hw)
    ref = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert torch.allclose(ExactAvgPool(2)(x), ref, atol=1e-6)


def test_zero_cost_ops():
    assert is_zero_cost(OpSpec.make("none", (8, 8, 4), (8, 8, 4), stride=1))
    assert is_zero_cost(OpSpec.make("skip_connect", (8, 8, 4), (8, 8, 4), stride=1))
    assert not is_zero_cost(OpSpec.make("skip_connect", (8, 8, 4), (4, 4, 4), stride=2))
    assert not is_zero_cost(OpSpec.make("sep_conv_3x3", (8, 8, 4), (8, 8, 4), stride=1))


@pytest.mark.parametrize("bad", ["nonsense", "sep_conv_3x3-input:8x8-output:8x8x4-stride:1",
                                 "warp_conv-input:8x8x4-output:8x8x4-stride:1",
                                 "sep_conv_3x3-input:8x8x4-output:8x8x4", "Logits-input:1x1x4-output:2x2x2"])
def test_bad_keys_raise_input_error(bad):
    from edgenas.errors import InputError

    with pytest.raises(InputError):
        OpSpec.from_key(bad)
