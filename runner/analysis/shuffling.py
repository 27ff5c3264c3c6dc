"""Edge shuffling (paper §3.2, Table 1): a trained supernet's test accuracy before and after
swapping two edges in every cell, beside a plain (VGG-like) and a residual (ResNet-like) network
of comparable depth trained on the same data, with two layers swapped per stage.

A swapped edge takes its op and its mixing weights along to the other position (an edge is an op
with its alpha); only edges of the same stride swap. Each of `shuffles` draws comes from one
generator seeded with the run's seed.
"""
import copy
import tempfile

import gin
import numpy as np
import torch
import torch.nn as nn

from runner.training.loops import evaluate
from runner.training.precision import precision
from runner.training.retrain import tensor_batches, train_epoch
from spaces.supernet import MixedOp


class Moved(nn.Module):
    """An edge moved to another position: its own mixing weights and ops, whatever the cell
    hands the position."""

    def __init__(self, edge, w, active):
        super().__init__()
        self.edge, self.active = edge, active
        self.register_buffer("w", w)

    def forward(self, x, w, active):
        return self.edge(x, self.w, self.active)


def cells_of(net):
    """Each cell's list of edges: every ModuleList made of MixedOps only."""
    return [m for m in net.modules() if isinstance(m, nn.ModuleList) and len(m)
            and all(isinstance(e, MixedOp) for e in m)]


def swap_candidates(edges):
    """Pairs (i, j), i < j, of edges of one cell that can trade places (same stride)."""
    return [(i, j) for i in range(len(edges)) for j in range(i + 1, len(edges))
            if edges[i].stride == edges[j].stride]


def shuffled_supernet(net, rng):
    """A copy of `net` with two edges swapped in every cell; returns (copy, [(cell, i, j)])."""
    out = copy.deepcopy(net)
    w, active = out.mixing_weights().detach(), out.active_ops()
    swaps = []
    for c, edges in enumerate(cells_of(out)):
        pairs = swap_candidates(edges)
        i, j = pairs[rng.randint(len(pairs))]
        (t, ei), (_, ej) = edges[i].where, edges[j].where
        a, b = edges[i], edges[j]
        edges[i], edges[j] = Moved(b, w[t, ej], active[t][ej]), Moved(a, w[t, ei], active[t][ei])
        swaps.append((c, i, j))
    return out, swaps


def conv_bn_relu(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class Baseline(nn.Module):
    """3 stages of `depth` 3x3 conv-BN-ReLU layers (C, 2C, 4C; stride 2 at stages 2 and 3),
    plain (VGG-like) or each layer residual (ResNet-like), then pooling and a linear head."""

    def __init__(self, residual, depth, C, in_channels, num_classes):
        super().__init__()
        self.residual = residual
        self.stem = conv_bn_relu(in_channels, C)
        self.stages, c_in = nn.ModuleList(), C
        for s in range(3):
            c = C * 2 ** s
            down = conv_bn_relu(c_in, c, 2 if s else 1)
            self.stages.append(nn.ModuleList([down] + [conv_bn_relu(c, c) for _ in range(depth)]))
            c_in = c
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage[0](x)
            for layer in stage[1:]:
                x = x + layer(x) if self.residual else layer(x)
        return self.head(x.mean(dim=(2, 3))), None


def shuffled_baseline(net, rng):
    """A copy with two same-shape layers (after each stage's downsampling one) swapped per
    stage; returns (copy, [(stage, i, j)])."""
    out, swaps = copy.deepcopy(net), []
    for s, stage in enumerate(out.stages):
        i, j = sorted(rng.choice(np.arange(1, len(stage)), 2, replace=False).tolist())
        stage[i], stage[j] = stage[j], stage[i]
        swaps.append((s, i, j))
    return out, swaps


@gin.configurable
class EdgeShuffling:
    """The analysis, run by `run.analysis = @EdgeShuffling()` on the run's supernet.

    shuffles: R draws per model. baseline_depth: layers per stage of the two baselines (the
    search supernet has 8 cells); baseline_C, baseline_epochs, baseline_lr: their
    size and training (SGD, cosine to 0, on the full train split).
    """

    name = "edge_shuffling"

    def __init__(self, shuffles=10, baseline_depth=4, baseline_C=16, baseline_epochs=20,
                 baseline_lr=0.05, batch_size=96):
        self.shuffles, self.depth, self.C = shuffles, baseline_depth, baseline_C
        self.epochs, self.lr, self.batch_size = baseline_epochs, baseline_lr, batch_size

    def __call__(self, net, method, data, tracker, gen, seed, source=None, mode=None):
        """`source` (the run whose supernet this is) is part of every analysis' call; the
        shuffles need only the supernet. mode: the run's precision switches (None: resolved
        for the data's device)."""
        mode = mode or precision(data.train_y.device)
        rng = np.random.RandomState(seed)
        rows = [measure("supernet", net, data, rng, self.shuffles, shuffled_supernet)]
        for name, residual in (("vgg", False), ("resnet", True)):
            torch.manual_seed(seed)
            base = Baseline(residual, self.depth, self.C, data.in_channels, data.num_classes)
            self.train(base.to(data.train_y.device), data, gen, mode)
            rows.append(measure(name, base, data, rng, self.shuffles, shuffled_baseline))
        return log(tracker, rows)

    def train(self, net, data, gen, mode):
        opt = torch.optim.SGD(net.parameters(), self.lr, momentum=0.9, weight_decay=3e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(self.epochs, 1))
        for _ in range(self.epochs):
            train_epoch(net, opt, tensor_batches(data, gen, self.batch_size, 0, mode), 5.0, 0.0,
                        mode)
            sched.step()


def test_acc(net, data):
    return evaluate(net, data, data.test_x, data.test_y)["eval_acc"]


def measure(model, net, data, rng, shuffles, shuffle):
    after = [test_acc(shuffle(net, rng)[0], data) for _ in range(shuffles)]
    return {"model": model, "before": test_acc(net, data), "after_mean": float(np.mean(after)),
            "after_std": float(np.std(after, ddof=1)) if len(after) > 1 else float("nan"),
            "shuffles": len(after)}


def log(tracker, rows):
    import math

    import pandas as pd

    from runner.commands.report import write_tables
    from tracking.plots import shuffling_bars

    with tempfile.TemporaryDirectory() as tmp:
        for path in write_tables({"edge_shuffling": pd.DataFrame(rows)}, tmp):
            tracker.artifact(path, "analysis")
    tracker.tags({"analysis": "edge_shuffling"})
    tracker.metrics({f"analysis/{r['model']}_{k}": r[k] for r in rows
                     for k in ("before", "after_mean", "after_std") if math.isfinite(r[k])},
                    step=0)
    tracker.plot(shuffling_bars, rows, name="edge_shuffling.png")
    return {"analysis": "edge_shuffling",
            **{f"{r['model']} before / after": f"{r['before']:.2f} / {r['after_mean']:.2f}"
               for r in rows}}
