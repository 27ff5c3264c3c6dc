"""The discrete NAS-Bench-201 network of a structure: the benchmark's architecture, with the one
chosen op per edge (affine BNs) in every cell."""
import torch
import torch.nn as nn

from spaces.cell import count_params
from spaces.nb201.ops import ResNetBlock, head, make_op, stages, stem
from spaces.nb201.space import CELL


class Cell(nn.Module):
    def __init__(self, structure, C):
        super().__init__()
        genes = [g for node in structure.nodes for g in node]  # edge order
        self.inputs = [j for _, j in genes]
        self.ops = nn.ModuleList(make_op(op, C, 1, search=False) for op, _ in genes)

    def forward(self, x):
        states = [x]
        for eids in CELL.node_edges():
            states.append(sum(self.ops[e](states[self.inputs[e]]) for e in eids))
        return states[-1]


class Network(nn.Module):
    """Returns (logits, None): no auxiliary head."""

    def __init__(self, structure, C=16, N=5, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = stem(in_channels, C)
        layers, C_prev = [], C
        for C_curr, block in stages(C, N):
            layers.append(ResNetBlock(C_prev, C_curr) if block else Cell(structure, C_curr))
            C_prev = C_curr
        self.cells = nn.ModuleList(layers)
        self.head = head(C_prev, num_classes)
        self.drop_path_prob = 0.0  # set by the retrain loop; NAS-Bench-201 has no drop path

    def forward(self, x):
        s = self.stem(x)
        for layer in self.cells:
            s = layer(s)
        return self.head(s), None


def param_size(structure, num_classes=10, C=16, N=5):
    """Parameters of the benchmark network for `structure`, built on the meta device."""
    with torch.device("meta"):
        return count_params(Network(structure, C, N, num_classes))
