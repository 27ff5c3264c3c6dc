"""Selection criteria: how a selector scores the ops of an edge and the inputs of a node.

`Magnitude` reads softmax(alpha) (the DARTS parse); `Perturbation` masks each candidate and
measures the supernet on the alpha half of the train split (DARTS-PT's tests, paper §4.1 and
App. A.3).
"""
import gin
import torch
import torch.nn.functional as F

from runner.training import distributed, progress
from runner.selection import pt_batched
from runner.selection.proxies import bn_mode
from runner.training.loops import Meter, shuffled_batches, train_batch
from spaces.cell import first_argmax


def op_candidates(net, cell, edge, with_none=False):
    """Ops a selector may choose on an edge: the family's rule, or every op `with_none`."""
    names = net.space.ops(cell)[edge]
    return list(range(len(names))) if with_none else net.space.cell.selectable(names)


def masked_mixing(net, masked):
    """(mixing weights, active ops) with `masked` (cell, edge, op|None) zeroed; no
    renormalisation, as darts-pt."""
    w = net.mixing_weights().detach().clone()
    for c, e, k in masked:
        w[net.space.cell.type_index(c), e, slice(None) if k is None else k] = 0.0
    return w, net.active_ops(masked)


def _score(r):
    return {"acc": r["masked_acc"], "loss": r["masked_loss"]}


@gin.configurable
class Magnitude:
    """Largest softmax(alpha) op; the `keep` inputs of largest selectable weight (DARTS parse).

    PT-Mag (paper §6.2) uses the same rule for its topology: the paper leaves it open.
    """

    name = "magnitude"

    def selector_name(self, tune_epochs):
        """Magnitude with fine-tuning between decisions is PT-Mag (paper §6.2)."""
        return "pt-mag" if tune_epochs > 0 else "magnitude"

    def _softmax(self, net, cell):
        """softmax(alpha) of the cell type; ops a method pruned (`op_mask`) weigh 0."""
        t = net.space.cell.type_index(cell)
        w = torch.softmax(net.alphas.detach()[t], -1)
        mask = getattr(net, "op_mask", None)
        return (w if mask is None else w * mask[t].to(w)).tolist()

    def op_scores(self, net, cell, edge, loop):
        return [{"weight": w} for w in self._softmax(net, cell)[edge]]

    def rank(self, s):
        """Lower is an op more worth keeping (the global edge orders compare edges by it)."""
        return -s["weight"]

    def choose_op(self, net, cell, edge, scores):
        return first_argmax([s["weight"] for s in scores], op_candidates(net, cell, edge))

    def strength(self, net, cell, eids):
        w = self._softmax(net, cell)
        return {e: max(w[e][k] for k in op_candidates(net, cell, e)) for e in eids}

    def keep_edges(self, net, cell, eids, loop):
        s = self.strength(net, cell, eids)
        kept = sorted(eids, key=lambda e: -s[e])[:net.space.cell.keep]  # stable: lower input wins
        return kept, [{"edge": e, "weight": s[e]} for e in eids]

    def gene_order(self, net, cell, kept):
        """The classic parse lists the stronger input first (a fixed topology: input order)."""
        if net.space.cell.keep is None:
            return list(kept)
        s = self.strength(net, cell, kept)
        return sorted(kept, key=lambda e: -s[e])


@gin.configurable
class Perturbation:
    """DARTS-PT: keep the op (edge) whose removal hurts the supernet most (paper §4.1, App. A.3).

    crit: 'acc' (paper default) or 'loss'. subset: images per scoring pass (None = the whole
    alpha half, as the reference). none_candidate: score `none` like any op (as the reference).
    masks_per_pass: masked supernets scored together in one forward pass (runner/selection/pt_batched.py,
    equal up to float rounding); 1 = one pass per mask, as the reference.
    """

    name = "perturbation"

    def selector_name(self, tune_epochs):
        return "pt"

    def __init__(self, crit="acc", subset=None, batch_size=64, none_candidate=True,
                 masks_per_pass=1):
        if crit not in ("acc", "loss"):
            raise ValueError(f"Perturbation.crit must be 'acc' or 'loss', not {crit!r}")
        if masks_per_pass < 1:
            raise ValueError(f"Perturbation.masks_per_pass must be >= 1, not {masks_per_pass}")
        self.crit, self.subset, self.batch_size = crit, subset, batch_size
        self.none_candidate, self.masks_per_pass = none_candidate, masks_per_pass

    @torch.no_grad()
    def measure(self, net, loop, masked):
        """Accuracy and loss with `masked` (cell, edge, op|None) zeroed, no renormalisation."""
        w, active = masked_mixing(net, masked)
        data, gen, idx, mode = loop.data, loop.gen, loop.valid_idx, loop.precision(net)
        with bn_mode(net, "train"):  # BN uses batch statistics while scoring, as darts-pt
            meter, seen = Meter(), 0
            for bi in shuffled_batches(idx, self.batch_size, gen):  # fresh order every pass
                if self.subset is not None and seen >= self.subset:
                    break
                bi = bi[: None if self.subset is None else self.subset - seen]
                seen += bi.numel()
                # torchrun: this rank's share of the batch; the Meter sums the counts
                x, y = train_batch(data, bi, mode, gen)
                with mode.autocast():
                    logits = net(x, w, active)
                meter.update(logits, y, F.cross_entropy(logits, y))
        return _score(meter.result("masked"))

    def measure_all(self, net, loop, mask_sets):
        """`measure` of each mask set, in order; `masks_per_pass` of them per forward pass
        (one process only: the grouped passes keep per-pass BN statistics of their own, which
        are not summed over ranks)."""
        if (self.masks_per_pass == 1 or len(mask_sets) == 1 or net.space.has("noise")
                or distributed.ranks().world > 1):
            with progress.bar(len(mask_sets), "PT scoring", distributed.is_main()) as bar:
                out = []
                for m in mask_sets:
                    out.append(self.measure(net, loop, m))
                    bar.update(1)
                return out
        out, mode = [], loop.precision(net)
        for i in range(0, len(mask_sets), self.masks_per_pass):
            chunk = mask_sets[i:i + self.masks_per_pass]
            passes = pt_batched.draw_passes(loop.data, loop.valid_idx, self.batch_size,
                                            self.subset, loop.gen, len(chunk))
            with bn_mode(net, "train"):
                out += [_score(r) for r in pt_batched.measure_grouped(
                    net, loop.data, chunk, passes, mode)]
        return out

    def op_scores(self, net, cell, edge, loop):
        cands = op_candidates(net, cell, edge, self.none_candidate)
        got = dict(zip(cands, self.measure_all(net, loop, [[(cell, edge, k)] for k in cands])))
        return [got.get(k) for k in range(len(net.space.ops(cell)[edge]))]

    def rank(self, s):
        """Lower is an op more worth keeping: its removal hurts more."""
        return s["acc"] if self.crit == "acc" else -s["loss"]

    def _worse(self, a, b):
        """True when score a hurts more than b (lower acc, or higher loss); strict."""
        return a["acc"] < b["acc"] if self.crit == "acc" else a["loss"] > b["loss"]

    def choose_op(self, net, cell, edge, scores):
        best = None
        for k, s in enumerate(scores):  # first index among equal minima wins (darts-pt project_op)
            if s is not None and (best is None or self._worse(s, scores[best])):
                best = k
        return best

    def keep_edges(self, net, cell, eids, loop):
        """Topology test (paper App. A.3): drop the least harmful edge until `keep` remain.

        Each round starts from the node's full weights (as darts-pt's project_edge), so removals
        do not accumulate; ties drop the later edge (`not (crit < best)`).
        """
        remaining, rounds = list(eids), []
        while len(remaining) > net.space.cell.keep:
            scores = dict(zip(remaining, self.measure_all(
                net, loop, [[(cell, e, None)] for e in remaining])))
            drop = None
            for e in remaining:
                if drop is None or not self._worse(scores[e], scores[drop]):
                    drop = e
            rounds.append({"scores": {str(e): scores[e] for e in remaining}, "dropped": drop})
            remaining.remove(drop)
        return remaining, rounds

    def gene_order(self, net, cell, kept):
        """One-hot rows parse in input order."""
        return list(kept)
