"""IS-DARTS (He et al., AAAI 2024; the authors' `ISDARTS.py` `prune_edges`, the search models'
`update_mask`): ops mixed uniformly, no alpha learned, the worst ops pruned by their
information measure (runner/selection/information.py) at set epochs.

Mixing: every op weighs 1/K and a pruned op 0, the divisor staying K (alpha held at 0,
softmax(0) = 1/K, times the mask: `Supernet.op_mask`). Pruning steps: `steps` of them,
`interval` epochs apart, the last `interval` epochs before the end (NB201: 4 x 2 of 30, at the
starts of epochs 22, 24, 26, 28; DARTS space: 7 x 3 of 50). A step measures every op on
`measure_batches` batches of the weight half (the authors: their whole search set, no-grad,
network in eval mode) and prunes the highest measures: in a cell of fixed topology (NB201)
one op per edge; else, per node, the candidates (input, op) are pooled and ceil((n - 2) /
steps left) of them pruned, so that two remain after the last step. Then the survivors become
the supernet's decisions (an edge with one op left is fixed to it, one with none pruned), which
the selector after search takes as decided; the steps are `records` in the method's state.
"""
import math

import gin
import torch

from runner.methods.darts import Darts
from runner.selection.information import measure


def prune_epochs(epochs, steps, interval):
    """The (0-based) epochs at whose start a pruning step runs."""
    return list(range(epochs - steps * interval, epochs, interval))


def prune_per_edge(mask, values):
    """One op per edge: the unpruned op of highest measure (the first on ties). In place on
    mask [E, K]; returns [(edge, op)]."""
    out = []
    for e in range(mask.size(0)):
        alive = [k for k in range(mask.size(1)) if mask[e, k]]
        if len(alive) > 1:
            k = max(alive, key=lambda j: (float(values[e, j]), -j))
            mask[e, k] = 0
            out.append((e, k))
    return out


def prune_per_node(mask, values, node_edges, steps_left):
    """Per node, ceil((n - 2) / steps_left) of its n unpruned (edge, op) candidates of highest
    measure (enumeration order on ties). In place on mask [E, K]; returns [(edge, op)]."""
    out = []
    for edges in node_edges:
        cands = [(e, k) for e in edges for k in range(mask.size(1)) if mask[e, k]]
        cands.sort(key=lambda c: -float(values[c]))  # stable: ties keep (edge, op) order
        for e, k in cands[:max(0, math.ceil((len(cands) - 2) / steps_left))]:
            mask[e, k] = 0
            out.append((e, k))
    return out


@gin.configurable
class IsDarts(Darts):
    """IS-DARTS: see the module docstring. bn: BatchNorm in the measuring pass ('train':
    batch statistics, what the authors' BN without running statistics does in eval mode)."""

    name = "is_darts"

    def __init__(self, steps=7, interval=3, measure_batches=None, batch_size=64, bn="train"):
        super().__init__(update_alphas=False)
        self.steps, self.interval, self.measure_batches = steps, interval, measure_batches
        self.measure_batch, self.bn = batch_size, bn
        self.mask, self.done, self.records, self.epochs = None, 0, [], None

    def setup(self, net):
        super().setup(net)
        with torch.no_grad():
            net.alphas.zero_()  # uniform mixing, 1/K per op
        if self.mask is None:
            self.mask = torch.ones(net.alphas.shape)
        net.op_mask = self.mask
        self.net = net

    def state_dict(self):
        return dict(super().state_dict(), mask=self.mask, done=self.done, records=self.records)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "mask" in state:
            self.mask, self.done = state["mask"].clone(), int(state["done"])
            self.records = list(state["records"])
            self.net.op_mask = self.mask

    def arch_epoch(self, net, loop, epoch):
        """A pruning step at the start of each scheduled epoch (after the one before it)."""
        schedule = prune_epochs(self.epochs, self.steps, self.interval)
        if epoch not in schedule or self.done > schedule.index(epoch):
            return
        values = measure(net, loop.data, loop.data.search_halves()[0], self.measure_batch,
                         loop.gen, loop.precision(net), self.measure_batches, self.bn)
        cell = net.space.cell
        for t, name in enumerate(cell.types):
            if cell.keep is None:
                pruned = prune_per_edge(self.mask[t], values[t])
            else:
                pruned = prune_per_node(self.mask[t], values[t], cell.node_edges(),
                                        self.steps - self.done)
            self.records.append({"epoch": epoch, "step": self.done, "cell": name,
                                 "pruned": [[e, net.space.ops(name)[e][k]] for e, k in pruned],
                                 "measures": values[t].tolist()})
        self.done += 1
        net.op_mask = self.mask
        if self.done == self.steps:
            self.decide(net, values)

    def begin_epoch(self, net, epoch, epochs, phase):
        if phase == "search":
            self.epochs = epochs  # the schedule counts back from the search's end

    def decide(self, net, values):
        """The survivors as decisions: an edge with one op left is fixed to it, one with none
        pruned. When a node's two survivors share one input (the authors' genotype allows
        it; a DARTS genotype here holds distinct inputs), that edge keeps its op of lower
        measure and the best op of another input (last step's measures) comes back; the
        record says so (`revived`)."""
        cell, K = net.space.cell, self.mask.size(2)
        for t, name in enumerate(cell.types):
            for edges in cell.node_edges():
                alive = {e: [k for k in range(K) if self.mask[t, e, k]] for e in edges}
                holding = [e for e in edges if alive[e]]
                if cell.keep is not None and len(holding) == 1 < len(edges):
                    self.revive(net, t, name, holding[0], alive, values, edges)
                for e in edges:
                    if len(alive[e]) == 1:
                        net.fix_edge(name, e, alive[e][0])
                    elif not alive[e]:
                        net.prune_edge(name, e)

    def revive(self, net, t, name, e0, alive, values, edges):
        k0 = min(alive[e0], key=lambda k: float(values[t, e0, k]))
        others = [(float(values[t, e, k]), e, k) for e in edges if e != e0
                  for k in range(self.mask.size(2)) if net.space.ops(name)[e][k] != "none"]
        _, e1, k1 = min(others)
        self.mask[t, e0] = 0
        self.mask[t, e0, k0] = self.mask[t, e1, k1] = 1
        alive[e0], alive[e1] = [k0], [k1]
        self.records.append({"step": self.done - 1, "cell": name, "revived": [
            e1, net.space.ops(name)[e1][k1]], "kept": [e0, net.space.ops(name)[e0][k0]]})
