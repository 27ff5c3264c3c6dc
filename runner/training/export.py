"""The retrained network with its preprocessing, as the module the MLflow Model logged after
each retrain exports (tracking/mlflow_tracker.py `log_model`: torch.export, MLflow's 'pt2'
format): raw uint8 images in, class scores out. The exported program loads with torch alone:
no class of this project is pickled into it."""
import copy

import torch
from torch import nn


def resize(x, size):
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), bilinear with antialiasing. No branch on
    the size (an export keeps H and W dynamic): at `size` it is the identity, bit for bit. The
    folder dataset resizes its images with it, so the model sees the runner's numbers."""
    y = nn.functional.interpolate(x.float(), size=[size, size], mode="bilinear",
                                  align_corners=False, antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8)


class Logits(nn.Module):
    """The network's class scores alone (a retrain network returns (logits, auxiliary))."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out


class Predictor(nn.Module):
    """uint8 images (N, H, W, C), any H and W, -> class scores (N, classes): resized to the
    training size (`resize`), scaled to [0, 1] and normalised with the training statistics."""

    def __init__(self, logits, mean, std, size: int):
        super().__init__()
        self.logits, self.size = logits, size
        self.register_buffer("mean", mean.detach().float().cpu().view(1, -1, 1, 1))
        self.register_buffer("std", std.detach().float().cpu().view(1, -1, 1, 1))

    def forward(self, images):
        x = resize(images.permute(0, 3, 1, 2), self.size).float() / 255.0
        return self.logits((x - self.mean) / self.std)


def test_images(data, n):
    """The first `n` test images as uint8 (n, H, W, C) on the CPU (what a user passes)."""
    if getattr(data, "streamed", False):
        x = torch.stack([data.test[i][0] for i in range(min(n, len(data.test)))])
    else:
        x = data.test_x[:n]
        x = x.load() if hasattr(x, "load") else x
    return x.cpu().permute(0, 2, 3, 1).contiguous().numpy()


def predictor(net, data):
    """The Predictor of a copy of `net` (on the CPU, in eval mode, float32, no gradients) for
    the data's image size and statistics."""
    net = copy.deepcopy(net).float().cpu().eval()
    net = net.to(memory_format=torch.contiguous_format).requires_grad_(False)
    return Predictor(Logits(net), data.mean, data.std, data.image_shape[-1]).eval()


def info(data, genotype):
    """What sits beside the model: classes, genotype, input layout, statistics."""
    num_classes = data.num_classes
    classes = list(getattr(data, "classes", None) or [str(i) for i in range(num_classes)])
    return {"classes": classes, "genotype": str(genotype),
            "input": "uint8 images (N, H, W, C), any H and W (resized inside to "
                     f"{data.image_shape[-1]} x {data.image_shape[-1]}), C = "
                     f"{data.image_shape[0]}",
            "output": f"class scores (N, {num_classes}), logits in the order of `classes`",
            "mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist()}

