"""Second-order DARTS hypergradient (quark0/darts `cnn/architect.py`).

d/d alpha L_val(w', alpha) with w' = w - eta * (mu * m + grad_w L_train(w, alpha) + lambda * w),
the Hessian term by a central finite difference around w.
"""
import torch

from runner.training import distributed

R = 0.01  # eps = R / ||v||_2 (quark0/darts _hessian_vector_product)


def _loss(net, batch):
    x, y = batch
    return distributed.mean_loss(net(x), y)


def _grads(loss, params):
    """Gradients of `loss`; zeros for parameters it does not reach (inactive ops). Under
    torchrun each is the mean over ranks: every rank takes the same virtual step."""
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return [distributed.average(torch.zeros_like(p) if g is None else g)
            for p, g in zip(params, gs)]


def _set(params, values):
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def virtual_step(net, w_opt, train):
    """w' for every weight the optimizer holds, with its current lr, momentum buffer and wd.

    Returns (params, w', eta); eta is the lr of the first group (the search uses one group).
    """
    params = [p for group in w_opt.param_groups for p in group["params"]]
    grads, new, i = _grads(_loss(net, train), params), [], 0
    for group in w_opt.param_groups:
        for p in group["params"]:
            d = grads[i] + group["weight_decay"] * p.detach()
            m = w_opt.state.get(p, {}).get("momentum_buffer")
            if m is not None:  # no buffer yet: m = 0, as quark0/darts _compute_unrolled_model
                d = d + group["momentum"] * m
            new.append(p.detach() - group["lr"] * d)
            i += 1
    return params, new, w_opt.param_groups[0]["lr"]


class _KeptBuffers:
    """BN running stats untouched by the forward at w' (the reference runs it on a copy)."""

    def __init__(self, net):
        self.net = net

    def __enter__(self):
        self.saved = [b.detach().clone() for b in self.net.buffers()]

    def __exit__(self, *exc):
        _set(list(self.net.buffers()), self.saved)


def hessian_vector(net, params, v, train, r=R):
    """(grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps), eps = r/||v||."""
    norm = torch.cat([x.flatten() for x in v]).norm()
    if norm == 0:
        return torch.zeros_like(net.alphas)
    eps = r / norm
    w = [p.detach().clone() for p in params]
    _set(params, [p + eps * d for p, d in zip(w, v)])
    g_plus = _grads(_loss(net, train), [net.alphas])[0]
    _set(params, [p - eps * d for p, d in zip(w, v)])
    g_minus = _grads(_loss(net, train), [net.alphas])[0]
    _set(params, w)
    return (g_plus - g_minus) / (2 * eps)


def unrolled_alpha_grad(net, w_opt, train, valid, r=R):
    """The alpha gradient g_alpha - eta * h, as quark0/darts; the weights are left unchanged."""
    params, w_virtual, eta = virtual_step(net, w_opt, train)
    w = [p.detach().clone() for p in params]
    _set(params, w_virtual)
    with _KeptBuffers(net):
        grads = _grads(_loss(net, valid), [net.alphas] + params)
    _set(params, w)
    g_alpha, v = grads[0], grads[1:]
    return (g_alpha - eta * hessian_vector(net, params, v, train, r)).detach()
