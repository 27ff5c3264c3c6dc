"""Shapley values of operations (Shapley-NAS, Xiao et al., CVPR 2022; the authors'
`train_search.py` `shap_estimation`), as a criterion of `select()`.

Players are removed one at a time in a random order; a player's marginal contribution is the
drop in the supernet's accuracy its removal causes, given the players removed before it in
that order (removed ops are masked out of the mixing, no renormalisation, as PT). Each order
is scored on a batch of its own. An order is cut short once the accuracy falls below
`threshold` x the full supernet's accuracy on that batch (the player crossing it keeps its
drop, the rest get 0). The score of a player is mean - std (ddof 0) of its contributions over
`samples` orders: the authors' risk-averse estimate.
"""
import gin
import numpy as np
import torch

from runner.selection.criteria import masked_mixing, op_candidates
from runner.selection.proxies import bn_mode
from runner.training.loops import sample_batch, train_batch
from spaces.cell import first_argmax


def contributions(value, order, threshold=None):
    """Marginal drops along one removal `order` (player indices): value(removed) is the
    accuracy with the players in the tuple `removed` removed. Returns (drops per player,
    the full value); players after a truncation get 0."""
    full = acc = value(())
    drops, removed = np.zeros(len(order)), []
    for i in order:
        removed.append(i)
        new = value(tuple(removed))
        drops[i], acc = acc - new, new
        if threshold is not None and acc < threshold * full:
            break
    return drops, full


def estimate(values, orders, threshold=None):
    """[players, len(orders)] contributions; `values(j)` is the value function of order j
    (its own batch)."""
    return np.stack([contributions(values(j), order, threshold)[0]
                     for j, order in enumerate(orders)], axis=1)


def score(table):
    """mean - std of each player's contributions over the orders (ddof 0, as numpy's)."""
    return table.mean(axis=1) - table.std(axis=1)


def random_orders(n, samples, gen):
    """`samples` random permutations of n players, drawn from the run's generator."""
    return [torch.randperm(n, generator=gen, device=gen.device).tolist() for _ in range(samples)]


@torch.no_grad()
def accuracy(net, x, y, masked):
    """Top-1 accuracy (%) of the supernet on (x, y) with `masked` removed: weight 0, every op
    still computed (as the authors' masked forward), so that a node whose every input is
    removed outputs zeros."""
    w, _ = masked_mixing(net, masked)
    return float((net(x, w).argmax(1) == y).float().mean()) * 100.0


def batch_values(net, loop, players, batch_size):
    """values(j): a fresh batch from the alpha half for order j, and the accuracy function
    of the removed players on it."""
    mode = loop.precision(net)

    def values(j):
        bi = sample_batch(loop.valid_idx, batch_size, loop.gen)
        x, y = train_batch(loop.data, bi, mode, loop.gen)
        return lambda removed: accuracy(net, x, y, [players[i] for i in removed])
    return values


@gin.configurable
class Shapley:
    """Keep the op (edge) of highest Shapley value: the players are the candidate ops of the
    edge being decided (the inputs of the node, for the topology), each removal order scored
    on a fresh batch of `batch_size` images of the alpha half, `samples` orders, truncated at
    `threshold` (None: never). bn: BatchNorm during scoring, 'train' (batch statistics, as
    PT's scoring) or 'eval'."""

    name = "shapley"

    def selector_name(self, tune_epochs):
        return "shapley"

    def __init__(self, samples=10, threshold=0.5, batch_size=1024, bn="train"):
        if samples < 1:
            raise ValueError(f"Shapley.samples must be at least 1, not {samples}")
        self.samples, self.threshold, self.batch_size, self.bn = samples, threshold, \
            batch_size, bn

    def shapley(self, net, loop, players):
        """{'shapley', 'mean', 'std'} of each player ((cell, edge, op|None) masks)."""
        orders = random_orders(len(players), self.samples, loop.gen)
        with bn_mode(net, self.bn):
            table = estimate(batch_values(net, loop, players, self.batch_size), orders,
                             self.threshold)
        return [{"shapley": float(s), "mean": float(m), "std": float(d)}
                for s, m, d in zip(score(table), table.mean(1), table.std(1))]

    def op_scores(self, net, cell, edge, loop):
        cands = op_candidates(net, cell, edge)
        got = dict(zip(cands, self.shapley(net, loop, [(cell, edge, k) for k in cands])))
        return [got.get(k) for k in range(len(net.space.ops(cell)[edge]))]

    def rank(self, s):
        """Lower is an op more worth keeping: a higher Shapley value."""
        return -s["shapley"]

    def choose_op(self, net, cell, edge, scores):
        cands = [k for k, s in enumerate(scores) if s is not None]
        return first_argmax([s["shapley"] if s else float("-inf") for s in scores], cands)

    def keep_edges(self, net, cell, eids, loop):
        """The `keep` inputs of highest Shapley value, the players being the node's inputs
        (each removed whole); ties keep the lower input."""
        got = dict(zip(eids, self.shapley(net, loop, [(cell, e, None) for e in eids])))
        kept = sorted(eids, key=lambda e: -got[e]["shapley"])[:net.space.cell.keep]
        return kept, [{"edge": e, **got[e]} for e in eids]

    def gene_order(self, net, cell, kept):
        return list(kept)
