"""Architecture selection (paper §4): one function for magnitude, PT and PT-Mag.

Rounds of decisions, each deciding one item per cell type: first an open edge's op (operation
test), then, once a cell has no open edge, the inputs a node keeps (topology test; none when the
family's topology is fixed). Fine-tuning epochs between rounds follow `decision_epochs`.
Magnitude with 0 tune epochs is the classic parse.
"""
import time

import gin
import numpy as np
import torch

from runner.training import checkpoint, distributed, progress, rng
from runner.selection.lookup import decision_columns
from runner.selection.criteria import Magnitude, Perturbation  # noqa: F401  (gin configurables)
from runner.selection.information import Information  # noqa: F401  (gin configurable)
from runner.selection.shapley import Shapley  # noqa: F401  (gin configurable)
from runner.selection.zero_cost import ZeroCost  # noqa: F401  (gin configurable)
from runner.training.loops import Loop, Meter, shuffled_batches, valid_accuracy
from runner.training.precision import device_of, precision
from runner.training.search import train_step
from spaces.supernet import OPEN, PRUNED


def open_edges(net, cell):
    return [e for e, d in enumerate(net.decisions()[net.space.cell.type_index(cell)]) if d == OPEN]


def open_nodes(net, cell):
    """Nodes whose inputs selection chooses and whose topology is not decided yet."""
    spec = net.space.cell
    dec, node_edges = net.decisions()[spec.type_index(cell)], spec.node_edges()
    return [n for n in spec.topology_nodes() if PRUNED not in [dec[e] for e in node_edges[n]]]


def num_rounds(net):
    """Decision rounds still needed: derived from the space and the decision state."""
    return max(len(open_edges(net, c)) + len(open_nodes(net, c)) for c in net.space.cell.types)


def genotype_from_decisions(net, gene_order=None):
    """The genotype the decision state encodes; `gene_order(cell, kept)` orders a node's genes."""
    spec, genes = net.space.cell, []
    for t, cell in enumerate(spec.types):
        dec, ops, nodes = net.decisions()[t], net.space.ops(t), []
        for eids in spec.node_edges():
            kept = [e for e in eids if dec[e] >= 0]
            want = len(eids) if spec.keep is None else min(spec.keep, len(eids))
            if any(dec[e] == OPEN for e in eids) or len(kept) != want:
                raise RuntimeError(f"{cell} cell not fully decided: {dec}")
            kept = gene_order(cell, kept) if gene_order else kept
            nodes.append([(ops[e][dec[e]], spec.edges[e][1]) for e in kept])
        genes.append(nodes)
    return net.space.genotype(genes)


EDGE_ORDERS = ("random", "fixed", "reverse", "global_op_greedy", "global_edge_greedy")


def pick(items, rng, order="random"):
    """Next edge or node: uniform from the dedicated generator ('random', and the topology
    decisions of the global orders, as the authors of Zero-Cost-PT), the last ('reverse'),
    else the lowest ('fixed')."""
    if order == "reverse":
        return items[-1]
    return int(rng.choice(items)) if rng is not None else items[0]


def next_edge(net, cell, edges, criterion, loop, rng, order):
    """(edge to decide, its op scores). The global orders score every open edge first (the
    Zero-Cost-PT authors' global_op_greedy / global_edge_greedy): the edge holding the op of
    best rank, or the edge of best mean rank over its candidates; the first on ties. The chosen
    edge's op is then chosen from the same scores (the authors' NAS-Bench-201 code scores that
    edge once more on a fresh minibatch)."""
    if not order.startswith("global"):
        e = pick(edges, rng, order)
        return e, criterion.op_scores(net, cell, e, loop)
    every = {e: criterion.op_scores(net, cell, e, loop) for e in edges}
    ranks = {e: [criterion.rank(s) for s in every[e] if s is not None] for e in edges}
    key = min if order == "global_op_greedy" else (lambda r: float(np.mean(r)))
    best = None
    for e in edges:
        if best is None or key(ranks[e]) < key(ranks[best]):
            best = e
    return best, every[best]


def decide(net, cell, criterion, loop, rng, order="random"):
    """One decision for `cell`: an op on an open edge, else the inputs of an open node."""
    t0 = time.perf_counter()
    edges = open_edges(net, cell)
    if edges:
        e, scores = next_edge(net, cell, edges, criterion, loop, rng, order)
        k = criterion.choose_op(net, cell, e, scores)
        net.fix_edge(cell, e, k)
        names = list(net.space.ops(cell)[e])
        rec = {"kind": "op", "cell": cell, "where": e, "candidates": names,
               "scores": scores, "chosen": names[k]}
    else:
        node = pick(open_nodes(net, cell), rng, order)
        eids = net.space.cell.node_edges()[node]
        kept, scores = criterion.keep_edges(net, cell, eids, loop)
        for e in eids:
            if e not in kept:
                net.prune_edge(cell, e)
        rec = {"kind": "topology", "cell": cell, "where": node, "candidates": eids,
               "scores": scores, "chosen": sorted(kept)}
    rec["seconds"] = time.perf_counter() - t0
    return rec


SCHEDULES = ("sota", "nb201")  # see decision_epochs


def check_schedule(schedule):
    if schedule not in SCHEDULES:
        raise ValueError(f"select.schedule must be one of {SCHEDULES}, not {schedule!r}")


def decision_epochs(rounds, interval, schedule="sota"):
    """(tune epoch at which each round decides, total tune epochs).

    Rounds are `interval` epochs apart and one tuning epoch follows the last. 'sota' is darts-pt
    sota/cnn (DARTS cell: 17 rounds at 0, 5, ..., 80 of 81 epochs); 'nb201' is darts-pt
    nasbench201/projection.py, whose last gap is one epoch shorter (6 rounds at 0, 5, 10, 15,
    20, 24 of 25 epochs). With interval 0 nothing is tuned.
    """
    check_schedule(schedule)
    starts = [interval * r for r in range(rounds)]
    if schedule == "nb201" and interval > 1 and rounds > 1:
        starts[-1] -= 1
    return starts, (starts[-1] + 1 if interval and rounds else 0)


def tune_epoch(loop, train_idx, bar=None):
    """One proper pass over the weight half; a fresh valid batch per alpha step (darts-pt)."""
    loop.net.train()
    meter = Meter()
    for ti in shuffled_batches(train_idx, loop.batch_size, loop.gen):
        train_step(loop, ti, meter)
        if bar is not None:
            bar.update(1)
    return meter.result("tune")


def fine_tune(loop, train_idx, epochs, total, report=None, round_=None):
    """The tune epochs `epochs` (indices into `total`), each inside the method's epoch hooks;
    `report` (runner/training/progress.py) prints a line per epoch."""
    for ep in epochs:
        t0 = time.perf_counter()
        loop.method.begin_epoch(loop.net, ep, total, "tune")
        steps = -(-train_idx.numel() // loop.batch_size)
        with progress.bar(steps, f"tune {ep + 1}/{total}", distributed.is_main()) as bar:
            result = tune_epoch(loop, train_idx, bar)
        loop.method.end_epoch(loop.net, ep, "tune")
        if report is not None:
            report.tune_epoch(ep, total, result, time.perf_counter() - t0, round_)


@gin.configurable("select")
class Selector:
    """The selection settings, bound as `select.*`; calling it runs `select`.

    criterion: scores ops and inputs (runner/selection/criteria.py). tune_epochs: fine-tuning
    epochs after each round (0: none; with Magnitude that is the classic parse).
    edge_order: 'random', 'fixed' (lowest open edge first), 'reverse' (highest first), or
    Zero-Cost-PT's 'global_op_greedy' and 'global_edge_greedy' (see next_edge).
    edge_order_seed: seed of the edge-order generator (None: the run's seed). schedule: 'sota'
    or 'nb201' spacing of the rounds (see decision_epochs).
    """

    def __init__(self, criterion=gin.REQUIRED, tune_epochs=5, tune_lr=0.0025, tune_momentum=0.9,
                 tune_weight_decay=3e-4, batch_size=64, grad_clip=5.0, edge_order="random",
                 edge_order_seed=None, schedule="sota"):
        check_schedule(schedule)  # before any training, not when selection starts
        self.criterion, self.tune_epochs, self.tune_lr = criterion, tune_epochs, tune_lr
        self.tune_momentum, self.tune_weight_decay = tune_momentum, tune_weight_decay
        self.batch_size, self.grad_clip, self.schedule = batch_size, grad_clip, schedule
        self.edge_order, self.edge_order_seed = edge_order, edge_order_seed

    @property
    def name(self):
        """The selector as runs and reports call it; the criterion names itself."""
        return self.criterion.selector_name(self.tune_epochs)

    def __call__(self, net, method, data, tracker, gen, seed, ckpt_path=None, resume=None,
                 judge=None, mode=None):
        """Decide every open edge and node of every cell type; returns (genotype, records).

        A checkpoint is written after every round, before its decisions are logged; `resume`
        is such a checkpoint to continue from. judge: genotype -> benchmark numbers
        (runner/selection/lookup.py), asked after every round for the cell the decision state
        gives. mode: the run's precision switches (None: resolved for the net's device).
        """
        if self.edge_order not in EDGE_ORDERS:  # inside the run: it fails as FAILED
            raise ValueError(f"select.edge_order must be one of {EDGE_ORDERS}, not "
                             f"{self.edge_order!r}")
        # dedicated edge-order generator: same supernet + seed -> same order (darts-pt: np.random)
        order_seed = seed if self.edge_order_seed is None else self.edge_order_seed
        order_rng = (np.random.RandomState(order_seed)
                     if self.edge_order not in ("fixed", "reverse") else None)
        mode = mode or precision(device_of(net))
        mode.model(net)  # a supernet loaded from another run arrives in NCHW
        distributed.global_batch_norm(net)  # torchrun: tuning and scoring over the global batch
        tracker.tags({"edge_order": self.edge_order, "edge_order_seed": order_seed,
                      **mode.tags()})
        train_idx, valid_idx = data.search_halves()
        # a fresh SGD at lr/10, never scheduled; alpha keeps its Adam state (darts-pt pt_project)
        opt = torch.optim.SGD(net.weights(), self.tune_lr, momentum=self.tune_momentum,
                              weight_decay=self.tune_weight_decay)
        loop = Loop(net, data, gen, valid_idx, method, opt, self.batch_size, self.grad_clip, mode)
        records, start = [], 0
        if resume is not None:
            records, start = resume_from(resume, net, method, opt, gen, order_rng, tracker)
        rounds = start + num_rounds(net)
        starts, total_tune = decision_epochs(rounds, self.tune_epochs, self.schedule)
        report = progress.Decisions(rounds, enabled=distributed.is_main())
        begin_round = getattr(self.criterion, "begin_round", None)  # Zero-Cost: a new batch
        for r in range(start, rounds):
            if begin_round is not None:
                begin_round(r)
            new = [dict(decide(net, cell, self.criterion, loop, order_rng, self.edge_order),
                        round=r)
                   for cell in net.space.cell.types
                   if open_edges(net, cell) or open_nodes(net, cell)]
            fine_tune(loop, train_idx,
                      range(starts[r], starts[r + 1] if r + 1 < rounds else total_tune),
                      total_tune, report, r)
            after = (valid_accuracy(net, data, valid_idx, mode) if self.tune_epochs
                     else float("nan"))
            geno = net.genotype()  # decided edges as decided, magnitude on the open ones
            # the scores are sums over ranks and alpha is the same everywhere: so are decisions
            distributed.agree(str(geno), f"genotype after selection round {r}")
            found = decision_columns(judge(geno)) if judge else {}
            for rec in new:
                rec.update(valid_acc_after=after, genotype=str(geno), step=len(records), **found)
                records.append(rec)
                report.decision(rec)
            if ckpt_path and distributed.is_main():  # the other ranks hold the same state
                checkpoint.save({"meta": checkpoint.meta(net, method), "net": net.state_dict(),
                                 "method": method.state_dict(),
                                 "tune_opt": opt.state_dict(), "round": r + 1,
                                 "records": records, "rng": rng.capture(gen, order_rng)},
                                ckpt_path)
            for rec in new:
                tracker.metrics(decision_metrics(rec, net.space.cell), step=rec["step"])
        order = lambda c, kept: self.criterion.gene_order(net, c, kept)  # noqa: E731
        return genotype_from_decisions(net, order), records


def select(net, method, data, tracker, gen, seed, ckpt_path=None, resume=None, judge=None,
           mode=None, **settings):
    """`Selector(**settings)` run once (settings left out come from the `select.*` bindings)."""
    return Selector(**settings)(net, method, data, tracker, gen, seed, ckpt_path, resume, judge,
                                mode)


def resume_from(state, net, method, opt, gen, order_rng, tracker):
    """Load a selection checkpoint; re-log the last round's decisions if they were not."""
    with checkpoint.applying(state, "selection checkpoint", net, method):
        net.load_state_dict(state["net"])
        method.load_state_dict(state["method"])
        opt.load_state_dict(state["tune_opt"])
        rng.restore(state["rng"], gen, order_rng)
    records = list(state["records"])
    for rec in records:
        if rec["round"] == state["round"] - 1:
            tracker.ensure_logged(decision_metrics(rec, net.space.cell), step=rec["step"])
    return records, state["round"]


def decision_metrics(rec, spec):
    """Step metrics for one decision (`spec`: the cell description); the full record goes to
    the decisions table."""
    m = {"select/seconds": rec["seconds"], "select/valid_acc_after": rec["valid_acc_after"],
         "select/cell_type": float(spec.type_index(rec["cell"]))}
    m.update({f"select/{k}": v for k, v in rec.items() if k.startswith("bench_")})
    if rec["kind"] == "op":
        k = rec["candidates"].index(rec["chosen"])
        for key, v in (rec["scores"][k] or {}).items():
            m[f"select/chosen_{key}"] = v
    return {k: v for k, v in m.items() if np.isfinite(v)}


def records_table(records):
    """One row per decision; candidate lists and scores as JSON strings pandas can read back."""
    import json

    rows = []
    for r in records:
        row = {k: json.dumps(r[k]) if k == "chosen" else r[k]
               for k in ("step", "round", "kind", "cell", "where", "chosen", "valid_acc_after",
                         "genotype", "seconds")}
        row.update({k: v for k, v in r.items() if k.startswith("bench_")})
        row["candidates"] = json.dumps(r["candidates"])
        row["scores"] = json.dumps(r["scores"])
        if r["kind"] == "op":
            for key in ("acc", "loss", "weight", "score", "shapley"):
                vals = [s.get(key) if s else None for s in r["scores"]]
                if any(v is not None for v in vals):
                    row[f"masked_{key}" if key != "weight" else "weight"] = json.dumps(vals)
        rows.append(row)
    return rows



