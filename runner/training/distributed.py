"""Data parallelism under torchrun: the process group from torchrun's environment, rank-0
decisions broadcast to every rank, global sums, the per-rank share of a batch, and batch
statistics over the whole global batch.

Outside torchrun (no WORLD_SIZE, or 1) every function here is the single-process identity, so
a plain `runner` call behaves as before.
"""
import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from runner.training.precision import device_of


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self):
        return self.rank == 0


_RANKS = Ranks()


def ranks():
    return _RANKS


def is_main():
    return _RANKS.main


def from_env(env=None):
    env = os.environ if env is None else env
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                 int(env.get("LOCAL_RANK", 0)))


@contextmanager
def session(env=None):
    """The process group for the duration of a command (NCCL on GPUs, gloo on CPUs), torn
    down on every way out; a no-op outside torchrun."""
    global _RANKS
    r = from_env(env)
    if r.world <= 1 or dist.is_initialized():
        yield r
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(r.local_rank % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo")
    _RANKS = r
    try:
        yield r
    finally:
        _RANKS = Ranks()
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a peer already gone; nothing is left to undo
            pass


def finish():
    """Every rank waits for the others before tearing down (one that leaves first can make
    a slower one's last step fail); only after a run that succeeded on this rank."""
    if _RANKS.world > 1:
        dist.barrier()


def tags():
    """What a run records of its data parallelism (nothing outside torchrun)."""
    if _RANKS.world <= 1:
        return {}
    return {"world_size": _RANKS.world, "backend": dist.get_backend()}


class RankFailed(RuntimeError):
    """Rank 0 failed while deciding something every rank waits for."""


def decide(fn):
    """fn() on rank 0, its result sent to every rank; an exception on rank 0 is raised on
    every rank (no rank is left waiting for a value that never comes)."""
    if _RANKS.world <= 1:
        return fn()
    box = [None]
    if _RANKS.main:
        try:
            box = [("ok", fn())]
        except Exception as e:  # noqa: BLE001 - sent on, then raised again here
            box = [("error", e)]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        if _RANKS.main:
            raise value
        raise RankFailed(f"rank 0 failed: {type(value).__name__}: {value}")
    return value


def all_sum(values):
    """Elementwise sum over ranks of a list of floats."""
    if _RANKS.world <= 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def share(n):
    """This rank's slice of a global batch of n samples (contiguous; sizes differ by at most
    one when n is not a multiple of the world size)."""
    if _RANKS.world <= 1:
        return slice(0, n)
    bounds = torch.linspace(0, n, _RANKS.world + 1).round().long().tolist()
    return slice(bounds[_RANKS.rank], bounds[_RANKS.rank + 1])


class _AllReduce(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the incoming gradients (every
    rank's loss depends on every rank's share through the sum)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(x):
    return _AllReduce.apply(x)


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (every rank's
    share together), for gloo on CPUs where torch's SyncBatchNorm does not run. Sums go
    through the differentiable all_reduce, so the backward pass is the global batch's too."""

    def forward(self, x):
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.size(1)
        # the count rides with the sums: two all-reduces per forward (a search runs thousands)
        local = torch.cat([x.new_full((1,), x.numel() / c), x.sum((0, 2, 3))])
        total = all_reduce(local)
        count, mean = total[:1], total[1:] / total[:1]
        var = all_reduce(((x - mean.view(1, c, 1, 1)) ** 2).sum((0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum  # None: a cumulative average, as BatchNorm2d
                m = 1.0 / float(self.num_batches_tracked) if m is None else m
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_var.mul_(1 - m).add_(unbiased * m)
        y = (x - mean.view(1, c, 1, 1)) / torch.sqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


def global_batch_norm(net):
    """Every BatchNorm2d of `net` normalising over the global batch: torch's SyncBatchNorm on
    GPUs, GlobalBatchNorm on CPUs, in place (the root is returned). A no-op outside torchrun
    and on a net already converted (search, then selection on the same supernet)."""
    if _RANKS.world <= 1 or any(isinstance(m, (nn.SyncBatchNorm, GlobalBatchNorm))
                                for m in net.modules()):
        return net
    if device_of(net).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return _globalise(net)


def _globalise(module):
    for name, m in list(module.named_children()):
        if isinstance(m, nn.BatchNorm2d) and not isinstance(m, GlobalBatchNorm):
            g = GlobalBatchNorm(m.num_features, m.eps, m.momentum, m.affine,
                                m.track_running_stats).to(m.running_mean.device)
            g.load_state_dict(m.state_dict())
            setattr(module, name, g)
        else:
            _globalise(m)
    return module


def data_parallel(net):
    """`net` in DistributedDataParallel (gradients averaged over ranks) under torchrun. Its
    BN buffers are equal on every rank already (global_batch_norm): none are broadcast."""
    if _RANKS.world <= 1:
        return net
    ids = [device_of(net).index] if device_of(net).type == "cuda" else None
    params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    quiet = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
             else {"broadcast_buffers": False})  # the newer name in torch 2.14
    return nn.parallel.DistributedDataParallel(net, device_ids=ids, **quiet)


def drop_path_stream(seed, epoch):
    """Under torchrun, the global torch RNG (drop path's masks) of each rank its own stream,
    set per epoch so that a resumed run draws the same masks; a no-op outside torchrun,
    where the run's one stream goes on as before."""
    if _RANKS.world > 1:
        torch.manual_seed(((seed * 1_000_003 + epoch) * 4096 + _RANKS.rank) % 2**63)


def unwrapped(net):
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def scaled_loss(logits, y, global_n, label_smoothing=0.0):
    """This rank's share of the global batch's mean loss, times the world size: DDP's
    gradient average then gives exactly the global-batch mean's gradient, also when the
    shares are unequal. One process: the plain mean, bit for bit as before."""
    if _RANKS.world <= 1:
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return F.cross_entropy(logits, y, reduction="sum", label_smoothing=label_smoothing) * (
        _RANKS.world / global_n)


def mean_loss(logits, y):
    """`scaled_loss` for a loop that does not know the global batch size (the search methods'
    steps): the size is summed over ranks on the device. One process: the plain mean."""
    if _RANKS.world <= 1:
        return F.cross_entropy(logits, y)
    n = torch.tensor([float(y.numel())], device=logits.device)
    dist.all_reduce(n)
    return F.cross_entropy(logits, y, reduction="sum") * (_RANKS.world / n[0])


def average(t):
    """The mean over ranks of a tensor (a gradient from torch.autograd.grad, a loss value);
    the tensor itself outside torchrun."""
    if _RANKS.world <= 1:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / _RANKS.world


def average_grads(params):
    """Every parameter's .grad replaced by its mean over ranks, in one all-reduce: with
    `mean_loss` that is the global batch's gradient, the same on every rank, so optimisers
    that step on it keep the ranks' parameters (weights and alpha) identical. Parameters
    without a gradient are skipped (the same ones on every rank: the same ops run)."""
    if _RANKS.world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _RANKS.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view(g.shape))
        offset += g.numel()


class RanksDisagree(RuntimeError):
    """Ranks that should hold the same value hold different ones."""


def agree(value, what):
    """Check that every rank holds the same `value` (e.g. the genotype after a decision);
    the one-line error names the first rank that differs from rank 0."""
    if _RANKS.world <= 1:
        return value
    values = [None] * _RANKS.world
    dist.all_gather_object(values, value)
    for r, v in enumerate(values):
        if v != values[0]:
            raise RanksDisagree(f"{what}: rank {r} has {v!r}, rank 0 has {values[0]!r}")
    return value


def local_mean(loss, global_n, local_n):
    """The mean loss over this rank's share, from its `scaled_loss` (for the metrics)."""
    if _RANKS.world <= 1:
        return loss
    return loss * global_n / (_RANKS.world * max(local_n, 1))
