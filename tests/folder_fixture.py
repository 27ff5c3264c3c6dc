"""A folder dataset in the ImageFolder layout written from scikit-learn's digits: PNG files in
colour (the digit drawn in orange) of mixed sizes, one greyscale JPEG, 10 class folders per
split, as a user's own images would come."""
import os

import numpy as np

from runner.data.datasets import digits_table

SIZES = [(8, 8), (12, 12), (16, 16), (24, 16), (16, 24)]  # (width, height)


def write_digits_folder(root, n_train=200, n_test=100, val=0, grey=False):
    """train/, test/ (and with val > 0 a val/) under `root`, class folders '0'..'9'. Returns
    {split: (uint8 images as written (N, H, W, 3) list, labels)}."""
    from PIL import Image

    images, labels = digits_table()
    pixels = np.round(images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.RandomState(0).permutation(len(pixels))
    queues = [[i for i in order if labels[i] == c] for c in range(10)]  # per class, shuffled
    counts = {"train": n_train, "test": n_test, "val": val}
    written = {}
    for split, n in counts.items():
        if not n:
            continue
        idx = [queues[k % 10].pop() for k in range(n)]  # classes in turn: each one present
        written[split] = ([], [])
        for k, i in enumerate(idx):
            folder = os.path.join(root, split, str(labels[i]))
            os.makedirs(folder, exist_ok=True)
            v = pixels[i]
            rgb = np.stack([v, v, v] if grey else [v, (v * 0.6).astype(np.uint8), v // 5], -1)
            img = Image.fromarray(rgb).resize(SIZES[k % len(SIZES)], Image.NEAREST)
            if split == "train" and k == 0:  # one greyscale JPEG among the PNGs
                img.convert("L").save(os.path.join(folder, f"{k}.jpg"), quality=95)
            else:
                img.save(os.path.join(folder, f"{k}.png"))
            written[split][0].append(np.asarray(img.convert("RGB")))
            written[split][1].append(int(labels[i]))
    return written
