"""SDARTS-RS and SDARTS-ADV (darts-pt `--method sdarts`, attacker/perturb.py; origin SmoothDARTS).

The weight step runs on perturbed softmax(alpha) probabilities, passed to the supernet as its
mixing weights; alpha itself is never overwritten, so "restore alpha" is implicit. The alpha
step is DARTS' (first order unless `Darts.unrolled`).
"""
import gin
import torch

from runner.training import distributed
from runner.methods.darts import Darts
from spaces.supernet import apply_decisions


def epsilon(epoch, epochs, eps_min=0.03, eps_max=0.3):
    """Search-phase ramp eps_min -> eps_max (as darts-pt): epoch 0 -> 0.03, 49 of 50 -> 0.2946."""
    return eps_min + (eps_max - eps_min) * epoch / epochs


def clip(w):
    """Per row: note the argmax, clamp to [0, 1], an all-zero row gets 1 there, divide by sum."""
    top = w.argmax(-1, keepdim=True)
    w = w.clamp(0.0, 1.0)
    empty = w.sum(-1, keepdim=True) == 0
    w = torch.where(empty, torch.zeros_like(w).scatter(-1, top, 1.0), w)
    return w / w.sum(-1, keepdim=True)


def keep_decisions(net, w):
    """Decided rows one-hot, pruned rows zero, as the decision state says.

    The reference resets them on the next forward; the same rule as the supernet's own
    mixing weights, applied to perturbed probabilities.
    """
    return apply_decisions(w, net.decision)


def uniform_noise(probs, eps):
    """i.i.d. U(-eps, eps) per entry (darts-pt Random_alpha; paper App. A.1.2 says Gaussian)."""
    return (torch.rand_like(probs) * 2 - 1) * eps


def random_smoothing(net, probs, eps):
    """SDARTS-RS: probabilities plus uniform noise, projected back by clip()."""
    return keep_decisions(net, clip(probs + uniform_noise(probs, eps)))


def pgd_linf(net, probs, x, y, eps, steps=7):
    """SDARTS-ADV: L-inf PGD that maximises the train loss over the probabilities.

    As darts-pt's Linf_PGD_alpha: BN in eval mode during the attack; random start; `steps` sign
    steps of 2 eps / steps, each clamped to eps around `probs` and clip()ped; reverted when the
    loss went down.
    """
    def loss(p):
        return distributed.mean_loss(net(x, weights=keep_decisions(net, p)), y)

    was = net.training
    net.eval()
    with torch.no_grad():
        before = distributed.average(loss(probs))  # torchrun: the global batch's loss
        p = clip(probs + uniform_noise(probs, eps))
    for _ in range(steps):
        p.requires_grad_(True)
        g = distributed.average(torch.autograd.grad(loss(p), p)[0])
        with torch.no_grad():
            p = p + (2 * eps / steps) * g.sign()
            p = clip(probs + (p - probs).clamp(-eps, eps))
    with torch.no_grad():
        after = distributed.average(loss(p))
    net.train(was)
    return keep_decisions(net, probs if before > after else p)


@gin.configurable
class Sdarts(Darts):
    """SDARTS: `perturb_alpha` 'random' (SDARTS-RS) or 'pgd_linf' (SDARTS-ADV), the code's flag.

    epsilon ramps eps_min -> eps_max over the search epochs and is eps_tune during PT
    fine-tuning (darts-pt sota/cnn/projection.py, pt_project).
    """

    def __init__(self, perturb_alpha="random", eps_min=0.03, eps_max=0.3, eps_tune=0.3,
                 pgd_steps=7):
        super().__init__()
        if perturb_alpha not in ("random", "pgd_linf"):
            raise ValueError(f"Sdarts.perturb_alpha must be 'random' or 'pgd_linf', "
                             f"not {perturb_alpha!r}")
        self.perturb_alpha, self.pgd_steps = perturb_alpha, pgd_steps
        self.eps_min, self.eps_max, self.eps_tune = eps_min, eps_max, eps_tune
        self.epsilon = eps_min

    @property
    def name(self):
        return "sdarts_rs" if self.perturb_alpha == "random" else "sdarts_adv"

    def state_dict(self):
        return dict(super().state_dict(), epsilon=self.epsilon)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.epsilon = float(state.get("epsilon", self.eps_min))  # a DARTS supernet has none

    def begin_epoch(self, net, epoch, epochs, phase):
        self.epsilon = (epsilon(epoch, epochs, self.eps_min, self.eps_max) if phase == "search"
                        else self.eps_tune)

    def mixing(self, net, train):
        """Perturbed probabilities of the current (projected) mixing weights."""
        probs = net.mixing_weights().detach()
        if self.perturb_alpha == "random":
            return random_smoothing(net, probs, self.epsilon)
        return pgd_linf(net, probs, *train, self.epsilon, self.pgd_steps)
