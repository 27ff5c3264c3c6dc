"""Discrete evaluation network built from a genotype (darts-pt model.py): aux head, drop path."""
import torch
import torch.nn as nn

from spaces.cell import count_params
from spaces.darts.space import STEPS, skeleton, stem
from spaces.ops import FactorizedReduce, Identity, ReLUConvBN, make_op


def drop_path(x, p):
    """Zero whole samples with probability p and rescale the rest by 1/(1-p)."""
    keep = 1.0 - p
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    def __init__(self, genes, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = (FactorizedReduce(C_pp, C) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        self.indices = [j for _, j in genes]
        self.ops = nn.ModuleList(
            make_op(name, C, 2 if reduction and j < 2 else 1, search=False) for name, j in genes)
        self.multiplier = len(genes) // 2

    def forward(self, s0, s1, drop_prob):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            s = 0
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob)
                s = s + h
            states.append(s)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on the 8x8 output of cell 2L/3 (CIFAR); the ImageNet network's
    reads 7x7 maps with pool stride 2 and has no BN after its 2x2 conv (network_imagenet.py)."""

    def __init__(self, C, num_classes, pool_stride=3, last_bn=True):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            *([nn.BatchNorm2d(768)] if last_bn else []), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def add_cells(net, genotype, C, layers, num_classes, auxiliary, head=AuxiliaryHead,
              **skeleton_kw):
    """Register the cells, the auxiliary head (on cell 2L/3's output) and the classifier of a
    DARTS retrain network on `net`, after its stem; skeleton_kw: the stem's (space.skeleton)."""
    net.layers, net.drop_path_prob = layers, 0.0
    net.cells = nn.ModuleList()
    for i, reduction, reduction_prev, C_pp, C_p, C_curr in skeleton(C, layers, **skeleton_kw):
        genes = genotype.reduce if reduction else genotype.normal
        net.cells.append(EvalCell(genes, C_pp, C_p, C_curr, reduction, reduction_prev))
        if i == 2 * layers // 3:
            C_aux = STEPS * C_curr  # the auxiliary head reads this cell's output
    net.auxiliary_head = head(C_aux, num_classes) if auxiliary else None
    net.classifier = nn.Linear(STEPS * C_curr, num_classes)


def run_cells(net, s0, s1):
    """(logits, aux logits or None) of `add_cells`'s modules on the stem's two outputs; the
    classifier reads the mean over the last map (darts-pt's global pooling, at any size)."""
    aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1, net.drop_path_prob)
        if i == 2 * net.layers // 3 and net.auxiliary_head is not None and net.training:
            aux = net.auxiliary_head(s1)
    return net.classifier(s1.mean(dim=(2, 3))), aux


class EvalNetwork(nn.Module):
    """The network retrained from a genotype; returns (logits, aux logits or None)."""

    def __init__(self, genotype, C, layers, num_classes, auxiliary=True, in_channels=3):
        super().__init__()
        self.stem = stem(in_channels, C)
        add_cells(self, genotype, C, layers, num_classes, auxiliary)

    def forward(self, x):
        s = self.stem(x)
        return run_cells(self, s, s)


_PARAM_SIZES = {}  # building the C36/L20 network takes ~0.3 s; search logs it every epoch


def param_size(genotype, C=36, layers=20, num_classes=10):
    """Parameter count of the eval network for `genotype`, built on the meta device (no memory)."""
    key = (str(genotype), C, layers, num_classes)  # the text names the genotype fully
    if key not in _PARAM_SIZES:
        with torch.device("meta"):
            net = EvalNetwork(genotype, C, layers, num_classes, auxiliary=False)
        _PARAM_SIZES[key] = count_params(net)
    return _PARAM_SIZES[key]
