"""The ProxylessNAS / MobileNetV2 op family: stem conv, MBConv blocks, 1x1 head conv, zero.

Op type names are the ones the published ProxylessNAS and Once-for-All tables use
(``Conv``, ``expanded_conv``, ``Conv_1``, ``Logits``), so their keys line up with ours.
"""

from __future__ import annotations

from torch import nn

from edgenas.ops.registry import register_op


def conv_bn_act(c_in, c_out, kernel, stride, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at expand 1), kxk depthwise, 1x1 linear project."""

    def __init__(self, c_in, c_out, kernel, stride, expand, residual=None):
        super().__init__()
        mid = c_in * expand
        self.expand = conv_bn_act(c_in, mid, 1, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn_act(mid, c_out, 1, 1, act=False)
        can_skip = stride == 1 and c_in == c_out
        self.residual = can_skip if residual is None else residual
        if self.residual and not can_skip:
            raise ValueError("an identity skip needs stride 1 and equal channels")

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


@register_op("expanded_conv", key_fields=("expand", "kernel", "stride", "idskip"))
def _mbconv(spec, **_):
    return MBConv(spec.in_shape[2], spec.out_shape[2], spec.kernel, spec.stride, spec.expand,
                  residual=bool(spec.idskip))


@register_op("Conv", key_fields=(), kernel=3)
def _first_conv(spec, **_):
    """First conv: 3x3, stride from the shapes, BN, ReLU6."""
    return conv_bn_act(spec.in_shape[2], spec.out_shape[2], 3, spec.stride)


@register_op("Conv_1", key_fields=(), kernel=1)
def _head_conv(spec, **_):
    """Feature-mixing 1x1 conv before the classifier, BN, ReLU6."""
    return conv_bn_act(spec.in_shape[2], spec.out_shape[2], 1, 1)


class ZeroLayer(nn.Module):
    """The 'zero' choice of a ProxylessNAS layer: with the identity skip the block is the identity."""

    def forward(self, x):
        return x


@register_op("zero", key_fields=(), zero_cost=True)
def _zero(spec, **_):
    return ZeroLayer()
