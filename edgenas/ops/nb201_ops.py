"""NAS-Bench-201 ops (Dong & Yang, ICLR 2020): ReLU-Conv-BN cell ops, the residual reduction block,
the stem and the BN-ReLU-pool-linear head. ``skip_connect`` and ``avg_pool_3x3`` (stride 1,
padding excluded from the count, as NAS-Bench-201's ``POOLING``) are the DARTS family's ops."""

from __future__ import annotations

from torch import nn

from edgenas.ops.darts_ops import ReLUConvBN
from edgenas.ops.registry import register_op


@register_op("nor_conv_1x1", key_fields=("stride",), kernel=1)
def _nor_conv_1x1(spec, affine=True):
    return ReLUConvBN(spec.in_shape[2], spec.out_shape[2], 1, spec.stride, 0, affine)


@register_op("nor_conv_3x3", key_fields=("stride",), kernel=3)
def _nor_conv_3x3(spec, affine=True):
    return ReLUConvBN(spec.in_shape[2], spec.out_shape[2], 3, spec.stride, 1, affine)


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction block: ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, plus an
    AvgPool2x2(s2) + Conv1x1 shortcut."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


@register_op("nb201_resblock", key_fields=(), kernel=3)
def _resblock(spec, affine=True):
    return ResNetBasicBlock(spec.in_shape[2], spec.out_shape[2], affine)


@register_op("nb201_stem", key_fields=(), kernel=3)
def _stem(spec, affine=True):
    return nn.Sequential(nn.Conv2d(spec.in_shape[2], spec.out_shape[2], 3, padding=1, bias=False),
                         nn.BatchNorm2d(spec.out_shape[2]))


class Nb201Head(nn.Module):
    def __init__(self, c_in, classes):
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c_in, classes)

    def forward(self, x):
        return self.classifier(self.lastact(x).mean(dim=(2, 3)))


@register_op("nb201_head", key_fields=(), flat_output=True)
def _head(spec, **_):
    return Nb201Head(spec.in_shape[2], spec.out_shape[2])
