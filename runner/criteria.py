"""Selection criteria: how a selector scores the ops of an edge and the inputs of a node.

`Magnitude` reads softmax(alpha) (spec §5.1); `Perturbation` masks each candidate and measures
the supernet on the alpha half of the train split (the DARTS-PT tests, spec §4.1, §4.2).
"""
import gin
import torch
import torch.nn.functional as F

from runner.loops import Meter, shuffled_batches
from spaces.supernet import CELLS


def op_candidates(net, cell, edge, with_none=False):
    """Ops a selector may choose on an edge; `none` only when asked or when it is all there is."""
    names = net.space.ops(cell)[edge]
    return [k for k, n in enumerate(names) if with_none or n != "none"] or list(range(len(names)))


@gin.configurable
class Magnitude:
    """Largest softmax(alpha) op; the 2 inputs with the largest non-`none` weight (spec §5.1).

    PT-Mag (spec §4.6) uses the same rule for its topology: the paper leaves it open.
    """

    name = "magnitude"

    def _softmax(self, net, cell):
        return torch.softmax(net.alphas.detach()[CELLS.index(cell)], -1).tolist()

    def op_scores(self, net, cell, edge, ctx):
        return [{"weight": w} for w in self._softmax(net, cell)[edge]]

    def choose_op(self, net, cell, edge, scores):
        cands = op_candidates(net, cell, edge)
        best = cands[0]
        for k in cands[1:]:
            if scores[k]["weight"] > scores[best]["weight"]:  # strict: lowest index wins ties
                best = k
        return best

    def strength(self, net, cell, eids):
        w = self._softmax(net, cell)
        return {e: max(w[e][k] for k in op_candidates(net, cell, e)) for e in eids}

    def keep_edges(self, net, cell, eids, ctx):
        s = self.strength(net, cell, eids)
        kept = sorted(eids, key=lambda e: -s[e])[:2]  # stable: lower input index wins ties
        return kept, [{"edge": e, "weight": s[e]} for e in eids]

    def gene_order(self, net, cell, kept):
        """The classic parse lists the stronger input first."""
        s = self.strength(net, cell, kept)
        return sorted(kept, key=lambda e: -s[e])


@gin.configurable
class Perturbation:
    """DARTS-PT: the op (edge) whose removal hurts the supernet most is kept (spec §4.1, §4.2).

    crit: 'acc' (paper default) or 'loss'. subset: images per scoring pass (None = the whole
    alpha half, as the reference). none_candidate: score `none` like any op (reference, §9.15).
    """

    name = "perturbation"

    def __init__(self, crit="acc", subset=None, batch_size=64, none_candidate=True):
        if crit not in ("acc", "loss"):
            raise ValueError(f"Perturbation.crit must be 'acc' or 'loss', not {crit!r}")
        self.crit, self.subset, self.batch_size = crit, subset, batch_size
        self.none_candidate = none_candidate

    @torch.no_grad()
    def measure(self, net, ctx, masked):
        """Accuracy and loss with `masked` (cell, edge, op|None) zeroed, no renormalisation."""
        w = net.mixing_weights().detach().clone()
        for c, e, k in masked:
            w[CELLS.index(c), e, slice(None) if k is None else k] = 0.0
        active = net.active_ops(masked)
        data, gen, idx = ctx["data"], ctx["gen"], ctx["valid_idx"]
        was = net.training
        if not was:  # train() walks every module: skip it when already in train mode
            net.train()  # BN uses batch statistics while scoring (spec §4.1, §9.4)
        meter, seen = Meter(), 0
        for bi in shuffled_batches(idx, self.batch_size, gen):  # fresh order every pass
            if self.subset is not None and seen >= self.subset:
                break
            bi = bi[: None if self.subset is None else self.subset - seen]
            seen += bi.numel()
            x, y = data.prepare(data.train_x[bi], True, gen=gen), data.train_y[bi]
            logits = net(x, w, active)
            meter.update(logits, y, F.cross_entropy(logits, y))
        if not was:
            net.train(False)
        r = meter.result("masked")
        return {"acc": r["masked_acc"], "loss": r["masked_loss"]}

    def op_scores(self, net, cell, edge, ctx):
        cands = op_candidates(net, cell, edge, self.none_candidate)
        return [self.measure(net, ctx, [(cell, edge, k)]) if k in cands else None
                for k in range(len(net.space.ops(cell)[edge]))]

    def _worse(self, a, b):
        """True when score a hurts more than b (lower acc, or higher loss); strict."""
        return a["acc"] < b["acc"] if self.crit == "acc" else a["loss"] > b["loss"]

    def choose_op(self, net, cell, edge, scores):
        best = None
        for k, s in enumerate(scores):  # first index among equal minima wins (spec §9.5)
            if s is not None and (best is None or self._worse(s, scores[best])):
                best = k
        return best

    def keep_edges(self, net, cell, eids, ctx):
        """Topology test (spec §4.2): drop the edge whose removal hurts least until 2 remain.

        Each round starts from the node's full weights (reference quirk §9.6), so removals do
        not accumulate; ties drop the later edge (`not (crit < best)`).
        """
        remaining, rounds = list(eids), []
        while len(remaining) > 2:
            scores = {e: self.measure(net, ctx, [(cell, e, None)]) for e in remaining}
            drop = None
            for e in remaining:
                if drop is None or not self._worse(scores[e], scores[drop]):
                    drop = e
            rounds.append({"scores": {str(e): scores[e] for e in remaining}, "dropped": drop})
            remaining.remove(drop)
        return remaining, rounds

    def gene_order(self, net, cell, kept):
        """One-hot rows parse in input order (spec §5.1)."""
        return list(kept)
