"""Train-time augmentation on batched tensors, on the data's device.

`draw` takes every random number of a batch (crop offsets, flips, cutout centres, in that
order) and `apply` uses them; `prepare` is the two in a row. Batched PT scoring draws the
parameters of several passes first and applies them later (runner/selection/criteria.py).
"""
import torch
import torch.nn.functional as F


def offsets(n, pad, device, gen):
    """Per-sample crop offsets (rows, then columns) into a batch padded by `pad`."""
    i = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=gen)
    j = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=gen)
    return i, j


def crop_at(xp, i, j, H, W):
    """Crop an HxW window at per-sample offsets (i, j) out of a padded batch."""
    rows = (i[:, None] + torch.arange(H, device=xp.device))[:, None, :, None]
    cols = (j[:, None] + torch.arange(W, device=xp.device))[:, None, None, :]
    b = torch.arange(xp.size(0), device=xp.device)[:, None, None, None]
    c = torch.arange(xp.size(1), device=xp.device)[None, :, None, None]
    return xp[b, c, rows, cols]


def flips(n, device, gen):
    """Which samples a horizontal flip with probability 1/2 turns."""
    return torch.rand(n, device=device, generator=gen) < 0.5


def flip_where(x, flip):
    """Horizontal flip of the samples where `flip` is True."""
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def centres(n, H, W, device, gen):
    """Uniform cutout centres (row, column) in an HxW image."""
    cy = torch.randint(0, H, (n,), device=device, generator=gen)
    cx = torch.randint(0, W, (n,), device=device, generator=gen)
    return cy, cx


def apply_cutout(x, cy, cx, length):
    ys = torch.arange(x.size(2), device=x.device)[None, :, None]
    xs = torch.arange(x.size(3), device=x.device)[None, None, :]
    half = length // 2
    inside = ((ys >= (cy - half)[:, None, None]) & (ys < (cy + half)[:, None, None])
              & (xs >= (cx - half)[:, None, None]) & (xs < (cx + half)[:, None, None]))
    return x * (~inside)[:, None].to(x.dtype)


def draw(shape, device, pad=0, flip=False, cutout_length=0, gen=None):
    """The random numbers `prepare` uses for a batch of `shape`, drawn in its order."""
    n, p = shape[0], {}
    if pad:
        p["crop"] = offsets(n, pad, device, gen)
    if flip:
        p["flip"] = flips(n, device, gen)
    if cutout_length:
        p["cutout"] = centres(n, shape[2], shape[3], device, gen)
    return p


def apply(images, mean, std, params, pad=0, cutout_length=0):
    """uint8 NCHW -> normalised float with drawn parameters: crop, flip, normalise, cutout."""
    x = images.float().div_(255.0)
    if "crop" in params:
        x = crop_at(F.pad(x, (pad,) * 4), *params["crop"], x.size(2), x.size(3))
    if "flip" in params:
        x = flip_where(x, params["flip"])
    x = (x - mean) / std
    if "cutout" in params:
        x = apply_cutout(x, *params["cutout"], cutout_length)
    return x


def prepare(images, mean, std, pad=0, flip=False, cutout_length=0, gen=None):
    """uint8 NCHW -> normalised float, with crop/flip before and cutout after normalising."""
    params = draw(images.shape, images.device, pad, flip, cutout_length, gen)
    return apply(images, mean, std, params, pad, cutout_length)
