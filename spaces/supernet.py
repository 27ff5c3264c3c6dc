"""The weight-sharing supernet's family-agnostic part: mixed edges, alphas and decisions.

Alphas are [cell types, edges, K]; the decision state holds one code per (cell type, edge):
OPEN, PRUNED, or k >= 0 when the edge is fixed to op k. A family subclasses `Supernet`,
builds its modules in `build` and calls its `MixedOp`s with the rows of the mixing weights.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from spaces.cell import magnitude_parse
from spaces.ops import Zero, make_op

OPEN, PRUNED = -1, -2  # decision codes; k >= 0 means the edge is fixed to op k


class MixedOp(nn.Module):
    """The candidate ops of edge `edge` in cell type `cell_type` (an alpha row index).

    make(name, C, stride, search=True) builds one op: the DARTS op library by default; a family
    whose ops differ (another BN placement, say) passes its own."""

    def __init__(self, names, C, stride, cell_type, edge, make=make_op):
        super().__init__()
        self.where, self.stride = (cell_type, edge), stride
        self.ops = nn.ModuleList(make(n, C, stride, search=True) for n in names)

    def forward(self, x, w, active):
        # Only ops whose weight is known non-zero on the host are computed: no device sync per
        # op, and masked or decided ops cost nothing. An empty edge adds 0.
        if not torch.is_grad_enabled():  # scoring: one fused multiply-add per op, in place
            return self._no_grad(x, w, active)
        out = 0
        for k in active:
            out = out + w[k] * self.ops[k](x)
        return out

    def _no_grad(self, x, w, active):
        out, zeros = 0, []
        for k in active:
            if isinstance(self.ops[k], Zero):  # adds nothing beside another op
                zeros.append(k)
                continue
            y = self.ops[k](x)  # may be x itself (skip_connect): never written to
            if isinstance(out, int):
                out = y * w[k]
            else:
                out.addcmul_(y, w[k])
        if isinstance(out, int) and zeros:  # `none` alone: its zeros, of the right shape
            out = self.ops[zeros[0]](x) * w[zeros[0]]
        return out


def apply_decisions(w, decision):
    """Mixing weights with decided rows one-hot and pruned rows zero, as `decision` says."""
    onehot = F.one_hot(decision.clamp(min=0), w.size(-1)).to(w.dtype)
    w = torch.where((decision >= 0)[..., None], onehot, w)
    return torch.where((decision == PRUNED)[..., None], torch.zeros_like(w), w)


class Supernet(nn.Module):
    """A supernet over a SearchSpace; owns alphas and decisions in its state_dict.

    Subclasses implement `build(**settings)` (their modules, created before the alphas so that
    the global RNG is drawn in that order; its signature holds the family's defaults, e.g. C,
    layers, num_classes, in_channels) and `forward(x, weights=None, active=None)`.
    """

    def __init__(self, space, alpha_init_std=1e-3, **kwargs):
        super().__init__()
        self.space = space
        self.build(**kwargs)
        T, E = len(space.cell.types), space.cell.num_edges
        # alpha ~ alpha_init_std * N(0, 1), drawn on the CPU with the global RNG (darts-pt)
        self.alphas = nn.Parameter(alpha_init_std * torch.randn(T, E, space.num_ops))
        self.register_buffer("decision", torch.full((T, E), OPEN, dtype=torch.long))
        self._host_decision = None
        # ops a method has pruned (IS-DARTS), 0/1 [T, E, K]; None: every op. Not a buffer:
        # the method keeps it in its own state and sets it again when a checkpoint is loaded
        self.op_mask = None
        # a loaded decision state invalidates the host copy
        self.register_load_state_dict_post_hook(lambda module, keys: module._decision_changed())

    def build(self, **kwargs):
        raise NotImplementedError

    def mixed_ops(self):
        """Every MixedOp of the network, each knowing its (cell type, edge)."""
        return [m for m in self.modules() if isinstance(m, MixedOp)]

    # --- parameters -----------------------------------------------------------------------
    def weights(self):
        """Operation weights, i.e. every parameter except the alphas."""
        return [p for n, p in self.named_parameters() if n != "alphas"]

    # --- decision state ---------------------------------------------------------------------
    def decisions(self):
        """Host copy of the decision codes [T][E]; read from the device only when it changed."""
        if self._host_decision is None:
            self._host_decision = self.decision.tolist()
        return self._host_decision

    def fix_edge(self, cell, edge, op):
        self._set(cell, edge, op)

    def prune_edge(self, cell, edge):
        self._set(cell, edge, PRUNED)

    def _set(self, cell, edge, code):
        self.decision[self.space.cell.type_index(cell), edge] = code
        self._decision_changed()

    def _decision_changed(self):
        self._host_decision = None

    # --- mixing weights ---------------------------------------------------------------------
    def mixing_weights(self):
        """softmax(alpha) with decided rows one-hot and pruned rows zero, shape [T, E, K]; ops
        of `op_mask` zeroed, the others not renormalised."""
        w = F.softmax(self.alphas, dim=-1)
        if self.op_mask is not None:
            w = w * self.op_mask.to(w.device, w.dtype)
        return apply_decisions(w, self.decision)

    def active_ops(self, masked=()):
        """Host-side op indices to compute per [cell type][edge]; `masked` holds
        (cell, edge, op|None) triples whose op (or whole edge, for None) is left out."""
        K = self.space.num_ops
        act = [[list(range(K)) if d == OPEN else ([] if d == PRUNED else [d]) for d in row]
               for row in self.decisions()]
        if self.op_mask is not None:  # open edges only: a decision names its op
            kept, dec = self.op_mask.tolist(), self.decisions()
            act = [[[k for k in ops if kept[t][e][k] or dec[t][e] != OPEN]
                    for e, ops in enumerate(row)] for t, row in enumerate(act)]
        for c, e, k in masked:
            t = self.space.cell.type_index(c)
            act[t][e] = [] if k is None else [j for j in act[t][e] if j != k]
        return act

    def genotype(self):
        """Magnitude parse of the current mixing weights."""
        return magnitude_parse(self.mixing_weights().detach().cpu().tolist(), self.space)
