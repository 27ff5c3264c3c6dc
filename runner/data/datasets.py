"""Datasets as uint8 tensors on the training device (or in host memory when they do not fit),
read through torchvision classes."""
import importlib.util
import math
import os
from dataclasses import dataclass
from typing import Optional

import gin
import numpy as np
import torch

from runner.data import augment, folder, imagenet, imagenet16


class DataError(RuntimeError):
    """Dataset files missing or unreadable."""


# name: (mean, std, horizontal flip in train augmentation); statistics as in darts-pt
STATS = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768), True),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), True),  # HFlip kept, as darts-pt
    "digits": ((0.3,), (0.38,), False),
    # ImageNet16-120: NAS-Bench-201's statistics, given there in 0..255 units
    "imagenet16": (tuple(v / 255 for v in (122.68, 116.66, 104.01)),
                   tuple(v / 255 for v in (63.22, 61.26, 65.09)), True),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "digits": 10,
               "imagenet16": imagenet16.CLASSES}
FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)]
                + ["test_batch", "batches.meta"]),
    "cifar100": ("cifar-100-python", ["train", "test", "meta"]),
    "svhn": ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    "imagenet16": (imagenet16.FOLDER, imagenet16.TRAIN + [imagenet16.VAL]),
}
# datasets without a download: where to get their files instead
MANUAL = {"imagenet16": "get them from the NAS-Bench-201 authors (no automatic download)"}
# the random crop's zero padding per dataset (darts-pt: 4 for 32x32 images, 2 for 16x16 ones)
PAD = {"digits": 2, "imagenet16": 2}


class HostImages:
    """uint8 images left in host memory, for data that does not fit the device.

    Indexing only records indices; `Dataset.prepare` gathers the batch on the host and copies
    it to `device` (pinned, asynchronous on CUDA), where augmentation runs as for device data.
    What a DataLoader does, without workers or PIL: the same batches, the same numbers.
    """

    def __init__(self, images, device, index=None):
        self.images, self.device, self.index = images, torch.device(device), index

    @property
    def shape(self):
        n = self.images.size(0) if self.index is None else self.index.numel()
        return torch.Size((n,) + tuple(self.images.shape[1:]))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        idx = torch.arange(len(self))[idx] if isinstance(idx, slice) else torch.as_tensor(idx).cpu()
        return HostImages(self.images, self.device, idx if self.index is None else self.index[idx])

    def load(self):
        """The selected images as a uint8 tensor on the device."""
        x = self.images if self.index is None else self.images[self.index]
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)


def fits_device(nbytes, device, fraction=0.25):
    """Whether `nbytes` of images fit in `fraction` of the device's free memory (CPU: always)."""
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


@dataclass
class Dataset:
    """Train and test splits as uint8 NCHW tensors plus their normalisation."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    flip: bool
    pad: int
    num_classes: int
    train_portion: float = 0.5  # the weight part of the train split in search and selection
    classes: Optional[list] = None  # class names (None: the label numbers)
    val_start: Optional[int] = None  # a folder set's val/: train_x[val_start:] trains alphas

    @property
    def in_channels(self):
        return self.train_x.size(1)

    @property
    def image_shape(self):
        return tuple(self.train_x.shape[1:])

    def prepare(self, images, train, cutout_length=0, gen=None):
        """Normalise a uint8 batch; `train` adds random crop and flip (and cutout if asked)."""
        images = images.load() if isinstance(images, HostImages) else images
        if not train:
            return augment.prepare(images, self.mean, self.std)
        return augment.prepare(images, self.mean, self.std, self.pad, self.flip, cutout_length, gen)

    def draw(self, n, gen):
        """The random numbers `prepare(train=True)` would draw for a batch of n images."""
        return augment.draw((n,) + tuple(self.train_x.shape[1:]), self.mean.device, self.pad,
                            self.flip, 0, gen)

    def apply(self, images, params):
        """`prepare(train=True)` with parameters from `draw`."""
        images = images.load() if isinstance(images, HostImages) else images
        return augment.apply(images, self.mean, self.std, params, self.pad)

    def search_halves(self, portion=None):
        """Index split of the train split: the first `portion` (None: `train_portion`) for
        weights, the rest for alphas; search, selection and the analyses share it."""
        n = self.train_x.size(0)
        if portion is None and self.val_start is not None:  # a val/ folder: its own split
            split = self.val_start
        else:
            portion = self.train_portion if portion is None else portion
            split = int(math.floor(portion * n))
        idx = torch.arange(n, device=self.train_x.device)
        return idx[:split], idx[split:]


def check_files(name, root):
    """Fail at once, naming the files and how to get them, when a dataset is not on disk."""
    folder, files = FILES[name]
    where = os.path.join(root, folder)
    missing = [f for f in files if not os.path.isfile(os.path.join(where, f))]
    if missing:
        get = MANUAL.get(name, "download them with --bind 'dataset.download = True'")
        raise DataError(
            f"{name} files not found in {os.path.abspath(where)}: {', '.join(missing)}; "
            f"{get} or point "
            f"--bind 'dataset.root = \"/path/to/data\"' at a folder holding {folder}/")


def _torchvision(name, root, download, verify_md5):
    """(train x, train y, test x, test y), class names (CIFAR's meta; None: numbers)."""
    import torchvision.datasets as tvd

    if name == "imagenet16":  # no torchvision class: read the official pickles directly
        return imagenet16.load(root, verify_md5), None
    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "svhn": tvd.SVHN}[name]
    if not verify_md5:
        cls = _without_md5(cls)
    if name == "svhn":
        folder = os.path.join(root, "svhn")
        tr, te = cls(folder, split="train", download=download), cls(folder, split="test", download=download)
        return (tr.data, tr.labels, te.data, te.labels), None
    tr, te = cls(root, train=True, download=download), cls(root, train=False, download=download)
    return (tr.data.transpose(0, 3, 1, 2), tr.targets, te.data.transpose(0, 3, 1, 2),
            te.targets), list(tr.classes)


def _without_md5(cls):
    """The same torchvision class with its md5 checks off (re-packed or test files)."""
    attrs = {}
    if hasattr(cls, "split_list"):
        attrs["split_list"] = {k: [v[0], v[1], None] for k, v in cls.split_list.items()}
    else:
        attrs["train_list"] = [[f, None] for f, _ in cls.train_list]
        attrs["test_list"] = [[f, None] for f, _ in cls.test_list]
        attrs["meta"] = dict(cls.meta, md5=None)
    return type(cls.__name__, (cls,), attrs)


def digits_table():
    """scikit-learn's digits as (images 1797x8x8 float, labels int): its shipped file
    (datasets/data/digits.csv.gz, a row of 64 pixels then the label) is read directly, since
    importing sklearn.datasets costs about a second of every run's start; load_digits() reads
    the same file and is the fallback for a layout without it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if not os.path.exists(path):
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def _digits(test_size=300):
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), upsampled to 16x16."""
    images, labels = digits_table()
    x = np.round(images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    x = x.repeat(2, axis=2).repeat(2, axis=3)
    perm = np.random.RandomState(0).permutation(len(x))  # fixed split, independent of the seed
    x, y = x[perm], labels[perm]
    return x[test_size:], y[test_size:], x[:test_size], y[:test_size]


@gin.configurable
def dataset(name=gin.REQUIRED, root="data", download=False, verify_md5=True, pad=None,
            device="cpu", limit=None, placement="auto", workers=8, train_portion=0.5,
            image_size=32, memory_budget=None):
    """Load `name` (cifar10, cifar100, svhn, imagenet16 = ImageNet16-120, digits, folder)
    onto `device`; imagenet is not loaded but streamed from its ImageFolder layout by
    `workers` DataLoader processes per rank (runner/data/imagenet.py).

    folder: your own images under `root` (train/<class>/*, test/<class>/*, optional val/;
    runner/data/folder.py), resized to `image_size`, decoded by `workers` processes; over
    `memory_budget` GiB of decoded images (None: a quarter of the RAM) they stream in the
    retrain instead.

    train_portion: the part of the train split that trains the supernet's weights in search,
    selection and the analyses (the rest trains alpha and scores; darts-pt: 0.5).
    limit: at most this many images per split (None: all). pad: zero padding of the random
    crop (None: the dataset's default, 4 pixels, 2 for the 16x16 digits and ImageNet16,
    image_size / 8 for a folder; 0: no crop).

    placement: 'device' keeps the uint8 images on `device`; 'host' keeps them in host memory
    and copies each batch over (HostImages); 'auto' = 'device' when they take at most a
    quarter of its free memory (always on a CPU). Labels always live on the device.
    """
    if name == "imagenet":
        return imagenet.ImageFolderData(root, device, DataError, limit, workers)
    if placement not in ("auto", "device", "host"):
        raise ValueError(f"dataset.placement must be 'auto', 'device' or 'host', not {placement!r}")
    if name == "folder":
        return _folder(root, image_size, limit, memory_budget, workers, device, placement, pad,
                       train_portion)
    if name not in STATS:
        raise DataError(f"unknown dataset {name!r}; known: "
                        f"{', '.join([*STATS, 'imagenet', 'folder'])}")
    if name == "digits":
        arrays, classes = _digits(), None
    else:
        if not download or name in MANUAL:
            check_files(name, root)
        try:
            arrays, classes = _torchvision(name, root, download, verify_md5)
        except Exception as e:  # noqa: BLE001 - truncated pickles/.mat files raise many types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{name} files in {os.path.abspath(root)} unreadable: {first}") from e
    tx, ty, vx, vy = (torch.as_tensor(np.asarray(a)) for a in arrays)
    if limit:
        tx, ty, vx, vy = tx[:limit], ty[:limit], vx[:limit], vy[:limit]
    mean, std, flip = STATS[name]
    return _placed(name, tx, ty, vx, vy, mean, std, flip,
                   pad if pad is not None else PAD.get(name, 4), NUM_CLASSES[name],
                   train_portion, device, placement, classes=classes)


def _placed(name, tx, ty, vx, vy, mean, std, flip, pad, num_classes, train_portion, device,
            placement, **extra):
    """The Dataset of uint8 splits, the images on `device` or left on the host."""
    shape = (1, len(mean), 1, 1)
    on_device = placement == "device" or (
        placement == "auto" and fits_device(tx.nbytes + vx.nbytes, device))
    tx, vx = (x.to(device) if on_device else HostImages(x, device) for x in (tx, vx))
    return Dataset(name, tx, ty.long().to(device), vx, vy.long().to(device),
                   torch.tensor(mean, device=device).view(shape),
                   torch.tensor(std, device=device).view(shape), flip, pad, num_classes,
                   train_portion, **extra)


def _folder(root, size, limit, budget, workers, device, placement, pad, train_portion):
    """A folder of your own images, in memory (a Dataset) or streamed (over the budget)."""
    got = folder.read(root, size, limit, budget, workers, DataError)
    (mean, std), pad = got["stats"], size // 8 if pad is None else pad
    if "stream" in got:
        return folder.streamed(got["stream"], size, device, DataError, workers, mean, std,
                               pad)
    splits = got["splits"]
    (tx, ty), (vx, vy) = splits["train"], splits["test"]
    val_start = None
    if "val" in splits:  # weights on train/, alphas on val/; the retrain trains on both
        val_start = len(tx)
        tx, ty = torch.cat([tx, splits["val"][0]]), torch.cat([ty, splits["val"][1]])
    return _placed("folder", tx, ty, vx, vy, mean, std, True, pad, len(got["classes"]),
                   train_portion, device, placement, classes=got["classes"],
                   val_start=val_start)
