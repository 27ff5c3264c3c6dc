"""The ImageNet network of the mobile setting (DARTS §3.3, paper Table 5; darts-pt
model_imagenet.py): two stride-2 stems bring 224x224 inputs to 28x28, then the cells as on
CIFAR, an auxiliary head on the 7x7 output of cell 2L/3, global average pooling."""
import torch.nn as nn

from spaces.darts.network import AuxiliaryHead, EvalCell
from spaces.darts.space import STEPS, skeleton


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
        self.layers = layers
        self.drop_path_prob = 0.0
        self.stem0, self.stem1 = stems(C)
        self.cells = nn.ModuleList()
        for i, reduction, reduction_prev, C_pp, C_p, C_curr in skeleton(
                C, layers, stem_channels=C, after_reduction=True):
            genes = genotype.reduce if reduction else genotype.normal
            self.cells.append(EvalCell(genes, C_pp, C_p, C_curr, reduction, reduction_prev))
            if i == 2 * layers // 3:
                C_aux = STEPS * C_curr
        self.auxiliary_head = auxiliary_head(C_aux, num_classes) if auxiliary else None
        self.classifier = nn.Linear(STEPS * C_curr, num_classes)

    def forward(self, x):
        aux = None
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self.layers // 3 and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        # the mean over the map: darts-pt's AvgPool2d(7) at 224x224, and any other size too
        return self.classifier(s1.mean(dim=(2, 3))), aux
