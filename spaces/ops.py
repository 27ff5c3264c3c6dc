"""Candidate operations of the DARTS cell (darts-pt operations.py), search and eval variants."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ReLUConvBN(nn.Sequential):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    def __init__(self, C, kernel_size, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU-depthwise-pointwise-BN blocks; stride only on the first."""

    def __init__(self, C, kernel_size, stride, padding, affine=True):
        super().__init__(
            *DilConv(C, kernel_size, stride, padding, 1, affine),
            *DilConv(C, kernel_size, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    """The `none` op: zeros shaped like the (subsampled) input."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class Noise(nn.Module):
    """S4's `noise` op: fresh N(0, 1) of the output shape, independent of the input values."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return torch.randn_like(x[:, :, ::self.stride, ::self.stride])


class _Layout(torch.autograd.Function):
    """x in memory format `to`; its gradient goes back in format `back`.

    Autograd's own .contiguous() hands the gradient back in the layout it arrives in: the
    pool's backward then gets an NCHW gradient with an NHWC input, and the CPU's avg-pool
    backward on such mixed layouts is 4-5x slower than on NHWC alone, as is accumulating an
    NHWC gradient into an NCHW one (README, Performance). Values are unchanged.
    """

    @staticmethod
    def forward(ctx, x, to, back):
        ctx.back = back
        return x.contiguous(memory_format=to)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=ctx.back), None, None


def _nhwc_on_cpu(pool, x):
    """Pool in channels_last on the CPU, forward and backward, returned in the input's layout.

    The CPU's NCHW 3x3 pooling kernels are 3-13x slower than its NHWC ones at these sizes
    (bench/perf.py notes); both give bit-identical values, argmax ties and gradients
    (tests/test_perf.py). Other devices, and inputs already NHWC, pool as they are.
    """
    if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
        return pool(x)
    nhwc, nchw = torch.channels_last, torch.contiguous_format
    if not (x.requires_grad and torch.is_grad_enabled()):  # no backward: plain layout changes
        return pool(x.contiguous(memory_format=nhwc)).contiguous(memory_format=nchw)
    return _Layout.apply(pool(_Layout.apply(x, nhwc, nchw)), nchw, nhwc)


class MaxPool2d(nn.MaxPool2d):
    def forward(self, x):
        return _nhwc_on_cpu(super().forward, x)


class AvgPool2d(nn.AvgPool2d):
    def forward(self, x):
        return _nhwc_on_cpu(super().forward, x)


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on x and on x shifted by one pixel, concat, BN."""

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        assert C_out % 2 == 0, "FactorizedReduce needs an even channel count"
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        if x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last):
            # the same convs as every-other-pixel subsamples through stride-1 1x1 convs: oneDNN's
            # CPU backward of a stride-2 1x1 conv in channels_last corrupts memory for some
            # shapes (torch 2.14; the 56x56 maps of the ImageNet network segfault)
            a = F.conv2d(x[:, :, ::2, ::2], self.conv_1.weight)
            b = F.conv2d(x[:, :, 1::2, 1::2], self.conv_2.weight)
        else:
            a, b = self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])
        return self.bn(torch.cat([a, b], dim=1))


OPS = {
    "none": lambda C, s, affine: Zero(s),
    "noise": lambda C, s, affine: Noise(s),
    "max_pool_3x3": lambda C, s, affine: MaxPool2d(3, stride=s, padding=1),
    "avg_pool_3x3": lambda C, s, affine: AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
    "skip_connect": lambda C, s, affine: Identity() if s == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, s, affine: SepConv(C, 3, s, 1, affine),
    "sep_conv_5x5": lambda C, s, affine: SepConv(C, 5, s, 2, affine),
    "dil_conv_3x3": lambda C, s, affine: DilConv(C, 3, s, 2, 2, affine),
    "dil_conv_5x5": lambda C, s, affine: DilConv(C, 5, s, 4, 2, affine),
}


def make_op(name, C, stride, search):
    """Build op `name`; search ops use affine=False BNs and pools get a BN after them."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(OPS)}")
    op = OPS[name](C, stride, not search)
    if search and "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op
