"""Small shared pieces of the training loops: their context, batching, accuracy, evaluation."""
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from runner.training import distributed
from runner.training.precision import device_of, precision


@dataclass
class Loop:
    """What the steps of a supernet loop share (search, PT fine-tuning, PT scoring).

    valid_idx: the alpha half of the train split, where alpha steps and PT scores draw their
    batches. mode: the precision switches (runner/training/precision.py); None resolves them
    for the net's device. method and opt are unused when only scoring.
    """

    net: Any
    data: Any
    gen: torch.Generator
    valid_idx: torch.Tensor
    method: Any = None
    opt: Optional[torch.optim.Optimizer] = None
    batch_size: int = 64
    grad_clip: float = 5.0
    mode: Any = None

    def precision(self, net):
        """The run's precision switches; a loop built without them (a unit test, a benchmark)
        resolves them for `net`'s device."""
        return self.mode or precision(device_of(net))


def shuffled_batches(idx, batch_size, gen):
    """One pass over `idx` in a fresh random order (a DataLoader with shuffle=True)."""
    perm = idx[torch.randperm(idx.numel(), device=idx.device, generator=gen)]
    return list(perm.split(batch_size))


def sample_batch(idx, batch_size, gen):
    """`batch_size` distinct indices: what next(iter(loader)) on a fresh shuffled loader gives."""
    return idx[torch.randperm(idx.numel(), device=idx.device, generator=gen)[:batch_size]]


def train_batch(data, idx, mode, gen, cutout=0):
    """Augmented images and labels of a global batch; under torchrun this rank's share. Every
    rank draws the whole batch's augmentation from the one generator, so all stay in step."""
    part = distributed.share(idx.numel())
    x = mode.input(data.prepare(data.train_x[idx], True, cutout_length=cutout, gen=gen))
    return x[part], data.train_y[idx][part]


def logits_of(out):
    """Eval networks return (logits, aux); supernets return logits."""
    return out[0] if isinstance(out, tuple) else out


class Meter:
    """Sample-weighted running accuracy (%) and loss; top-5 accuracy too when asked."""

    def __init__(self, top5=False):
        self.n, self.correct, self.loss = 0, 0.0, 0.0
        self.top5, self.correct5 = top5, 0.0

    def update(self, logits, y, loss):
        b = y.numel()
        self.n += b
        self.correct += (logits.argmax(1) == y).sum()
        self.loss += loss.detach() * b
        if self.top5:
            k = min(5, logits.size(1))
            self.correct5 += (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()

    def result(self, prefix):
        """Over every rank's samples under torchrun (a collective: all ranks call it)."""
        n, correct, loss, correct5 = distributed.all_sum(
            [self.n, float(self.correct), float(self.loss), float(self.correct5)])
        n = max(n, 1)
        out = {f"{prefix}_acc": correct * 100.0 / n, f"{prefix}_loss": loss / n}
        if self.top5:
            out[f"{prefix}_top5_acc"] = correct5 * 100.0 / n
        return out


@torch.no_grad()
def evaluate(net, data, x, y, batch_size=256, top5=False, mode=None):
    """Accuracy and loss over (x, y) uint8 images, BN in eval mode; under torchrun each rank
    evaluates its share and the result is over all of them. mode: the run's precision
    switches (None, for a call outside a run: resolved for the net's device)."""
    part = distributed.share(x.size(0))
    x, y = x[part], y[part]
    mode = mode or precision(device_of(net))
    return evaluate_batches(net, ((mode.input(data.prepare(x[i:i + batch_size], train=False)),
                                   y[i:i + batch_size]) for i in range(0, x.size(0), batch_size)),
                            top5, mode)


@torch.no_grad()
def evaluate_batches(net, batches, top5=False, mode=None):
    """`evaluate` over this rank's (input, label) batches, already on the device."""
    net = distributed.unwrapped(net)  # DDP's forward is for training steps only
    mode = mode or precision(device_of(net))
    was = net.training
    net.eval()
    meter = Meter(top5)
    for xb, yb in batches:
        with mode.autocast():
            logits = logits_of(net(xb))
        meter.update(logits, yb, F.cross_entropy(logits, yb))
    net.train(was)
    return meter.result("eval")


def test_metrics(net, data, mode, top5=False):
    """`evaluate` over the test split, in-memory or streamed (runner/data/imagenet.py)."""
    if getattr(data, "streamed", False):
        return evaluate_batches(net, data.test_batches(256, mode), top5, mode)
    return evaluate(net, data, data.test_x, data.test_y, top5=top5, mode=mode)


def valid_accuracy(net, data, valid_idx, mode=None):
    """Eval-mode accuracy (%) on the alpha half of the train split (`valid_idx`)."""
    return evaluate(net, data, data.train_x[valid_idx], data.train_y[valid_idx],
                    mode=mode)["eval_acc"]
