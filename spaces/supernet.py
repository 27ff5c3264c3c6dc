"""The DARTS supernet: mixed edges, alphas and the per-edge decision state."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from spaces import genotype as gt
from spaces.darts import NUM_EDGES, STEPS
from spaces.ops import FactorizedReduce, ReLUConvBN, make_op

CELLS = ("normal", "reduce")
OPEN, PRUNED = -1, -2  # decision codes; k >= 0 means the edge is fixed to op k


class MixedOp(nn.Module):
    def __init__(self, names, C, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(n, C, stride, search=True) for n in names)

    def forward(self, x, w, active):
        # Only ops whose weight is known non-zero on the host are computed (darts-pt's MixedOp
        # skips zero weights too): no device sync per op, and masked/decided ops cost nothing.
        # An empty edge adds 0.
        out = 0
        for k in active:
            out = out + w[k] * self.ops[k](x)
        return out


class SearchCell(nn.Module):
    def __init__(self, op_lists, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        edges, e = [], 0
        for i in range(STEPS):
            for j in range(2 + i):
                edges.append(MixedOp(op_lists[e], C, 2 if reduction and j < 2 else 1))
                e += 1
        self.edges = nn.ModuleList(edges)

    def forward(self, s0, s1, w, active):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for i in range(STEPS):
            s = 0
            for h in states:
                s = s + self.edges[e](h, w[e], active[e])
                e += 1
            states.append(s)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """Weight-sharing network over a SearchSpace; owns alphas and decisions in its state_dict."""

    def __init__(self, space, C=16, layers=8, num_classes=10, in_channels=3, alpha_init_std=1e-3):
        super().__init__()
        self.space, self.C, self.layers = space, C, layers
        C_curr = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            C_curr *= 2 if reduction else 1
            ops = space.reduce if reduction else space.normal
            self.cells.append(SearchCell(ops, C_pp, C_p, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, STEPS * C_curr
        self.classifier = nn.Linear(C_p, num_classes)
        # alpha ~ 1e-3 N(0,1), drawn on the CPU with the global RNG, as darts-pt
        self.alphas = nn.Parameter(alpha_init_std * torch.randn(2, NUM_EDGES, space.num_ops))
        self.register_buffer("decision", torch.full((2, NUM_EDGES), OPEN, dtype=torch.long))
        self._host_decision = None

    # --- parameters -----------------------------------------------------------------------
    def weights(self):
        """Operation weights, i.e. every parameter except the alphas."""
        return [p for n, p in self.named_parameters() if n != "alphas"]

    # --- decision state ----------------------------------------------------------------------
    def decisions(self):
        """Host copy of the decision codes, [2][14]; read from the device only when it changed."""
        if self._host_decision is None:
            self._host_decision = self.decision.tolist()
        return self._host_decision

    def fix_edge(self, cell, edge, op):
        self._set(cell, edge, op)

    def prune_edge(self, cell, edge):
        self._set(cell, edge, PRUNED)

    def _set(self, cell, edge, code):
        self.decision[CELLS.index(cell), edge] = code
        self._host_decision = None

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._host_decision = None

    # --- mixing weights ---------------------------------------------------------------------
    def mixing_weights(self):
        """softmax(alpha) with decided rows one-hot and pruned rows zero, shape [2, 14, K]."""
        w = F.softmax(self.alphas, dim=-1)
        onehot = F.one_hot(self.decision.clamp(min=0), w.size(-1)).to(w.dtype)
        w = torch.where((self.decision >= 0)[..., None], onehot, w)
        return torch.where((self.decision == PRUNED)[..., None], torch.zeros_like(w), w)

    def active_ops(self, masked=()):
        """Host-side op indices to compute per [cell][edge]; `masked` holds (cell, edge, op|None)."""
        K = self.space.num_ops
        act = [[list(range(K)) if d == OPEN else ([] if d == PRUNED else [d]) for d in row]
               for row in self.decisions()]
        for c, e, k in masked:
            row = act[CELLS.index(c)][e]
            act[CELLS.index(c)][e] = [] if k is None else [j for j in row if j != k]
        return act

    def forward(self, x, weights=None, active=None):
        w = self.mixing_weights() if weights is None else weights
        active = self.active_ops() if active is None else active
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            c = int(cell.reduction)
            s0, s1 = s1, cell(s0, s1, w[c], active[c])
        return self.classifier(s1.mean(dim=(2, 3)))

    def genotype(self):
        """DARTS magnitude parse of the current mixing weights."""
        w = self.mixing_weights().detach().cpu().tolist()
        return gt.parse({"normal": w[0], "reduce": w[1]}, self.space)
