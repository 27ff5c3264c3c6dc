"""One augmentation at a time, as torchvision applies them, from the runner's draw primitives:
what tests compare the batched `augment.prepare` against."""
import torch.nn.functional as F

from runner.data import augment


def random_crop(x, pad, gen):
    """torchvision RandomCrop(size, padding=pad) per sample: zero-pad, crop at a random offset."""
    if pad == 0:
        return x
    i, j = augment.offsets(x.size(0), pad, x.device, gen)
    return augment.crop_at(F.pad(x, (pad,) * 4), i, j, x.size(2), x.size(3))


def random_flip(x, gen):
    """Horizontal flip of each sample with probability 1/2."""
    return augment.flip_where(x, augment.flips(x.size(0), x.device, gen))


def cutout(x, length, gen):
    """Zero a length x length square (clipped at the borders) at a uniform centre."""
    cy, cx = augment.centres(x.size(0), x.size(2), x.size(3), x.device, gen)
    return augment.apply_cutout(x, cy, cx, length)
