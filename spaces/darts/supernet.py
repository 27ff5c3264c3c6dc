"""The DARTS search network (darts-pt sota/cnn/model_search.py): stem, 8 cells, classifier."""
import torch
import torch.nn as nn

from spaces.darts.space import CELL, STEPS, skeleton, stem
from spaces.ops import FactorizedReduce, ReLUConvBN
from spaces.supernet import MixedOp, Supernet


class SearchCell(nn.Module):
    def __init__(self, op_lists, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.cell_type = CELL.type_index("reduce" if reduction else "normal")
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        # in a reduction cell only the edges from the two cell inputs have stride 2
        self.edges = nn.ModuleList(
            MixedOp(op_lists[e], C, 2 if reduction and j < 2 else 1, self.cell_type, e)
            for e, (_, j) in enumerate(CELL.edges))

    def forward(self, s0, s1, w, active):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(STEPS):
            s = 0
            for h in states:
                s = s + self.edges[e](h, w[e], active[e])
                e += 1
            states.append(s)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """C channels, `layers` cells; cells layers//3 and 2*layers//3 are reduction cells."""

    def build(self, C=16, layers=8, num_classes=10, in_channels=3):
        self.C, self.layers = C, layers
        self.stem = stem(in_channels, C)
        self.cells = nn.ModuleList()
        for _, reduction, reduction_prev, C_pp, C_p, C_curr in skeleton(C, layers):
            ops = self.space.ops("reduce" if reduction else "normal")
            self.cells.append(SearchCell(ops, C_pp, C_p, C_curr, reduction, reduction_prev))
        self.classifier = nn.Linear(STEPS * C_curr, num_classes)

    def forward(self, x, weights=None, active=None):
        w = self.mixing_weights() if weights is None else weights
        active = self.active_ops() if active is None else active
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            t = cell.cell_type
            s0, s1 = s1, cell(s0, s1, w[t], active[t])
        return self.classifier(s1.mean(dim=(2, 3)))
