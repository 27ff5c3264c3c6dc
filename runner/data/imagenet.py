"""ImageNet for the mobile-setting retrain (paper Table 5), streamed from the standard
ImageFolder layout: <root>/imagenet/train/<class>/*.JPEG and <root>/imagenet/val/<class>/*.

DataLoader workers decode and augment on the CPU and hand over uint8 tensors (a quarter of
the bytes of floats); the device normalises. Under torchrun each rank reads its shard of
every epoch (a DistributedSampler seeded with the run's seed), its share of the global batch.
Transforms as darts-pt's train_imagenet.py and DARTS: RandomResizedCrop 224, flip,
ColorJitter(0.4, 0.4, 0.4, hue 0.2); test Resize 256 + CenterCrop 224.
"""
import os

import torch

from runner.training import distributed

FOLDER = "imagenet"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def train_transform(size=224):
    import torchvision.transforms as T

    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                      T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
                      T.PILToTensor()])


def test_transform(size=224, resize=256):
    import torchvision.transforms as T

    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.PILToTensor()])


def image_folder(path, transform, error):
    """torchvision's ImageFolder, or `error` naming the folder."""
    from torchvision.datasets import ImageFolder

    if not os.path.isdir(path):
        raise error(f"imagenet folder not found: {os.path.abspath(path)} (the ImageFolder "
                    "layout: train/ and val/, one sub-folder of images per class)")
    try:
        return ImageFolder(path, transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise error(f"imagenet folder {os.path.abspath(path)} unreadable: "
                    f"{str(e).splitlines()[0]}") from e


def spread(n, limit):
    """`limit` indices spread evenly over n (ImageFolder lists images class by class)."""
    if not limit or limit >= n:
        return None
    return torch.linspace(0, n - 1, limit).round().long().tolist()


class Streamed:
    """Train and test splits read by DataLoader workers (torch Datasets of uint8 (C, H, W)
    images and labels); what the retrain needs of a dataset (name, num_classes, image_shape,
    its batches) without holding the images. Subclasses set the fields in __init__ and may
    augment the train batches on the device (`train_input`)."""

    streamed = True
    name, train, test, train_index, test_index = "", None, None, None, None
    num_classes, in_channels, image_shape, workers = 0, 3, (3, 0, 0), 0

    def setup(self, device, mean, std):
        self.device = torch.device(device)
        shape = (1, len(mean), 1, 1)
        self.mean = torch.tensor(mean, device=device).view(shape)
        self.std = torch.tensor(std, device=device).view(shape)
        self._loaders = {}

    def train_input(self, x, gen):
        """A train batch (uint8 on the device) as the network's input."""
        return self.normalise(x)

    def normalise(self, x):
        x = x.to(self.device, non_blocking=True).float().div_(255)
        return (x - self.mean) / self.std

    def loader(self, split, batch_size, seed):
        """This rank's DataLoader of `split`, made once (persistent workers): train in its
        shard of a fresh order per epoch (set_epoch), test in order, shard by shard."""
        from torch.utils.data import DataLoader, DistributedSampler, Subset

        key = (split, batch_size)
        if key not in self._loaders:
            ranks = distributed.ranks()
            data, index = ((self.train, self.train_index) if split == "train"
                           else (self.test, self.test_index))
            data = data if index is None else Subset(data, index)
            if split == "train":  # padded to equal shards: every rank takes the same steps
                sampler = DistributedSampler(data, ranks.world, ranks.rank, shuffle=True,
                                             seed=seed)
            else:  # no padding: every val image counted once over the ranks
                sampler = range(ranks.rank, len(data), ranks.world)
            pin = self.device.type == "cuda"
            self._loaders[key] = DataLoader(
                data, batch_size=batch_size, sampler=sampler, num_workers=self.workers,
                pin_memory=pin, persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers > 0 else None,
                generator=torch.Generator().manual_seed(seed))  # the workers' seeds
        return self._loaders[key]

    def train_batches(self, batch_size, epoch, seed, mode):
        """(x, y, global batch size) of this rank for one epoch; batch_size is the global
        batch, each rank reads batch_size / world of it."""
        world = distributed.ranks().world
        if batch_size % world:
            raise ValueError(f"retrain.batch_size {batch_size} is not a multiple of the "
                             f"{world} ranks")
        loader = self.loader("train", batch_size // world, seed)
        loader.sampler.set_epoch(epoch)
        gen = torch.Generator(self.device).manual_seed(  # each rank its own augmentations
            (seed * 1_000_003 + epoch) * 64 + distributed.ranks().rank)
        for x, y in loader:
            x = self.train_input(x.to(self.device, non_blocking=True), gen)
            yield mode.input(x), y.to(self.device, non_blocking=True), y.numel() * world

    def test_batches(self, batch_size, mode):
        """(x, y) of this rank's share of the val split, normalised."""
        for x, y in self.loader("test", batch_size, 0):
            yield mode.input(self.normalise(x)), y.to(self.device, non_blocking=True)


class ImageFolderData(Streamed):
    """ImageNet's train and val splits, streamed (RandomResizedCrop etc. in the workers)."""

    def __init__(self, root, device, error, limit=None, workers=8, size=224):
        self.name = "imagenet"
        folder = os.path.join(root, FOLDER)
        self.train = image_folder(os.path.join(folder, "train"), train_transform(size), error)
        self.test = image_folder(os.path.join(folder, "val"), test_transform(size), error)
        if self.train.classes != self.test.classes:
            raise error(f"imagenet train/ and val/ in {os.path.abspath(folder)} hold different "
                        f"classes ({len(self.train.classes)} and {len(self.test.classes)})")
        self.train_index, self.test_index = (spread(len(d), limit) for d in (self.train,
                                                                             self.test))
        self.num_classes = len(self.train.classes)
        self.classes = list(self.train.classes)
        self.image_shape = (3, size, size)
        self.workers = workers
        self.setup(device, MEAN, STD)
