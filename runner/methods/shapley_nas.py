"""Shapley-NAS (Xiao et al., CVPR 2022; the authors' `train_search.py`: `shap_estimation`,
`change_alpha`): alphas moved by the Shapley values of the operations instead of gradients.

The weights train as in DARTS (softmax(alpha) mixing). No alpha step is taken during the
`warmup_epochs`; at the start of every later search epoch the Shapley value of every op of
every edge of both cell types (runner/selection/shapley.py: `samples` removal orders, each on
a fresh batch of `batch_size` images of the alpha half, truncated at `threshold`) is
normalised per cell type (z-score, ddof 1), accumulated with `momentum` (buffer = m * buffer
+ (1 - m) * normalised; the buffer starts at 1e-3 x a normal draw, as theirs) and added to
the alphas times `step_size`. The architecture is then the usual argmax parse
(gin/selectors/magnitude.gin).
"""
import gin
import torch

from runner.methods.darts import Darts
from runner.selection.proxies import bn_mode
from runner.selection.shapley import batch_values, estimate, random_orders, score
from runner.training import distributed


def normalised(values):
    """(v - mean) / std over one cell type's [edges, K] values (std with ddof 1, as torch).
    Scores all equal (seen on small batches, where no removal changes the accuracy) rank
    nothing: zeros, where the authors' division by a zero std would make every alpha NaN."""
    std = values.std()
    if not std > 0:
        return torch.zeros_like(values)
    return (values - values.mean()) / std


def momentum_step(alphas, buffer, values, momentum, step_size):
    """The alpha update of one Shapley epoch; returns the new buffer. values: Shapley scores
    [types, edges, K]."""
    new = torch.stack([normalised(v) for v in values])
    buffer = momentum * buffer + (1 - momentum) * new
    alphas.add_(step_size * buffer)
    return buffer


@gin.configurable
class ShapleyNas(Darts):
    """Shapley-NAS: see the module docstring; bn: BatchNorm while estimating ('train': batch
    statistics; the authors' mode follows whichever epoch ran last)."""

    name = "shapley_nas"

    def __init__(self, warmup_epochs=25, samples=10, threshold=0.5, batch_size=1024,
                 momentum=0.8, step_size=0.1, bn="train"):
        super().__init__()
        self.warmup, self.samples, self.threshold = warmup_epochs, samples, threshold
        self.estimate_batch, self.momentum, self.step_size, self.bn = batch_size, momentum, \
            step_size, bn
        self.buffer = None

    def setup(self, net):
        if distributed.ranks().world > 1:  # each rank would score its own share of a batch
            raise ValueError("Shapley-NAS runs in one process, not under torchrun")
        super().setup(net)

    def state_dict(self):
        return dict(super().state_dict(), buffer=self.buffer)

    def load_state_dict(self, state):
        super().load_state_dict(state)  # a DARTS supernet has no buffer: start afresh
        self.buffer = state.get("buffer")

    def arch_step(self, net, w_opt, train, valid):
        """No gradient step on alpha: the alphas move once per epoch (`arch_epoch`)."""

    def players(self, net):
        """(cell type, edge, op) of every op of every edge of both cell types."""
        return [(cell, e, k) for cell in net.space.cell.types
                for e, names in enumerate(net.space.ops(cell)) for k in range(len(names))]

    def shapley_values(self, net, loop):
        """[types, edges, K] Shapley scores (mean - std over the orders)."""
        players = self.players(net)
        orders = random_orders(len(players), self.samples, loop.gen)
        with torch.no_grad(), bn_mode(net, self.bn):
            table = estimate(batch_values(net, loop, players, self.estimate_batch), orders,
                             self.threshold)
        values = torch.zeros(net.alphas.shape, dtype=torch.float64)
        for (cell, e, k), s in zip(players, score(table)):
            values[net.space.cell.type_index(cell), e, k] = s
        return values

    def arch_epoch(self, net, loop, epoch):
        """At the start of each search epoch after the warm-up: one Shapley alpha update."""
        if epoch < self.warmup:
            return
        if self.buffer is None:
            self.buffer = 1e-3 * torch.randn(net.alphas.shape, generator=loop.gen,
                                             device=loop.gen.device).double().cpu()
        values = self.shapley_values(net, loop)
        with torch.no_grad():
            step = torch.zeros_like(self.buffer)
            self.buffer = momentum_step(step, self.buffer, values, self.momentum,
                                        self.step_size)
            net.alphas.add_(step.to(net.alphas.dtype).to(net.alphas.device))
