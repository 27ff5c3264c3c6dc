"""DARTS: how weights and alphas are updated each search step.

`Darts` is the base method: first order by default, second order with `unrolled=True`.
SDARTS (sdarts.py) and SGAS (sgas.py) subclass it; the package registers all three with gin
(`run.method = @Darts | @Sdarts | @Sgas`).
"""
import gin
import torch

from runner.training import distributed
from runner.methods.second_order import unrolled_alpha_grad


@gin.configurable
class Darts:
    """DARTS: Adam step on alpha from a valid batch, then SGD on weights.

    `update_alphas=False` is fix-alpha (`--method blank`): alpha stays at its initial values.
    `unrolled=True` is second-order DARTS (quark0/darts cnn/architect.py); darts-pt itself
    trains every supernet first order (nasbench201/architect_ig.py).
    """

    def __init__(self, arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3,
                 update_alphas=True, unrolled=False):
        self.arch_lr, self.arch_betas, self.arch_wd = arch_lr, tuple(arch_betas), arch_weight_decay
        self.update_alphas, self.unrolled = update_alphas, unrolled
        self.arch_opt = None

    @property
    def name(self):
        """The `method` tag: the paper's name of the method."""
        if not self.update_alphas:
            return "fix_alpha"  # darts-pt calls it "blank"
        return "darts_2nd" if self.unrolled else "darts"

    def setup(self, net):
        """One Adam over the alphas of both cell types, as darts-pt's Architect."""
        self.arch_opt = torch.optim.Adam([net.alphas], lr=self.arch_lr, betas=self.arch_betas,
                                         weight_decay=self.arch_wd)

    def state_dict(self):
        return {"arch_opt": self.arch_opt.state_dict()}

    def load_state_dict(self, state):
        self.arch_opt.load_state_dict(state["arch_opt"])

    # hooks the loops call; DARTS needs none of them (SDARTS and SGAS do)
    def batch_size(self, epoch, batch_size):
        """Search batch size for `epoch`."""
        return batch_size

    def begin_epoch(self, net, epoch, epochs, phase):
        """Called before each epoch; phase is 'search' or 'tune' (PT fine-tuning)."""

    def end_epoch(self, net, epoch, phase):
        """Called after each epoch's training, before its metrics."""

    def arch_epoch(self, net, loop, epoch):
        """Called at the start of each search epoch with the loop (data, generator): a method
        that moves alpha once per epoch does it here (Shapley-NAS)."""

    def arch_step(self, net, w_opt, train, valid):
        """Alpha update on the valid batch (first order: no weight gradients computed)."""
        if not self.update_alphas:
            return
        self.arch_opt.zero_grad(set_to_none=True)
        if self.unrolled:  # g_alpha - eta * (finite-difference Hessian-vector product)
            # in float32 even under bf16 autocast: a finite difference drowns in bf16 rounding
            with torch.autocast(net.alphas.device.type, enabled=False):
                net.alphas.grad = unrolled_alpha_grad(net, w_opt, train, valid)
        else:  # only alpha's gradient: the weight grads the reference fills here are zeroed
            # unread, and skipping them (mostly depthwise grad_weight) is bit-identical (test_perf)
            distributed.mean_loss(net(valid[0]), valid[1]).backward(inputs=[net.alphas])
            distributed.average_grads([net.alphas])  # torchrun: the global batch's, every rank
        self.arch_opt.step()

    def mixing(self, net, train):
        """Mixing weights for the weight step (SDARTS perturbs them).

        Detached: the step updates weights only, and the alpha gradient the reference fills
        here is zeroed unread by the next alpha step; skipping it is bit-identical (test_perf).
        """
        return net.mixing_weights().detach()

    def step(self, net, w_opt, train, valid, grad_clip):
        """One search step: alpha step, then weight step. Returns (logits, loss); under torchrun
        the batches are this rank's shares and the loss is `distributed.mean_loss`'s."""
        xt, yt = train
        w_opt.zero_grad(set_to_none=True)
        self.arch_step(net, w_opt, train, valid)
        w_opt.zero_grad(set_to_none=True)
        logits = net(xt, weights=self.mixing(net, train))
        loss = distributed.mean_loss(logits, yt)
        loss.backward()
        distributed.average_grads(net.weights())
        torch.nn.utils.clip_grad_norm_(net.weights(), grad_clip)
        w_opt.step()
        return logits.detach(), loss.detach()

