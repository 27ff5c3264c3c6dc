"""Several PT masks scored in one forward pass, exactly as one pass per mask would (spec §4.1).

The one-by-one path runs pass g over a freshly shuffled alpha half with BN in train mode
(spec §9.4). Here G passes run in lockstep: batch b of every pass goes through the supernet as
one batch of G*B images, and
* the data: every pass's order and augmentation numbers are drawn first, in the one-by-one
  order, so the same generator yields the same batches;
* the masks: each image carries its pass's mixing weights (a [G*B, 1, 1, 1] weight per op);
  an op masked in pass g is computed for the others and multiplied by 0 for g, which adds an
  exact 0 to the edge sum;
* BN: every BatchNorm normalises each pass's B images with their own batch statistics;
* running statistics: each BN's updates are replayed in the one-by-one order (pass after
  pass), skipping the passes in which that BN's op was masked, so the running mean/var and
  the batch counter end as the sequential passes leave them.
Equal to the one-by-one path up to float32 rounding (tests/test_perf.py). Not used for spaces
with `noise` ops: their draws from the global RNG would come in another order.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from runner.loops import Meter, shuffled_batches
from spaces.supernet import CELLS

_OP = re.compile(r"^cells\.(\d+)\.edges\.(\d+)\.ops\.(\d+)\.")


def draw_passes(data, idx, batch_size, subset, gen, n):
    """n passes of (indices, augmentation numbers) per batch, drawn as n measure() calls would."""
    passes = []
    for _ in range(n):
        batches, seen = [], 0
        for bi in shuffled_batches(idx, batch_size, gen):
            if subset is not None and seen >= subset:
                break
            bi = bi[: None if subset is None else subset - seen]
            seen += bi.numel()
            batches.append((bi, data.draw(bi.numel(), gen)))
        passes.append(batches)
    return passes


def bn_owners(net):
    """BatchNorm module -> (cell type index, edge, op) when it belongs to a candidate op, else None."""
    owners = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            hit = _OP.match(name + ".")
            owners[m] = None if hit is None else (
                int(net.cells[int(hit[1])].reduction), int(hit[2]), int(hit[3]))
    return owners


class GroupedBN:
    """Per-pass batch statistics for every BatchNorm2d of a net, and the running-stat replay."""

    def __init__(self, net, actives):
        self.owners, self.actives, self.G = bn_owners(net), actives, len(actives)
        self.acc = {}  # bn -> [per-pass EMA of batch means, of batch vars, batches]

    def counts(self, bn, g):
        o = self.owners[bn]
        return o is None or o[2] in self.actives[g][o[0]][o[1]]

    def forward(self, bn, x):
        if bn.momentum is None:
            raise NotImplementedError("batched PT scoring needs BatchNorm momentum")
        G, C = self.G, x.size(1)
        xg = x.reshape(G, x.size(0) // G, *x.shape[1:]).float()
        var, mean = torch.var_mean(xg, dim=(1, 3, 4), correction=0, keepdim=True)
        y = (xg - mean) * torch.rsqrt(var + bn.eps)
        if bn.affine:
            y = y * bn.weight.view(1, 1, C, 1, 1) + bn.bias.view(1, 1, C, 1, 1)
        m = xg[0].numel() // C  # values per channel in one pass's batch
        self._record(bn, mean.view(G, C), var.view(G, C) * (m / max(m - 1, 1)))
        return y.reshape(x.shape).to(x.dtype)

    def _record(self, bn, mean, var):
        """Per pass, the EMA of its updates so far started from 0 (all passes; masked ones are
        dropped in `replay`)."""
        if bn not in self.acc:
            self.acc[bn] = [torch.zeros_like(mean), torch.zeros_like(var), 0]
        s = self.acc[bn]
        s[0] = (1.0 - bn.momentum) * s[0] + bn.momentum * mean
        s[1] = (1.0 - bn.momentum) * s[1] + bn.momentum * var
        s[2] += 1

    @torch.no_grad()
    def replay(self):
        """Running stats as the passes one after another leave them: r <- a^n r + EMA_g."""
        for bn, (sm, sv, n) in self.acc.items():
            decay = (1.0 - bn.momentum) ** n
            for g in range(self.G):
                if self.counts(bn, g):
                    bn.running_mean.mul_(decay).add_(sm[g].to(bn.running_mean.dtype))
                    bn.running_var.mul_(decay).add_(sv[g].to(bn.running_var.dtype))
                    bn.num_batches_tracked += n

    def __enter__(self):
        for bn in self.owners:
            bn.forward = lambda x, bn=bn: self.forward(bn, x)
        return self

    def __exit__(self, *exc):
        for bn in self.owners:
            del bn.forward  # back to the class's forward


def sample_weights(w, masks, n, dtype):
    """[2, 14, K] mixing weights -> [2, 14, K, G*n, 1, 1, 1], pass g's mask zeroed in its rows."""
    wg = w[..., None].repeat(1, 1, 1, len(masks))
    for g, masked in enumerate(masks):
        for c, e, k in masked:
            wg[CELLS.index(c), e, slice(None) if k is None else k, g] = 0.0
    return wg.repeat_interleave(n, dim=-1)[..., None, None, None].to(dtype)


@torch.no_grad()
def measure_grouped(net, data, masks, passes, mode):
    """Accuracy and loss of each mask set in `masks`, its pass given by `passes` (draw_passes)."""
    G, w = len(masks), net.mixing_weights().detach()
    actives = [net.active_ops(m) for m in masks]
    union = [[sorted(set().union(*(a[c][e] for a in actives))) for e in range(len(actives[0][c]))]
             for c in range(len(CELLS))]
    meters = [Meter() for _ in range(G)]
    dtype = getattr(torch, mode.dtype) if mode.dtype else w.dtype
    with GroupedBN(net, actives) as bns:
        for b in range(len(passes[0])):
            xs = [data.apply(data.train_x[passes[g][b][0]], passes[g][b][1]) for g in range(G)]
            n = xs[0].size(0)
            with mode.autocast():
                logits = net(mode.input(torch.cat(xs)), sample_weights(w, masks, n, dtype), union)
            for g in range(G):
                lg, y = logits[g * n:(g + 1) * n], data.train_y[passes[g][b][0]]
                meters[g].update(lg, y, F.cross_entropy(lg, y))
    bns.replay()
    return [meters[g].result("masked") for g in range(G)]
