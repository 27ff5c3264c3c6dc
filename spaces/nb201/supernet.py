"""The NAS-Bench-201 search network (darts-pt nasbench201/search_model.py, TinyNetwork)."""
import torch.nn as nn

from spaces.nb201.ops import ResNetBlock, head, make_op, stages, stem
from spaces.nb201.space import CELL
from spaces.supernet import MixedOp, Supernet


class SearchCell(nn.Module):
    def __init__(self, op_lists, C):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(op_lists[e], C, 1, 0, e, make=make_op)
                                   for e in range(CELL.num_edges))

    def forward(self, x, w, active):
        states = [x]
        for eids in CELL.node_edges():
            states.append(sum(self.edges[e](states[CELL.edges[e][1]], w[e], active[e])
                              for e in eids))
        return states[-1]


class Nb201Supernet(Supernet):
    """C channels, `layers` = N search cells per stage (NAS-Bench-201: C=16, N=5)."""

    def build(self, C=16, layers=5, num_classes=10, in_channels=3):
        self.stem = stem(in_channels, C)
        cells, C_prev = [], C
        for C_curr, block in stages(C, layers):
            cells.append(ResNetBlock(C_prev, C_curr) if block
                         else SearchCell(self.space.ops(0), C_curr))
            C_prev = C_curr
        self.cells = nn.ModuleList(cells)
        self.head = head(C_prev, num_classes)

    def forward(self, x, weights=None, active=None):
        w = (self.mixing_weights() if weights is None else weights)[0]
        active = (self.active_ops() if active is None else active)[0]
        s = self.stem(x)
        for layer in self.cells:
            s = layer(s, w, active) if isinstance(layer, SearchCell) else layer(s)
        return self.head(s)
