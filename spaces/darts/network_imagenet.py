"""The ImageNet network of the mobile setting (DARTS §3.3, paper Table 5; darts-pt
model_imagenet.py): two stride-2 stems bring 224x224 inputs to 28x28, then the cells as on
CIFAR, an auxiliary head on the 7x7 output of cell 2L/3, global average pooling."""
import torch.nn as nn

from spaces.darts.network import AuxiliaryHead, add_cells, run_cells


def stems(C):
    """stem0: two stride-2 3x3 convs to C (224 -> 56); stem1: one more (56 -> 28)."""
    stem0 = nn.Sequential(
        nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
    stem1 = nn.Sequential(
        nn.ReLU(inplace=True), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C))
    return stem0, stem1


def auxiliary_head(C, num_classes):
    """The auxiliary classifier on the 7x7 output of cell 2L/3. No BN after its 2x2 conv: the
    DARTS and darts-pt ImageNet heads leave it out (a typo kept for their published runs)."""
    return AuxiliaryHead(C, num_classes, pool_stride=2, last_bn=False)


class ImageNetNetwork(nn.Module):
    """The retrain network for ImageNet; returns (logits, aux logits or None)."""

    def __init__(self, genotype, C, layers, num_classes, auxiliary=True):
        super().__init__()
        self.stem0, self.stem1 = stems(C)
        add_cells(self, genotype, C, layers, num_classes, auxiliary, head=auxiliary_head,
                  stem_channels=C, after_reduction=True)

    def forward(self, x):
        s0 = self.stem0(x)
        return run_cells(self, s0, self.stem1(s0))
