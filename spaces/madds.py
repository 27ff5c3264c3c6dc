"""Multiply-adds of a network's forward pass, the mobile setting's size measure (DARTS §3.3:
under 600 M at 224x224).

Convention: one multiply-add per weight use of a convolution or linear layer (a conv output
element costs in_channels/groups * kh * kw, a linear output in_features); biases, BN, ReLU,
pooling and the additions between ops are not counted; one image; eval mode, so no
auxiliary head. Counted on the meta device: no memory, no arithmetic.
"""
import torch
import torch.nn as nn


def multiply_adds(build, input_shape=(3, 224, 224)):
    """Multiply-adds of one image through the network `build()` makes (called on the meta
    device); input_shape (C, H, W)."""
    with torch.device("meta"):
        net = build()
    total = [0]

    def conv(m, inputs, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += out[0].numel() * (m.in_channels // m.groups) * k

    def linear(m, inputs, out):
        total[0] += out[0].numel() * m.in_features

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear)
    net.eval()
    with torch.no_grad():
        net(torch.zeros((1,) + tuple(input_shape), device="meta"))
    return total[0]
