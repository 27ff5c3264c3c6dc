"""Train-time augmentation on batched tensors, on the data's device.

`draw` takes every random number of a batch (crop offsets, flips, cutout centres, in that
order) and `apply` uses them; `prepare` is the two in a row. Batched PT scoring draws the
parameters of several passes first and applies them later (runner/criteria.py).
"""
import torch
import torch.nn.functional as F


def random_crop(x, pad, gen):
    """torchvision RandomCrop(size, padding=pad) per sample: zero-pad, then crop at a random offset."""
    if pad == 0:
        return x
    i, j = _offsets(x.size(0), pad, x.device, gen)
    return crop_at(F.pad(x, (pad,) * 4), i, j, x.size(2), x.size(3))


def _offsets(n, pad, device, gen):
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


def _flips(n, device, gen):
    return torch.rand(n, device=device, generator=gen) < 0.5


def flip_where(x, flip):
    """Horizontal flip of the samples where `flip` is True."""
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_flip(x, gen):
    """Horizontal flip of each sample with probability 1/2."""
    return flip_where(x, _flips(x.size(0), x.device, gen))


def _centres(n, H, W, device, gen):
    cy = torch.randint(0, H, (n,), device=device, generator=gen)
    cx = torch.randint(0, W, (n,), device=device, generator=gen)
    return cy, cx


def cutout(x, length, gen):
    """Zero a length x length square (clipped at the borders) at a uniform centre."""
    cy, cx = _centres(x.size(0), x.size(2), x.size(3), x.device, gen)
    return apply_cutout(x, cy, cx, length)


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
        p["crop"] = _offsets(n, pad, device, gen)
    if flip:
        p["flip"] = _flips(n, device, gen)
    if cutout_length:
        p["cutout"] = _centres(n, shape[2], shape[3], device, gen)
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
