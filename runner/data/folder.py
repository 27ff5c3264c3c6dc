"""Your own images: a folder in torchvision's ImageFolder layout, `<root>/train/<class>/*`,
`<root>/test/<class>/*` and, when present, `<root>/val/<class>/*`. With val/, the search
trains the weights on train/ and the architecture (alphas, PT's scores) on val/, in place
of the two halves of train/, and the retrain trains on both; test/ is only reported.

Every image is decoded by PIL (any format and size it reads), converted to RGB, and resized
to `image_size` x `image_size` (bilinear, antialiased: runner/training/export.py `resize`,
the same function the exported model applies to raw images, so a model's predictions match
the runner's). A set whose every image is grey keeps one channel. The class names are the
folder names, sorted.
The normalisation statistics are the train split's per-channel mean and std.

Small sets are decoded once into uint8 tensors, as CIFAR is (DataLoader workers decode in
parallel); a set larger than `dataset.memory_budget` streams through DataLoader workers in
the retrain, as ImageNet does (runner/data/imagenet.py); search and selection need it in
memory.
"""
import os

import numpy as np
import torch

from runner.training.export import resize  # the exported model's own resize

SPLITS = ("train", "test", "val")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif",
              ".tiff", ".webp")
LAYOUT = "train/<class>/*, test/<class>/*, optionally val/<class>/*"


def images_in(folder):
    """The image files under `folder` (sub-folders included), sorted."""
    return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names
                  if f.lower().endswith(EXTENSIONS))


def scan(root, error):
    """{split: (class names, [(path, label), ...])} for train, test and val (if present);
    `error` (one line naming the folder) for a missing split, an empty class or class lists
    that differ between splits."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise error(f"folder dataset not found: {root} (the layout: {LAYOUT})")
    splits = {}
    for split in SPLITS:
        where = os.path.join(root, split)
        if not os.path.isdir(where):
            if split == "val":
                continue
            raise error(f"folder dataset {root} has no {split}/ folder (the layout: {LAYOUT})")
        classes = sorted(e.name for e in os.scandir(where) if e.is_dir())
        if not classes:
            raise error(f"folder dataset {where} holds no class folders (the layout: {LAYOUT})")
        files = []
        for label, name in enumerate(classes):
            found = images_in(os.path.join(where, name))
            if not found:
                raise error(f"folder dataset class {os.path.join(where, name)} is empty (no "
                            f"image files: {', '.join(EXTENSIONS)})")
            files += [(path, label) for path in found]
        splits[split] = (classes, files)
    train = splits["train"][0]
    for split, (classes, _) in splits.items():
        if classes != train:
            odd = sorted(set(classes) ^ set(train))
            raise error(f"folder dataset {root}: {split}/ and train/ hold different classes "
                        f"(in one only: {', '.join(odd[:5]) or 'the same names, another order'})")
    return splits


def decode(path, size, error):
    """One image file as uint8 (3, size, size); `error` naming the file when PIL cannot
    read it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - PIL raises several types for a bad file
        raise error(f"image {path} unreadable: {type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}") from e
    return resize(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None], size)[0]


class Files(torch.utils.data.Dataset):
    """(uint8 image (channels, size, size), label) per file: what DataLoader workers decode."""

    def __init__(self, files, size, error, channels=3):
        self.files, self.size, self.error, self.channels = files, size, error, channels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        path, label = self.files[i]
        return decode(path, self.size, self.error)[:self.channels], label


def load(files, size, error, workers):
    """Every file decoded into (uint8 (N, 3, size, size), labels (N,)), by `workers`
    DataLoader processes (0: in this one)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(Files(files, size, error), batch_size=256, num_workers=workers)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def spread(files, limit):
    """At most `limit` files, spread evenly over the list (it runs class by class)."""
    if not limit or limit >= len(files):
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]


SAMPLE = 2000  # train images that give a streamed set's statistics and channel count


def read(root, size, limit, budget_gib, workers, error):
    """The folder's images: a dict with `classes`, and either `splits` (uint8 tensors and
    labels of train, test and val if present, one channel for a grey set) with `mean`/`std`
    of the train split, or `stream` (the scanned files, over the memory budget) with the
    statistics of a sample."""
    splits = {k: (c, spread(f, limit)) for k, (c, f) in scan(root, error).items()}
    classes = splits["train"][0]
    if not fits(splits, size, memory_budget(budget_gib)):
        x, _ = load(spread(splits["train"][1], SAMPLE), size, error, workers)
        x = x[:, :1] if grey(x) else x
        return {"classes": classes, "stream": splits, "stats": statistics(x)}
    loaded = {k: load(f, size, error, workers) for k, (_, f) in splits.items()}
    if grey(*(x for x, _ in loaded.values())):
        loaded = {k: (x[:, :1].contiguous(), y) for k, (x, y) in loaded.items()}
    return {"classes": classes, "splits": loaded, "stats": statistics(loaded["train"][0])}


def grey(*splits):
    """Whether every image of the splits has equal R, G and B (a greyscale set)."""
    return all(bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()) for x in splits)


def statistics(x):
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = x.double().div(255)
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


def fits(splits, size, budget):
    """Whether the decoded train and test splits (3 channels) fit in `budget` bytes."""
    n = sum(len(splits[s][1]) for s in ("train", "test"))
    return n * 3 * size * size <= budget


def memory_budget(budget_gib):
    """Bytes the decoded images may take: `budget_gib` GiB, None: a quarter of the RAM."""
    if budget_gib is not None:
        return budget_gib * 2 ** 30
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4


def streamed(splits, size, device, error, workers, mean, std, pad):
    """The folder's splits streamed by DataLoader workers in the retrain (val/, if present,
    trains with train/); the crop and flip run on the device as for in-memory data."""
    from runner.data import augment
    from runner.data.imagenet import Streamed

    class Stream(Streamed):
        def train_input(self, x, gen):
            return augment.prepare(x, self.mean, self.std, pad, True, 0, gen)

    data, channels = Stream(), len(mean)
    data.name, data.classes = "folder", splits["train"][0]
    data.train = Files(splits["train"][1] + splits.get("val", (None, []))[1], size, error,
                       channels)
    data.test = Files(splits["test"][1], size, error, channels)
    data.num_classes, data.in_channels = len(data.classes), len(mean)
    data.image_shape, data.workers = (len(mean), size, size), workers
    data.setup(device, mean, std)
    return data
