"""Supernet training methods: how weights and alphas are updated each step (spec §3)."""
import gin
import torch
import torch.nn.functional as F


@gin.configurable
class Darts:
    """First-order DARTS (spec §3.2): Adam step on alpha from a valid batch, then SGD on weights.

    `update_alphas=False` is fix-alpha (spec §3.5): alpha stays at its initial values.
    """

    name = "darts"

    def __init__(self, arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3,
                 update_alphas=True):
        self.arch_lr, self.arch_betas, self.arch_wd = arch_lr, tuple(arch_betas), arch_weight_decay
        self.update_alphas = update_alphas
        self.arch_opt = None

    def setup(self, net):
        """One Adam over the alphas of both cell types (spec §3.1)."""
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

    def arch_step(self, net, xv, yv):
        """Alpha update on the valid batch; the weight grads it fills are zeroed afterwards."""
        if not self.update_alphas:
            return
        self.arch_opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xv), yv).backward()
        self.arch_opt.step()

    def step(self, net, w_opt, train, valid, grad_clip):
        """One search step (spec §3.1): alpha step, then the weight step. Returns (logits, loss)."""
        xt, yt = train
        w_opt.zero_grad(set_to_none=True)
        self.arch_step(net, *valid)
        w_opt.zero_grad(set_to_none=True)
        logits = net(xt)
        loss = F.cross_entropy(logits, yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.weights(), grad_clip)
        w_opt.step()
        return logits.detach(), loss.detach()
