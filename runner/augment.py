"""Train-time augmentation on batched tensors, on the data's device (spec §7)."""
import torch
import torch.nn.functional as F


def random_crop(x, pad, gen):
    """torchvision RandomCrop(size, padding=pad) per sample: zero-pad, then crop at a random offset."""
    if pad == 0:
        return x
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=gen)
    j = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=gen)
    return crop_at(xp, i, j, H, W)


def crop_at(xp, i, j, H, W):
    """Crop an HxW window at per-sample offsets (i, j) out of a padded batch."""
    rows = (i[:, None] + torch.arange(H, device=xp.device))[:, None, :, None]
    cols = (j[:, None] + torch.arange(W, device=xp.device))[:, None, None, :]
    b = torch.arange(xp.size(0), device=xp.device)[:, None, None, None]
    c = torch.arange(xp.size(1), device=xp.device)[None, :, None, None]
    return xp[b, c, rows, cols]


def random_flip(x, gen):
    """Horizontal flip of each sample with probability 1/2."""
    flip = torch.rand(x.size(0), device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x, length, gen):
    """Zero a length x length square (clipped at the borders) at a uniform centre (spec §7)."""
    B, _, H, W = x.shape
    cy = torch.randint(0, H, (B,), device=x.device, generator=gen)
    cx = torch.randint(0, W, (B,), device=x.device, generator=gen)
    return apply_cutout(x, cy, cx, length)


def apply_cutout(x, cy, cx, length):
    ys = torch.arange(x.size(2), device=x.device)[None, :, None]
    xs = torch.arange(x.size(3), device=x.device)[None, None, :]
    half = length // 2
    inside = ((ys >= (cy - half)[:, None, None]) & (ys < (cy + half)[:, None, None])
              & (xs >= (cx - half)[:, None, None]) & (xs < (cx + half)[:, None, None]))
    return x * (~inside)[:, None].to(x.dtype)


def prepare(images, mean, std, pad=0, flip=False, cutout_length=0, gen=None):
    """uint8 NCHW -> normalised float, with crop/flip before and cutout after normalising."""
    x = images.float().div_(255.0)
    if pad:
        x = random_crop(x, pad, gen)
    if flip:
        x = random_flip(x, gen)
    x = (x - mean) / std
    if cutout_length:
        x = cutout(x, cutout_length, gen)
    return x
