"""Architecture selection: edge-by-edge op decisions, then the topology pass (spec §4, §5.1).

One function for every selector: `criterion` scores candidates (magnitude or perturbation) and
`tune_epochs` sets the fine-tuning between decisions. Magnitude with 0 tune epochs is the
classic DARTS parse.
"""
import time

import gin
import numpy as np
import torch

from spaces.darts import node_edges
from spaces.supernet import CELLS, OPEN, PRUNED


def op_candidates(net, cell, edge):
    """Indices of the ops on an edge that a selector may choose; `none` only if it is all there is."""
    names = net.space.ops(cell)[edge]
    return [k for k, n in enumerate(names) if n != "none"] or list(range(len(names)))


@gin.configurable
class Magnitude:
    """Choose by softmax(alpha) magnitude (spec §5.1): first argmax op, 2 strongest inputs."""

    name = "magnitude"

    def op_scores(self, net, cell, edge, ctx):
        w = torch.softmax(net.alphas.detach()[CELLS.index(cell), edge], -1).tolist()
        return [{"weight": w[k]} for k in range(len(w))]

    def choose_op(self, net, cell, edge, scores):
        cands = op_candidates(net, cell, edge)
        best = cands[0]
        for k in cands[1:]:
            if scores[k]["weight"] > scores[best]["weight"]:  # strict: lowest index wins ties
                best = k
        return best

    def keep_edges(self, net, cell, eids, ctx):
        """The two inputs with the largest non-`none` softmax weight, stable on ties (spec §5.1)."""
        w = torch.softmax(net.alphas.detach()[CELLS.index(cell)], -1).tolist()
        strength = {e: max(w[e][k] for k in op_candidates(net, cell, e)) for e in eids}
        kept = sorted(eids, key=lambda e: -strength[e])[:2]
        return kept, [{"edge": e, "weight": strength[e]} for e in eids]


def genotype_from_decisions(net, order=None):
    """The genotype the decision state encodes: per node its 2 fixed edges.

    Genes follow `order[(cell, node)]` when given (magnitude lists the stronger edge first,
    as the classic parse does), else input order (what the parse of one-hot rows gives).
    """
    from spaces.genotype import Genotype

    cells, order = [], order or {}
    for c, cell in enumerate(CELLS):
        dec, genes = net.decisions()[c], []
        for node, eids in enumerate(node_edges()):
            kept = [e for e in eids if dec[e] >= 0]
            if len(kept) != 2 or any(dec[e] == OPEN for e in eids):
                raise RuntimeError(f"{cell} cell not fully decided: {dec}")
            kept = order.get((cell, node), kept)
            genes += [(net.space.ops(cell)[e][dec[e]], e - eids[0]) for e in kept]
        cells.append(tuple(genes))
    return Genotype(*cells)


def selector_name():
    """'magnitude', 'pt' or 'pt-mag', from the bound criterion and tune epochs (spec §4.6)."""
    b = gin.get_bindings("select")
    crit = getattr(b.get("criterion"), "selector", "magnitude")
    tuned = b.get("tune_epochs", 0) > 0
    if "Magnitude" in crit:
        return "pt-mag" if tuned else "magnitude"
    return "pt"


def _record(kind, cell, where, candidates, scores, chosen, seconds):
    return {"kind": kind, "cell": cell, "where": where, "candidates": candidates,
            "scores": scores, "chosen": chosen, "seconds": seconds}


def decide_op(net, cell, edge, criterion, ctx):
    """Operation decision on one edge: score the candidates, fix the chosen op."""
    t0 = time.perf_counter()
    scores = criterion.op_scores(net, cell, edge, ctx)
    k = criterion.choose_op(net, cell, edge, scores)
    net.fix_edge(cell, edge, k)
    names = list(net.space.ops(cell)[edge])
    return _record("op", cell, edge, names, scores, names[k], time.perf_counter() - t0)


def decide_node(net, cell, node, criterion, ctx):
    """Topology decision on one node: keep 2 incoming edges, prune the rest."""
    t0 = time.perf_counter()
    eids = node_edges()[node]
    kept, scores = criterion.keep_edges(net, cell, eids, ctx)
    for e in eids:
        if e not in kept:
            net.prune_edge(cell, e)
    return _record("topology", cell, node, eids, scores, list(kept), time.perf_counter() - t0)


@gin.configurable(denylist=["net", "method", "data", "tracker", "gen", "seed"])
def select(net, method, data, tracker, gen, seed, criterion=gin.REQUIRED, tune_epochs=0):
    """Decide every open edge then every node with >2 inputs; returns (genotype, records)."""
    rng = np.random.RandomState(seed)  # dedicated edge-order generator (spec §4.1, §9.10)
    ctx = {"data": data, "gen": gen}
    records = []
    for cell in CELLS:  # ops first; with 0 tune epochs order cannot matter
        for e in range(len(net.space.normal)):
            if net.decisions()[CELLS.index(cell)][e] == OPEN:
                records.append(decide_op(net, cell, e, criterion, ctx))
    order = {}
    for cell in CELLS:
        for node, eids in enumerate(node_edges()):
            if PRUNED not in [net.decisions()[CELLS.index(cell)][e] for e in eids]:
                rec = decide_node(net, cell, node, criterion, ctx)
                order[(cell, node)] = rec["chosen"]
                if len(eids) > 2:  # a 2-input node keeps both: nothing was decided
                    records.append(rec)
    del rng, tune_epochs
    return genotype_from_decisions(net, order), records
