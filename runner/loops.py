"""Small shared pieces of the training loops: batching, accuracy, evaluation, metrics."""
import torch
import torch.nn.functional as F

from runner.precision import device_of, precision


def shuffled_batches(idx, batch_size, gen):
    """One pass over `idx` in a fresh random order (a DataLoader with shuffle=True)."""
    perm = idx[torch.randperm(idx.numel(), device=idx.device, generator=gen)]
    return list(perm.split(batch_size))


def sample_batch(idx, batch_size, gen):
    """`batch_size` distinct indices: what next(iter(loader)) on a fresh shuffled loader gives."""
    return idx[torch.randperm(idx.numel(), device=idx.device, generator=gen)[:batch_size]]


def logits_of(out):
    """Eval networks return (logits, aux); supernets return logits."""
    return out[0] if isinstance(out, tuple) else out


class Meter:
    """Sample-weighted running accuracy (%) and loss."""

    def __init__(self):
        self.n, self.correct, self.loss = 0, 0.0, 0.0

    def update(self, logits, y, loss):
        b = y.numel()
        self.n += b
        self.correct += (logits.argmax(1) == y).sum()
        self.loss += loss.detach() * b

    def result(self, prefix):
        n = max(self.n, 1)
        return {f"{prefix}_acc": float(self.correct) * 100.0 / n, f"{prefix}_loss": float(self.loss) / n}


@torch.no_grad()
def evaluate(net, data, x, y, batch_size=256):
    """Accuracy and loss over (x, y) uint8 images, BN in eval mode."""
    mode = precision(device_of(net))
    was = net.training
    net.eval()
    meter = Meter()
    for i in range(0, x.size(0), batch_size):
        xb, yb = mode.input(data.prepare(x[i:i + batch_size], train=False)), y[i:i + batch_size]
        with mode.autocast():
            logits = logits_of(net(xb))
        meter.update(logits, yb, F.cross_entropy(logits, yb))
    net.train(was)
    return meter.result("eval")
