"""The DARTS op family (Liu et al., 2019): the 8 primitives and the fixed parts of a DARTS net.

Semantics follow the DARTS reference code (``cnn/operations.py``) with two documented changes
that keep the result identical, because litert-torch lowers the reference forms to ops XNNPACK
does not delegate (``edgenas export`` checks every op):
- a stride-2 ``avg_pool_3x3`` is a padded-count average pool times a constant border
  correction (``ExactAvgPool``); the reference (``count_include_pad=False``) becomes STABLEHLO ops;
- a stride-2 ``max_pool_3x3`` on an even-sized input pads by repeating its edge rows and columns
  (``ExactMaxPool``); the reference (implicit -inf padding) becomes PADV2, which XNNPACK refuses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgenas.ops.registry import register_op

PRIMITIVES = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Two offset stride-2 1x1 convs, concatenated: DARTS' stride-2 skip and reduction preprocess."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if x.shape[2] % 2 or x.shape[3] % 2:  # odd sizes: pad so both branches agree (DARTS assumes even)
            shifted = F.pad(shifted, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class ExactAvgPool(nn.Module):
    """3x3 average pool that excludes padding from the count, in an XNNPACK-friendly form.

    Stride 1 uses ``count_include_pad=False`` directly (litert-torch lowers it to
    AVERAGE_POOL_2D). Stride 2 averages with the padding counted, then multiplies by a
    constant ``9 / valid_count`` map, which gives exactly the same numbers and lowers to
    AVERAGE_POOL_2D + MUL instead of STABLEHLO ops.
    """

    def __init__(self, stride):
        super().__init__()
        self.stride = stride
        self._scale: dict[tuple, torch.Tensor] = {}

    def forward(self, x):
        if self.stride == 1:
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        y = F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=True)
        return y * self._correction(x.shape[2], x.shape[3], x.dtype, x.device)

    def _correction(self, h, w, dtype, device):
        key = (h, w, dtype, device)
        if key not in self._scale:  # computed in numpy so export sees a constant, not traced ops
            self._scale[key] = torch.as_tensor(_inverse_valid_fraction(h, w, self.stride), dtype=dtype, device=device)
        return self._scale[key]


class ExactMaxPool(nn.Module):
    """3x3 max pool with padding 1, in a form XNNPACK delegates at every stride and size.

    Stride 1, and stride 2 on odd sizes, lower to MAX_POOL_2D with SAME padding directly. Stride 2
    on an even size would need asymmetric -inf padding (PADV2, not delegated); instead the input
    is padded with copies of its edge rows and columns (SLICE + CONCATENATION) and pooled VALID.
    A copied edge value is already inside every window it joins, so the maxima are exactly the
    reference ones.
    """

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1 or (x.shape[2] % 2 and x.shape[3] % 2):
            return F.max_pool2d(x, 3, self.stride, 1)
        x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        x = torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)
        return F.max_pool2d(x, 3, self.stride, 0)


def _inverse_valid_fraction(h, w, stride, k=3, pad=1):
    """9 / (number of in-bounds taps) for each output of a kxk pool with symmetric padding."""
    def counts(n):
        out = (n + 2 * pad - k) // stride + 1
        starts = np.arange(out) * stride - pad
        return np.minimum(starts + k, n) - np.maximum(starts, 0)

    valid = np.outer(counts(h), counts(w)).astype(np.float64)
    return (k * k / valid)[None, None]


def darts_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """One of the 8 DARTS primitives, C channels in and out (as in DARTS' ``OPS`` table)."""
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return ExactAvgPool(stride)
    if name == "max_pool_3x3":
        return ExactMaxPool(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return SepConv(c, c, k, stride, k // 2, affine)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return DilConv(c, c, k, stride, (k // 2) * 2, 2, affine)
    raise KeyError(name)


def _register_primitive(name, kernel, dilation, zero_cost=False):
    def build(spec, affine=True):
        return darts_op(name, spec.in_shape[2], spec.stride, affine)

    register_op(name, key_fields=("stride",), zero_cost=zero_cost, kernel=kernel, dilation=dilation)(build)


_register_primitive("none", 0, 1, zero_cost=True)
_register_primitive("max_pool_3x3", 3, 1)
_register_primitive("avg_pool_3x3", 3, 1)
_register_primitive("skip_connect", 1, 1, zero_cost=lambda spec: spec.stride == 1)
_register_primitive("sep_conv_3x3", 3, 1)
_register_primitive("sep_conv_5x5", 5, 1)
_register_primitive("dil_conv_3x3", 3, 2)
_register_primitive("dil_conv_5x5", 5, 2)


@register_op("stem", key_fields=("kernel", "stride"))
def _stem(spec, affine=True):
    """DARTS stem: 3x3 conv + BN (no activation)."""
    c_in, c_out = spec.in_shape[2], spec.out_shape[2]
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, spec.kernel or 3, spec.stride, (spec.kernel or 3) // 2, bias=False),
        nn.BatchNorm2d(c_out, affine=affine),
    )


@register_op("relu_conv_bn", key_fields=(), kernel=1)
def _preprocess(spec, affine=True):
    """A cell's 1x1 preprocess of a previous cell's output."""
    return ReLUConvBN(spec.in_shape[2], spec.out_shape[2], 1, 1, 0, affine)


@register_op("factorized_reduce", key_fields=(), kernel=1)
def _factorized_reduce(spec, affine=True):
    """A cell's preprocess of its input two cells back when the previous cell reduced."""
    return FactorizedReduce(spec.in_shape[2], spec.out_shape[2], affine)


class Logits(nn.Module):
    """Global average pool + linear classifier (the published tables' ``Logits`` op)."""

    def __init__(self, c_in, classes, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.linear = nn.Linear(c_in, classes)

    def forward(self, x):
        return self.linear(self.dropout(x.mean(dim=(2, 3))))


@register_op("Logits", key_fields=(), flat_output=True)
def _logits(spec, **_):
    return Logits(spec.in_shape[2], spec.out_shape[2])
