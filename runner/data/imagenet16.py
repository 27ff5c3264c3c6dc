"""ImageNet16-120 (Chrabaszcz et al. 2017, as cut down by NAS-Bench-201) from its official files.

The folder holds `train_data_batch_1` ... `train_data_batch_10` and `val_data`: latin-1 pickles
of {'data': uint8 N x 768 (the R, G and B 16x16 planes, rows first), 'labels': 1..1000}.
NAS-Bench-201 keeps the first 120 classes: labels 1..120, shifted to 0..119 (151,700 train and
6,000 val images). There is no public download URL the loader could use.
"""
import os
import pickle

import numpy as np

FOLDER = "ImageNet16"
TRAIN = [f"train_data_batch_{i}" for i in range(1, 11)]
VAL = "val_data"
CLASSES = 120
TRAIN_SIZE, VAL_SIZE = 151_700, 6_000
# md5 of the official files (published with the NAS-Bench-201 loader, DownsampledImageNet.py)
MD5 = {"train_data_batch_1": "27846dcaa50de8e21a7d1a35f30f0e91",
       "train_data_batch_2": "c7254a054e0e795c69120a5727050e3f",
       "train_data_batch_3": "4333d3df2e5ffb114b05d2ffc19b1e87",
       "train_data_batch_4": "1620cdf193304f4a92677b695d70d10f",
       "train_data_batch_5": "348b3c2fdbb3940c4e9e834affd3b18d",
       "train_data_batch_6": "6e765307c242a1b3d7d5ef9139b48945",
       "train_data_batch_7": "564926d8cbf8fc4818ba23d2faac7564",
       "train_data_batch_8": "f4755871f718ccb653440b9dd0ebac66",
       "train_data_batch_9": "bb6dd660c38c58552125b1a92f86b5d4",
       "train_data_batch_10": "8f03f34ac4b42271a294f91bf480f29b",
       "val_data": "3410e3017fdaefba8d5073aaa65e4bd6"}


def read(path, verify_md5):
    """(images N x 3 x 16 x 16 uint8, labels 0..119) of one file, classes 1..120 only."""
    from torchvision.datasets.utils import check_integrity  # the check the CIFAR classes use

    if verify_md5 and not check_integrity(path, MD5[os.path.basename(path)]):
        raise ValueError(f"md5 mismatch for {path} (re-packed files: "
                         f"--bind 'dataset.verify_md5 = False')")
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 16, 16)
    y = np.asarray(entry["labels"], dtype=np.int64)
    keep = (y >= 1) & (y <= CLASSES)
    return x[keep], y[keep] - 1


def load(root, verify_md5=True):
    """(train x, train y, val x, val y) from <root>/ImageNet16/; sizes checked on full files."""
    folder = os.path.join(root, FOLDER)
    parts = [read(os.path.join(folder, f), verify_md5) for f in TRAIN]
    tx, ty = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    vx, vy = read(os.path.join(folder, VAL), verify_md5)
    if verify_md5 and (len(tx), len(vx)) != (TRAIN_SIZE, VAL_SIZE):
        raise ValueError(f"{folder}: {len(tx)} train / {len(vx)} val images of classes "
                         f"1..{CLASSES}, expected {TRAIN_SIZE} / {VAL_SIZE}")
    return tx, ty, vx, vy
