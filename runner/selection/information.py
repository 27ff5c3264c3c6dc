"""IS-DARTS's information measure of an operation's output (He et al., AAAI 2024; the authors'
`shrink_metric.py` `iim_hook`), and a criterion of `select()` that reads it.

Per sample, the mean over channels and positions of 3 (x - mean_c)^2 / std_c^6, where mean_c
and std_c (unbiased) are taken over the channels at each position; 0/0 (a position where every
channel is equal, `none`'s zeros) counts as infinity. A higher measure is a worse op: IS-DARTS
prunes the largest. Each op's measure is the running mean over the samples of a no-grad pass,
averaged over the cells that share its (cell type, edge).
"""
import gin
import torch

from runner.selection.criteria import op_candidates
from runner.selection.proxies import bn_mode
from runner.training.loops import shuffled_batches, train_batch
from spaces.cell import first_argmax


def information(output):
    """[B] measure of a batch of op outputs (B, C, H, W)."""
    mean = output.mean(dim=1, keepdim=True)
    std = output.std(dim=1, keepdim=True)
    value = 3 * (output - mean) ** 2 / std ** 6
    value = torch.where(torch.isnan(value), torch.full_like(value, float("inf")), value)
    return value.mean(dim=(1, 2, 3))


class Hooks:
    """Forward hooks on every op of every mixed edge, accumulating each op's running mean."""

    def __init__(self, net):
        self.net, self.sums, self.counts, self.handles = net, {}, {}, []
        for m in net.mixed_ops():
            for k, op in enumerate(m.ops):
                key = (m.where, k, id(m))
                self.handles.append(op.register_forward_hook(self._hook(key)))

    def _hook(self, key):
        def hook(module, inputs, output):
            v = information(output.float())
            self.sums[key] = self.sums.get(key, 0.0) + float(v.sum())
            self.counts[key] = self.counts.get(key, 0) + v.numel()
        return hook

    def close(self):
        for h in self.handles:
            h.remove()

    def measures(self):
        """[T, E, K] mean over the cells of each op's per-sample mean (inf where an op saw
        none)."""
        T, E, K = self.net.alphas.shape
        per = {}
        for ((t, e), k, _), total in self.sums.items():
            per.setdefault((t, e, k), []).append(total / self.counts[((t, e), k, _)])
        out = torch.full((T, E, K), float("inf"), dtype=torch.float64)
        for (t, e, k), vals in per.items():
            out[t, e, k] = sum(vals) / len(vals)
        return out


@torch.no_grad()
def measure(net, data, idx, batch_size, gen, mode, batches=None, bn="eval"):
    """[T, E, K] information measure of every computed op over `batches` batches (None:
    every batch) of the indices `idx`, in a fresh order. bn: 'eval' (the authors' network
    mode; their BN keeps no running statistics, so it normalises by the batch: 'train' is
    the closer match where BN tracks statistics)."""
    hooks = Hooks(net)
    try:
        with bn_mode(net, bn):
            for i, bi in enumerate(shuffled_batches(idx, batch_size, gen)):
                if batches is not None and i >= batches:
                    break
                x, _ = train_batch(data, bi, mode, gen)
                net(x)
        return hooks.measures()
    finally:
        hooks.close()


@gin.configurable
class Information:
    """IS-DARTS's measure as a criterion of `select()`: keep the op of lowest measure (the
    inputs whose best op measures lowest, for the topology). One pass of `batches` batches of
    `batch_size` over the alpha half per decision."""

    name = "information"

    def __init__(self, batch_size=64, batches=10, bn="train"):
        self.batch_size, self.batches, self.bn = batch_size, batches, bn

    def selector_name(self, tune_epochs):
        return "information"

    def _measures(self, net, loop):
        return measure(net, loop.data, loop.valid_idx, self.batch_size, loop.gen,
                       loop.precision(net), self.batches, self.bn)

    def op_scores(self, net, cell, edge, loop):
        row = self._measures(net, loop)[net.space.cell.type_index(cell), edge]
        cands = set(op_candidates(net, cell, edge))
        return [{"score": float(v)} if k in cands else None for k, v in enumerate(row)]

    def rank(self, s):
        return s["score"]

    def choose_op(self, net, cell, edge, scores):
        cands = [k for k, s in enumerate(scores) if s is not None]
        return first_argmax([-s["score"] if s else float("-inf") for s in scores], cands)

    def keep_edges(self, net, cell, eids, loop):
        row = self._measures(net, loop)[net.space.cell.type_index(cell)]
        best = {e: min(float(row[e, k]) for k in op_candidates(net, cell, e)) for e in eids}
        kept = sorted(eids, key=lambda e: best[e])[:net.space.cell.keep]
        return kept, [{"edge": e, "score": best[e]} for e in eids]

    def gene_order(self, net, cell, kept):
        return list(kept)
