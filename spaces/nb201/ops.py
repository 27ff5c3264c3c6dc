"""NAS-Bench-201's ops and its ResNet reduction block (darts-pt nasbench201/cell_operations.py).

Unlike the DARTS library, `nor_conv_kxk` is ReLU-conv-BN and the average pool has no BN after
it; the cells keep their channel count, so no op needs a 1x1 preprocess.
"""
import torch.nn as nn

from spaces.ops import AvgPool2d, Identity, ReLUConvBN, Zero


def make_op(name, C, stride, search):
    """One candidate op; search ops have affine-free BNs (running statistics on)."""
    affine = not search
    ops = {"none": lambda: Zero(stride), "skip_connect": Identity,
           "nor_conv_1x1": lambda: ReLUConvBN(C, C, 1, stride, 0, affine),
           "nor_conv_3x3": lambda: ReLUConvBN(C, C, 3, stride, 1, affine),
           "avg_pool_3x3": lambda: AvgPool2d(3, stride=stride, padding=1,
                                             count_include_pad=False)}
    if name not in ops:
        raise ValueError(f"unknown NAS-Bench-201 op {name!r}; known ops: {', '.join(ops)}")
    return ops[name]()


class ResNetBlock(nn.Module):
    """ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus avgpool(2) + 1x1 conv on the input."""

    def __init__(self, C_in, C_out):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                        nn.Conv2d(C_in, C_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def stages(C, N):
    """(channels, is the ResNet block) of each of the 3N + 2 layers: N cells at C, a block to
    2C, N cells at 2C, a block to 4C, N cells at 4C."""
    return ([(C, False)] * N + [(2 * C, True)] + [(2 * C, False)] * N + [(4 * C, True)]
            + [(4 * C, False)] * N)


def stem(in_channels, C):
    return nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))


def head(C, num_classes):
    """BN + ReLU, global average pool, linear."""
    return nn.Sequential(nn.BatchNorm2d(C), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(C, num_classes))
