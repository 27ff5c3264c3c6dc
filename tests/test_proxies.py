"""Zero-cost proxies against values computed by hand on tiny networks, and what they leave
behind (mode, weights, dtype, gradients)."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from runner.selection import proxies


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def hand_kernel(codes):
    """The authors' kernel of 0/1 codes [B, D], written out: matches in both directions."""
    c = codes.double()
    return c @ c.T + (1 - c) @ (1 - c).T


def test_naswot_is_the_log_determinant_of_the_binary_code_kernel():
    net, x = mlp(), torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    codes = (net[0](x) > 0)
    want = np.linalg.slogdet(hand_kernel(codes).numpy())[1]
    assert np.isfinite(want)
    assert proxies.naswot(net, x) == pytest.approx(want, rel=1e-12)


def test_naswot_counts_a_shared_input_once_per_relu():
    class Twice(nn.Module):  # (a class name with "ReLU" in it would be read too)
        def __init__(self):
            super().__init__()
            self.lin, self.a, self.b = nn.Linear(4, 16), nn.ReLU(), nn.ReLU()

        def forward(self, x):
            h = self.lin(x)
            return self.a(h) + self.b(h)

    torch.manual_seed(0)
    net, x = Twice(), torch.randn(6, 4)
    one = np.linalg.slogdet(hand_kernel(net.lin(x) > 0).numpy())[1]
    assert np.isfinite(one)
    # K doubles: log|2K| = B log 2 + log|K|
    assert proxies.naswot(net, x) == pytest.approx(6 * np.log(2) + one, rel=1e-12)


def test_naswot_module_rule_name_counts_blocks_named_relu():
    class ReLUBlock(nn.Sequential):  # the authors' rule also reads blocks named so
        pass

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), ReLUBlock(nn.ReLU(), nn.Linear(5, 3)))
    x = torch.randn(6, 4)
    one = np.linalg.slogdet(hand_kernel(net[0](x) > 0).numpy())[1]
    assert proxies.naswot(net, x, match="relu") == pytest.approx(one, rel=1e-12)
    assert proxies.naswot(net, x, match="name") == pytest.approx(6 * np.log(2) + one,
                                                                  rel=1e-12)


def test_naswot_reads_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU())
    with torch.no_grad():
        net[1].running_mean.fill_(0.3)
    x = torch.randn(6, 4)
    codes = (net[1].eval()(net[0](x)) > 0)
    net.train()
    assert proxies.naswot(net, x) == pytest.approx(
        np.linalg.slogdet(hand_kernel(codes).numpy())[1], rel=1e-12)
    assert net.training


def test_synflow_of_a_linear_chain_is_layers_times_the_path_sum():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    before = [p.detach().clone() for p in net.parameters()]
    w1, w2 = (p.detach().abs().double() for p in net.parameters())
    R = float(torch.ones(2).double() @ (w2 @ w1) @ torch.ones(3).double())
    # every weight's |theta dR/dtheta| sums to R per layer: sum_l R
    assert proxies.synflow(net, torch.randn(5, 3)) == pytest.approx(2 * R, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert next(net.parameters()).dtype == torch.float32
    assert all(p.grad is None for p in net.parameters())


def single_linear(seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    a = lin(x).detach()
    g = (F.softmax(a, 1) - F.one_hot(y, 3).double().float()) / len(y)  # dL/dlogits, mean CE
    return lin, x, y, a, g


def test_grad_norm_and_snip_of_one_linear_layer():
    lin, x, y, a, g = single_linear()
    grad_w = g.T @ x
    assert proxies.grad_norm(lin, x, y) == pytest.approx(float(grad_w.norm()), rel=1e-5)
    assert proxies.snip(lin, x, y) == pytest.approx(
        float((lin.weight.detach() * grad_w).abs().sum()), rel=1e-5)
    assert lin.weight.grad is None


def test_fisher_of_one_linear_layer():
    lin, x, y, a, g = single_linear(1)
    want = float(0.5 * (a * g).pow(2).mean(0).sum())
    assert proxies.fisher(lin, x, y) == pytest.approx(want, rel=1e-5)


def test_jacob_cov_of_a_relu_network():
    net, x = mlp(2), torch.randn(7, 4, generator=torch.Generator().manual_seed(3))
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: net(v).sum(), xi)
                       for xi in x]).double().numpy()
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    want = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert proxies.jacob_cov(net, x) == pytest.approx(want, rel=1e-6)


def test_an_unknown_proxy_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'nope'; known: naswot"):
        proxies.proxy("nope")
