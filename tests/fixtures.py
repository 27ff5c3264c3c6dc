"""Tiny datasets written in the official on-disk formats that torchvision reads.

CIFAR-10 and CIFAR-100 are the "python version" pickles (data: uint8 N x 3072, the R, G and B
planes of each 32x32 image one after another, rows first); SVHN is the cropped-digits .mat
format (X: uint8 32x32x3xN, y: Nx1 with labels 1..10, where 10 means the digit 0);
ImageNet16-120 is NAS-Bench-201's downsampled-ImageNet pickles (1-based labels).

Every image carries a learnable class signal: a class-dependent mean colour plus noise.
"""
import glob
import os
import pickle
from pathlib import Path

import numpy as np

from helpers import GIN_DIR


def experiment_files():
    """The experiment files: every .gin file at the top of gin/."""
    return sorted(Path(p) for p in glob.glob(str(GIN_DIR / "*.gin")))


def all_gin_files():
    """Every .gin file anywhere under gin/."""
    return sorted(Path(p) for p in glob.glob(str(GIN_DIR / "**" / "*.gin"), recursive=True))

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck"]

N_TRAIN = 40
N_TEST = 20


def class_images(labels, num_classes, seed):
    """uint8 N x 3 x 32 x 32 images whose mean colour depends on the label, plus noise."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    # class colour: spread the classes around the RGB cube, deterministic per class
    colours = np.random.RandomState(1000 + num_classes).randint(40, 216, size=(num_classes, 3))
    base = colours[labels][:, :, None, None].astype(np.float64)
    noise = rng.normal(0.0, 20.0, size=(len(labels), 3, 32, 32))
    return np.clip(np.round(base + noise), 0, 255).astype(np.uint8)


def cifar_rows(images):
    """N x 3 x 32 x 32 -> N x 3072 (R plane, G plane, B plane, each 32x32 row-major)."""
    return np.ascontiguousarray(images.reshape(len(images), 3 * 32 * 32))


def _pickle(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _labels(n, num_classes, seed):
    """Every class appears (when n >= num_classes), in a shuffled order."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    return y


def write_cifar10(root, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    """Write <root>/cifar-10-batches-py/ with 5 train batches, test_batch and batches.meta.

    Returns {'train': (images NCHW uint8, labels), 'test': (...)} as written.
    """
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    y_train = _labels(n_train, 10, seed)
    y_test = _labels(n_test, 10, seed + 1)
    x_train = class_images(y_train, 10, seed + 2)
    x_test = class_images(y_test, 10, seed + 3)
    # torchvision concatenates data_batch_1..5 in order; split the train set over them
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _pickle({"batch_label": f"training batch {i} of 5",
                 "data": cifar_rows(x_train[part]),
                 "labels": [int(v) for v in y_train[part]],
                 "filenames": [f"img_{k}.png" for k in part]},
                os.path.join(folder, f"data_batch_{i}"))
    _pickle({"batch_label": "testing batch 1 of 1", "data": cifar_rows(x_test),
             "labels": [int(v) for v in y_test],
             "filenames": [f"test_{k}.png" for k in range(n_test)]},
            os.path.join(folder, "test_batch"))
    _pickle({"label_names": list(CIFAR10_LABELS), "num_cases_per_batch": 10000,
             "num_vis": 3072}, os.path.join(folder, "batches.meta"))
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def write_cifar100(root, n_train=N_TRAIN, n_test=N_TEST, seed=10):
    """Write <root>/cifar-100-python/ with train, test and meta (fine and coarse labels)."""
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        # a handful of fine classes spread over the 100 (all 100 would need 100+ images)
        fine = (_labels(n, 10, s) * 10 + 3).astype(np.int64)
        coarse = fine // 5
        x = class_images(fine, 100, s + 2)
        _pickle({"filenames": [f"{split}_{k}.png" for k in range(n)],
                 "batch_label": f"{split} batch",
                 "fine_labels": [int(v) for v in fine],
                 "coarse_labels": [int(v) for v in coarse],
                 "data": cifar_rows(x)}, os.path.join(folder, split))
        out[split] = (x, fine)
    _pickle({"fine_label_names": [f"fine_{k}" for k in range(100)],
             "coarse_label_names": [f"coarse_{k}" for k in range(20)]},
            os.path.join(folder, "meta"))
    return out


def write_svhn(root, n_train=N_TRAIN, n_test=N_TEST, seed=20):
    """Write <root>/svhn/train_32x32.mat and test_32x32.mat (labels 1..10, 10 = digit 0)."""
    from scipy.io import savemat

    folder = os.path.join(root, "svhn")
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        digits = _labels(n, 10, s)
        x = class_images(digits, 10, s + 2)  # N x 3 x 32 x 32
        mat_y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        savemat(os.path.join(folder, f"{split}_32x32.mat"),
                {"X": np.ascontiguousarray(x.transpose(2, 3, 1, 0)), "y": mat_y})
        out[split] = (x, digits)
    return out


def write_imagenet16(root, n_train=N_TRAIN, n_test=N_TEST, seed=30, extra=4):
    """Write <root>/ImageNet16/ as NAS-Bench-201 ships it: train_data_batch_1..10 and val_data,
    latin-1-readable pickles of {'data': uint8 N x 768 (R, G, B 16x16 planes), 'labels': 1..1000}.

    Each split also holds `extra` images of classes above 120, which the loader must drop.
    Returns {'train': (images, labels 0..119), 'test': (...)} as the loader should give them.
    """
    folder = os.path.join(root, "ImageNet16")
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        kept = _labels(n, 10, s) * 12 + 1  # ten 1-based classes spread over 1..120, 120 included
        kept[0] = 120
        labels = np.concatenate([kept, 121 + np.arange(extra) * 200])
        order = np.random.RandomState(s + 5).permutation(len(labels))
        labels = labels[order]
        x = class_images(labels - 1, 1000, s + 2)[:, :, :16, :16]
        keep = labels <= 120
        out[split] = (x[keep], labels[keep] - 1)
        rows = np.ascontiguousarray(x.reshape(len(x), 3 * 16 * 16))
        if split == "train":  # the official train set is cut into ten batches
            for i, part in enumerate(np.array_split(np.arange(len(x)), 10), start=1):
                _pickle({"data": rows[part], "labels": [int(v) for v in labels[part]],
                         "mean": rows.mean(0)}, os.path.join(folder, f"train_data_batch_{i}"))
        else:
            _pickle({"data": rows, "labels": [int(v) for v in labels]},
                    os.path.join(folder, "val_data"))
    return out


def write_all(root):
    """All four datasets under one folder; returns {name: what write_<name> returned}."""
    return {"cifar10": write_cifar10(root), "cifar100": write_cifar100(root),
            "svhn": write_svhn(root), "imagenet16": write_imagenet16(root)}


def tiny_supernet(space_name="s2", seed=0):
    """A C4/L3 supernet with seeded weights, for unit tests of search, selection and methods."""
    import torch

    from spaces.cell import get_space
    from spaces.darts.supernet import DartsSupernet

    torch.manual_seed(seed)
    return DartsSupernet(get_space(space_name), C=4, layers=3, num_classes=10)


def tiny_images(n=32, seed=0):
    """A random 16x16 uint8 Dataset held in memory (no files), with crop and flip on."""
    import torch

    from runner.data.datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    m = torch.full((1, 3, 1, 1), 0.5)
    return Dataset("tiny", x, y, x[:8], y[:8], m, m / 2, True, 2, 10)
