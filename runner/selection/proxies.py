"""Zero-cost proxies: a score of a network at one batch, no training (Zero-Cost-PT's scores).

Each proxy is `proxy(net, x, y, forward=None) -> float`: `net` is the module whose layers and
parameters the proxy reads, `forward(x)` the logits (default `net(x)`; a masked supernet passes
its mixing weights here). Every proxy leaves the network as it found it: train/eval mode,
parameters, dtype; gradients zeroed.

- naswot: log|K| of the binary-code kernel over the ReLU inputs (Mellor et al., ICML 2021;
  Zero-Cost-PT's default, metric 'jacob' in the authors' code).
- synflow: sum |theta * dR/dtheta| with R the output sum of the |theta| network on an all-ones
  input (Tanaka et al., NeurIPS 2020).
- grad_norm: sum of the L2 norms of the weight gradients of the batch loss (Abdelfattah et al.,
  ICLR 2021).
- snip: sum |theta * dL/dtheta| (Lee et al., ICLR 2019, as a network score in Abdelfattah et al.).
- fisher: per channel 0.5 * mean over the batch of (sum over positions of act * dL/dact)^2, summed
  over conv and linear outputs (Theis et al. 2018, as in Abdelfattah et al.).
- jacob_cov: -sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation of the
  input Jacobians, k = 1e-5 (Mellor et al., v1 of their paper).
"""
import weakref
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


RELU_MATCH = ("name", "relu")


def is_relu(module, match="name"):
    """Whether the NASWOT kernel reads this module's input. 'name': its type name contains
    'ReLU' (the authors' rule, which also takes blocks named so, e.g. ReLUConvBN, whose input is
    their first ReLU's: such an input counts twice); 'relu': ReLU activations only (Mellor et
    al.)."""
    if match == "relu":
        return isinstance(module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU))
    return "ReLU" in type(module).__name__


def relu_modules(net, match="name"):
    return [m for m in net.modules() if is_relu(m, match)]


@contextmanager
def bn_mode(net, mode):
    """`net` in eval ('eval') or train ('train') mode for the body, its own mode after; None
    leaves it as it is."""
    was = net.training
    switch = mode is not None and was != (mode == "train")  # train() walks every module
    if switch:
        net.train(mode == "train")
    try:
        yield
    finally:
        if switch:
            net.train(was)


@contextmanager
def hooks(modules, fn, pre=False):
    """`fn` as forward (or forward-pre) hook on each module, removed after the body."""
    handles = [m.register_forward_pre_hook(fn) if pre else m.register_forward_hook(fn)
               for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class BinaryKernel:
    """K = sum over ReLU inputs of c c^T + (1 - c)(1 - c)^T, c the 0/1 codes (input > 0) per
    sample; the authors' kernel, accumulated as 2 C C^T + D - r_i - r_j (r: row sums, D: code
    length): one product per ReLU instead of two.

    A tensor that several ReLUs read (every conv op of an edge reads the edge's input, every
    edge leaving a node reads that node) is coded once and counted once per ReLU, which keeps
    the authors' sum. Products of 0/1 codes are exact in float32; the sum is kept in float64.
    """

    def __init__(self, batch, device):
        self.gram = torch.zeros(batch, batch, dtype=torch.float64, device=device)
        self.rows = torch.zeros(batch, dtype=torch.float64, device=device)
        self.dims = 0
        self.paused = False  # set while a hook runs an op on the side (zero_cost.py)
        self._coded = {}  # id(input) -> (weak ref, gram, rows, dims), while the input lives

    def read(self, module, inputs, output=None):
        if self.paused:
            return
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        hit = self._coded.get(id(x))
        if hit is None or hit[0]() is not x:
            key = id(x)
            ref = weakref.ref(x, lambda _, k=key: self._coded.pop(k, None))
            c = (_rows(x.detach()) > 0).to(torch.float32)
            gram = c @ c.T
            # the row sums of 0/1 codes are the Gram matrix's diagonal
            hit = (ref, gram.double(), torch.diagonal(gram).double(), c.shape[1])
            self._coded[key] = hit
        self.gram += hit[1]
        self.rows += hit[2]
        self.dims += hit[3]

    def add_constant(self, dims):
        """A ReLU whose input is the same for every sample adds `dims` to every entry."""
        self.dims += dims

    def matrix(self):
        return 2 * self.gram + self.dims - self.rows[:, None] - self.rows[None, :]


def _rows(x):
    """One row per sample, features in memory order (a kernel of codes does not depend on
    their order): a channels_last batch flattens without a copy."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        x = x.permute(0, 2, 3, 1)
    return x.reshape(x.shape[0], -1)


def logdet(K):
    """log|det K| in float64 (the authors: numpy slogdet of their kernel)."""
    return float(np.linalg.slogdet(K.detach().cpu().double().numpy())[1])


@torch.no_grad()
def naswot(net, x, y=None, forward=None, bn="eval", match="name", constant=None):
    """NASWOT score: log|K| of the binary-code kernel of the ReLU inputs at batch `x`.

    bn: 'eval' (the authors' Jocab_Score and post-validation) or 'train'. match: which modules
    count as ReLUs (`is_relu`). constant(kernel): a context manager that adds what the forward
    pass leaves out (runner/selection/zero_cost.py, `zeroed_ops`).
    """
    if match not in RELU_MATCH:
        raise ValueError(f"naswot match must be one of {RELU_MATCH}, not {match!r}")
    kernel = BinaryKernel(x.shape[0], x.device)
    kernel.match = match
    extra = constant(kernel) if constant is not None else _nothing()
    with bn_mode(net, bn), hooks(relu_modules(net, match), kernel.read), extra:
        (forward or net)(x)
    return logdet(kernel.matrix())


@contextmanager
def _nothing():
    yield


def weight_layers(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


@contextmanager
def _clean_grads(net):
    net.zero_grad(set_to_none=True)
    try:
        yield
    finally:
        net.zero_grad(set_to_none=True)


def synflow(net, x, y=None, forward=None, bn="eval"):
    """SynFlow: the network with |theta| in float64 on one all-ones sample; sum over conv and
    linear weights of |theta * dR/dtheta|, R the sum of the outputs. Signs and dtype restored."""
    params = [p for p in net.parameters()]
    dtype = params[0].dtype
    signs = [torch.sign(p.detach()) for p in params]
    with torch.no_grad():
        for p in params:
            p.abs_()
    net.double()
    try:
        with bn_mode(net, bn), _clean_grads(net):
            ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
            _logits((forward or net)(ones)).sum().backward()
            score = sum(float((m.weight * m.weight.grad).detach().abs().sum())
                        for m in weight_layers(net) if m.weight.grad is not None)
    finally:
        net.to(dtype)
        with torch.no_grad():
            for p, s in zip(params, signs):
                p.mul_(s)
    return score


def _loss_grads(net, x, y, forward):
    loss = F.cross_entropy(_logits((forward or net)(x)), y)
    loss.backward()


def grad_norm(net, x, y, forward=None, bn="train"):
    """Sum over conv and linear layers of the L2 norm of the weight gradient of the loss."""
    with bn_mode(net, bn), _clean_grads(net):
        _loss_grads(net, x, y, forward)
        return sum(float(m.weight.grad.norm()) for m in weight_layers(net)
                   if m.weight.grad is not None)


def snip(net, x, y, forward=None, bn="train"):
    """SNIP saliency summed: sum over conv and linear weights of |theta * dL/dtheta|."""
    with bn_mode(net, bn), _clean_grads(net):
        _loss_grads(net, x, y, forward)
        return sum(float((m.weight * m.weight.grad).detach().abs().sum())
                   for m in weight_layers(net)
                   if m.weight.grad is not None)


def fisher(net, x, y, forward=None, bn="train"):
    """Fisher: for every conv and linear output a, per channel 0.5 * mean over samples of
    (sum over positions of a * dL/da)^2, summed."""
    outs = []

    def keep(module, inputs, out):
        if out.requires_grad:
            out.retain_grad()
            outs.append(out)

    with bn_mode(net, bn), _clean_grads(net), hooks(weight_layers(net), keep):
        _loss_grads(net, x, y, forward)
    score = 0.0
    for a in outs:
        if a.grad is None:
            continue
        g = (a * a.grad).detach()
        g = g.sum(dim=tuple(range(2, g.dim()))) if g.dim() > 2 else g
        score += float(0.5 * g.pow(2).mean(0).sum())
    return score


def jacob_cov(net, x, y=None, forward=None, bn="train", k=1e-5):
    """-sum(log(v + k) + 1/(v + k)), v the eigenvalues of the correlation matrix of the
    per-sample input Jacobians of the output sum."""
    x = x.detach().clone().requires_grad_(True)
    with bn_mode(net, bn), _clean_grads(net):
        _logits((forward or net)(x)).sum().backward()
    jac = x.grad.reshape(x.shape[0], -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jac)
    if not np.isfinite(corr).all():  # a sample with a constant Jacobian: no score
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


BN_MODE = {"naswot": "eval", "synflow": "eval", "grad_norm": "train", "snip": "train",
           "fisher": "train", "jacob_cov": "train"}  # each proxy's default `bn`

PROXIES = {"naswot": naswot, "synflow": synflow, "grad_norm": grad_norm, "snip": snip,
           "fisher": fisher, "jacob_cov": jacob_cov}


def proxy(name):
    """The proxy called `name` (a setting: one-line error naming the known ones)."""
    if name not in PROXIES:
        raise ValueError(f"unknown zero-cost proxy {name!r}; known: {', '.join(PROXIES)}")
    return PROXIES[name]
