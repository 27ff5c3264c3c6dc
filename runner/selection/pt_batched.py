"""Several PT masks scored in one forward pass, with the numbers of one pass per mask.

The one-by-one path runs pass g over a freshly shuffled alpha half with BN in train mode, as
darts-pt's project_op. Here G passes run in lockstep: batch b of every pass goes through the
supernet as one batch of G*B images, and
* the data: every pass's order and augmentation numbers are drawn first, in the one-by-one
  order, so the same generator yields the same batches;
* the masks: each image carries its pass's mixing weights (a [G*B, 1, 1, 1] weight per op);
  an op masked in pass g is computed for the others and multiplied by 0 for g, which adds an
  exact 0 to the edge sum;
* BN: every BatchNorm normalises each pass's B images with their own batch statistics
  (the batch is folded so that each pass's channels are channels of their own);
* running statistics: each BN's updates are replayed in the one-by-one order (pass after
  pass), skipping the passes in which that BN's op was masked, so the running mean/var and
  the batch counter end as the sequential passes leave them.
Equal to the one-by-one path up to float32 rounding: the tests find the same scores and
decisions, and running statistics within 1e-6 (tests/test_perf.py). Not used for spaces with
`noise` ops: their draws from the global RNG would come in another order.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from runner.training.loops import Meter, shuffled_batches


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
    """BatchNorm module -> (cell type, edge, op) when it belongs to a candidate op, else None."""
    owners = {m: None for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    for mixed in net.mixed_ops():
        for k, op in enumerate(mixed.ops):
            for m in op.modules():
                if isinstance(m, nn.BatchNorm2d):
                    owners[m] = (*mixed.where, k)
    return owners


def fold(x, G):
    """(G*n, C, H, W) -> (n, G*C, H, W): the G passes' channels side by side, same layout."""
    N, C, H, W = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        t = x.permute(0, 2, 3, 1).reshape(G, N // G, H, W, C).permute(1, 2, 3, 0, 4)
        return t.reshape(N // G, H, W, G * C).permute(0, 3, 1, 2)
    return x.reshape(G, N // G, C, H, W).transpose(0, 1).reshape(N // G, G * C, H, W)


def unfold(y, G):
    """The inverse of `fold`."""
    n, GC, H, W = y.shape
    C = GC // G
    if y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
        t = y.permute(0, 2, 3, 1).reshape(n, H, W, G, C).permute(3, 0, 1, 2, 4)
        return t.reshape(G * n, H, W, C).permute(0, 3, 1, 2)
    return y.reshape(n, G, C, H, W).transpose(0, 1).reshape(G * n, C, H, W)


class GroupedBN:
    """Per-pass batch statistics for every BatchNorm2d of a net, and the running-stat replay.

    A BN over the folded batch (n, G*C, H, W) normalises channel c of pass g with pass g's own
    statistics; its running buffers, started at 0, collect each pass's EMA of batch
    statistics, which `replay` applies pass after pass.
    """

    def __init__(self, net, actives):
        self.owners, self.actives, self.G = bn_owners(net), actives, len(actives)
        self.acc = {}  # bn -> [EMA of pass batch means (G*C), of unbiased vars (G*C), batches]

    def counts(self, bn, g):
        o = self.owners[bn]
        return o is None or o[2] in self.actives[g][o[0]][o[1]]

    def forward(self, bn, x):
        if bn.momentum is None:
            raise NotImplementedError("batched PT scoring needs BatchNorm momentum")
        G = self.G
        if bn not in self.acc:
            self.acc[bn] = [bn.running_mean.new_zeros(G * bn.num_features),
                            bn.running_var.new_zeros(G * bn.num_features), 0]
        acc = self.acc[bn]
        acc[2] += 1
        w, b = (bn.weight.repeat(G), bn.bias.repeat(G)) if bn.affine else (None, None)
        y = F.batch_norm(fold(x, G), acc[0], acc[1], w, b, True, bn.momentum, bn.eps)
        return unfold(y, G)

    @torch.no_grad()
    def replay(self):
        """Running stats as the passes one after another leave them: r <- a^n r + EMA_g."""
        for bn, (sm, sv, n) in self.acc.items():
            decay = (1.0 - bn.momentum) ** n
            sm, sv = sm.view(self.G, -1), sv.view(self.G, -1)
            for g in range(self.G):
                if self.counts(bn, g):
                    bn.running_mean.mul_(decay).add_(sm[g])
                    bn.running_var.mul_(decay).add_(sv[g])
                    bn.num_batches_tracked += n

    def __enter__(self):
        for bn in self.owners:
            bn.forward = lambda x, bn=bn: self.forward(bn, x)
        return self

    def __exit__(self, *exc):
        for bn in self.owners:
            del bn.forward  # back to the class's forward


def sample_weights(w, masks, n, dtype, spec):
    """[T, E, K] mixing weights -> [T, E, K, G*n, 1, 1, 1], pass g's mask zeroed in its rows."""
    wg = w[..., None].repeat(1, 1, 1, len(masks))
    for g, masked in enumerate(masks):
        for c, e, k in masked:
            wg[spec.type_index(c), e, slice(None) if k is None else k, g] = 0.0
    return wg.repeat_interleave(n, dim=-1)[..., None, None, None].to(dtype)


@torch.no_grad()
def measure_grouped(net, data, masks, passes, mode):
    """Accuracy and loss of each mask set in `masks`, its pass given by `passes` (draw_passes)."""
    G, w = len(masks), net.mixing_weights().detach()
    actives = [net.active_ops(m) for m in masks]
    union = [[sorted(set().union(*(a[c][e] for a in actives))) for e in range(len(actives[0][c]))]
             for c in range(len(actives[0]))]
    meters = [Meter() for _ in range(G)]
    dtype = getattr(torch, mode.dtype) if mode.dtype else w.dtype
    with GroupedBN(net, actives) as bns:
        for b in range(len(passes[0])):
            xs = [data.apply(data.train_x[passes[g][b][0]], passes[g][b][1]) for g in range(G)]
            n = xs[0].size(0)
            wg = sample_weights(w, masks, n, dtype, net.space.cell)
            with mode.autocast():
                logits = net(mode.input(torch.cat(xs)), wg, union)
            for g in range(G):
                lg, y = logits[g * n:(g + 1) * n], data.train_y[passes[g][b][0]]
                meters[g].update(lg, y, F.cross_entropy(lg, y))
    bns.replay()
    return [meters[g].result("masked") for g in range(G)]
