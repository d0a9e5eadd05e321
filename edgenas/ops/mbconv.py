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


class ElasticMBConv(nn.Module):
    """All MBConv candidates of one supernet layer in one set of weights (search only).

    Candidate (expand e, kernel k) uses the first ``c_in * e`` middle channels and the centre
    k x k of a shared depthwise kernel (the 'superkernel' of Single-Path NAS / Once-for-All), with
    its own BatchNorms. Why: with independent weights every candidate maps a layer's input to an
    unrelated random basis, so a path-sampled chain does not learn for a long time; measured on
    the proxyless 'small' supernet, Fashion-MNIST, batch 64: training loss still at chance (2.28)
    after 120 random-path steps with independent candidates. Sharing keeps the bases aligned.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expands, kernels):
        super().__init__()
        import torch

        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.max_mid = c_in * max(expands)
        self.max_k = max(kernels)
        self.has_expand = max(expands) > 1
        if self.has_expand:
            self.w_expand = nn.Parameter(torch.empty(self.max_mid, c_in, 1, 1))
        self.w_dw = nn.Parameter(torch.empty(self.max_mid, 1, self.max_k, self.max_k))
        self.w_project = nn.Parameter(torch.empty(c_out, self.max_mid, 1, 1))
        for w in ([self.w_expand] if self.has_expand else []) + [self.w_dw, self.w_project]:
            nn.init.kaiming_normal_(w, mode="fan_out")
        self.bns = nn.ModuleDict()
        for e in expands:
            for k in kernels:
                mid = c_in * e
                self.bns[f"e{e}k{k}"] = nn.ModuleList(
                    [nn.BatchNorm2d(mid) if e > 1 else nn.Identity(), nn.BatchNorm2d(mid), nn.BatchNorm2d(c_out)])

    def forward(self, x, expand: int, kernel: int):
        import torch.nn.functional as F

        mid = self.c_in * expand
        bn_e, bn_dw, bn_p = self.bns[f"e{expand}k{kernel}"]
        h = x
        if expand > 1:
            h = F.relu6(bn_e(F.conv2d(x, self.w_expand[:mid])))
        s = (self.max_k - kernel) // 2
        h = F.relu6(bn_dw(F.conv2d(h, self.w_dw[:mid, :, s:s + kernel, s:s + kernel], stride=self.stride,
                                   padding=kernel // 2, groups=mid)))
        return bn_p(F.conv2d(h, self.w_project[:, :mid]))


class ElasticCandidate(nn.Module):
    """One (expand, kernel) view of an ElasticMBConv, so a MixedOp can hold candidates as usual."""

    def __init__(self, shared: ElasticMBConv, expand: int, kernel: int):
        super().__init__()
        self.expand, self.kernel = expand, kernel
        object.__setattr__(self, "shared", shared)  # not a child: its parameters are counted once

    def forward(self, x):
        return self.shared(x, self.expand, self.kernel)
