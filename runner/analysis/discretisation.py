"""Discretisation accuracy at convergence vs alpha (paper §3.1, Figures 1, 2 and 7).

For each chosen edge of one cell type and each of its ops: fix the edge to that op, fine-tune
the rest of the supernet (the PT tuning epoch of runner.selection.select, with the run's
method), and measure the valid accuracy on the alpha half. Each (edge, op) starts from the same
supernet state. Logged: the table (one row per edge and op), per-edge Kendall tau between the
alpha ranking and the accuracy ranking, which op each ranks first, and the figure.
"""
import copy
import math
import tempfile
from collections import Counter

import gin
import numpy as np
import torch

from runner.selection.select import fine_tune
from runner.training.loops import Loop, valid_accuracy
from runner.training.precision import device_of, precision


def kendall_tau(a, b):
    """Kendall's tau-b of two score lists (ties allowed); NaN when either is constant."""
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return float(tau) if tau is not None else float("nan")


def first(values):
    """Index of the largest value; ties go to the lowest index (the magnitude parse's rule)."""
    return int(np.argmax(values))


@gin.configurable
class Discretisation:
    """The analysis, run by `run.analysis = @Discretisation()` on the run's supernet.

    edges: 'random' (num_edges of them, drawn with edge_seed, None: the run's seed) or 'all'.
    cell_type: which cell type's edges (None: the first, the normal cell). tune_epochs: the
    fine-tuning after each discretisation (the paper tunes until the supernet converges again).
    """

    name = "discretisation"

    def __init__(self, edges="random", num_edges=3, edge_seed=None, cell_type=None,
                 tune_epochs=5, tune_lr=0.0025, tune_momentum=0.9, tune_weight_decay=3e-4,
                 batch_size=64, grad_clip=5.0):
        if edges not in ("random", "all"):
            raise ValueError(f"Discretisation.edges must be 'random' or 'all', not {edges!r}")
        self.edges, self.num_edges, self.edge_seed, self.cell_type = edges, num_edges, \
            edge_seed, cell_type
        self.tune_epochs, self.batch_size, self.grad_clip = tune_epochs, batch_size, grad_clip
        self.opt = dict(lr=tune_lr, momentum=tune_momentum, weight_decay=tune_weight_decay)

    def chosen_edges(self, net, seed):
        n = net.space.cell.num_edges
        if self.edges == "all":
            return list(range(n))
        rng = np.random.RandomState(seed if self.edge_seed is None else self.edge_seed)
        return sorted(int(e) for e in rng.choice(n, min(self.num_edges, n), replace=False))

    def __call__(self, net, method, data, tracker, gen, seed, source=None, mode=None):
        """`source` (the run whose supernet this is) is part of every analysis' call; the
        discretisation needs only the supernet. mode: the run's precision switches (None:
        resolved for the net's device)."""
        spec = net.space.cell
        cell = self.cell_type or spec.types[0]
        t = spec.type_index(cell)
        edges = self.chosen_edges(net, seed)
        tracker.tags({"analysis": self.name, "analysis_cell": cell,
                      "analysis_edges": ",".join(map(str, edges))})
        mode = mode or precision(device_of(net))
        mode.model(net)
        start = copy.deepcopy((net.state_dict(), method.state_dict(), gen.get_state()))
        alpha = torch.softmax(net.alphas.detach()[t], -1).cpu().tolist()
        rows = []
        for e in edges:
            for k, op in enumerate(net.space.ops(t)[e]):
                acc = self.converged_accuracy(net, method, data, gen, start, cell, e, k, mode)
                rows.append({"edge": e, "op": op, "alpha": alpha[e][k], "disc_acc": acc})
        net.load_state_dict(start[0])
        method.load_state_dict(start[1])
        return log(tracker, rows, cell)

    def converged_accuracy(self, net, method, data, gen, start, cell, edge, op, mode):
        """Valid accuracy after fixing `edge` to `op` and tune_epochs of fine-tuning."""
        net.load_state_dict(start[0])
        method.load_state_dict(start[1])
        gen.set_state(start[2])  # every op sees the same batches
        net.fix_edge(cell, edge, op)
        train_idx, valid_idx = data.search_halves()
        opt = torch.optim.SGD(net.weights(), **self.opt) if self.tune_epochs else None
        loop = Loop(net, data, gen, valid_idx, method, opt, self.batch_size, self.grad_clip,
                    mode)
        fine_tune(loop, train_idx, range(self.tune_epochs), self.tune_epochs)
        return valid_accuracy(net, data, valid_idx, mode)


def edge_summary(rows):
    """Per edge: the op alpha ranks first, the op accuracy ranks first, Kendall tau."""
    out = []
    for e in dict.fromkeys(r["edge"] for r in rows):
        rs = [r for r in rows if r["edge"] == e]
        a, d = [r["alpha"] for r in rs], [r["disc_acc"] for r in rs]
        out.append({"edge": e, "alpha_pick": rs[first(a)]["op"], "acc_pick": rs[first(d)]["op"],
                    "kendall_tau": kendall_tau(a, d)})
    return out


def log(tracker, rows, cell):
    import pandas as pd

    from runner.commands.report import write_tables
    from tracking.plots import discretisation_bars

    edges = edge_summary(rows)
    with tempfile.TemporaryDirectory() as tmp:
        tables = {"discretisation": pd.DataFrame(rows), "edges": pd.DataFrame(edges)}
        for path in write_tables(tables, tmp):
            tracker.artifact(path, "analysis")
    taus = [s["kendall_tau"] for s in edges if math.isfinite(s["kendall_tau"])]
    metrics = {"analysis/mean_kendall_tau": float(np.mean(taus))} if taus else {}
    picks = {key: Counter(s[key] for s in edges) for key in ("alpha_pick", "acc_pick")}
    counts = {f"analysis/{key}s_{op}": n for key, c in picks.items() for op, n in c.items()}
    tracker.metrics({**metrics, **counts}, step=0)
    ops = sorted({r["op"] for r in rows})
    line = "; ".join(f"{who}: " + ", ".join(
        f"{op} on {picks[key][op]}/{len(edges)}" for op in ops)
        for who, key in (("alpha", "alpha_pick"), ("accuracy", "acc_pick")))
    tracker.tags({"analysis_picks": line})
    tracker.plot(discretisation_bars, rows, cell, name="discretisation.png")
    return {"analysis": "discretisation", "picks": line, **metrics}
