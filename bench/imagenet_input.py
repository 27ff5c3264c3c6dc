"""ImageNet input pipeline alone: images/s that the DataLoader workers of runner/data/imagenet.py
deliver (JPEG decode, RandomResizedCrop 224, flip, ColorJitter on the CPU workers; the copy to
the device and the normalisation there), for several worker counts, with no network.

The images are synthetic JPEGs of ImageNet's typical size (500x375, smooth content plus noise,
quality 90: about 100 KB, near a real photo's 110 KB) in the ImageFolder layout, written to a
temporary folder (a GPU machine has no dataset). Per worker count: one pass over the images,
the first batch (worker start-up) left out. A rank's GPU is fed when this rate, with that
rank's workers, beats the network's training images/s on it; a node of N GPUs needs N times
those workers, and the cores to run them.

Usage:  python bench/imagenet_input.py --workers 0 1 2            (here: CPUs)
        python bench/imagenet_input.py --device cuda --workers 4 8 16   (a GPU machine)
Prints one markdown table: workers, batch, images, seconds, images/s.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_images(root, n, classes=4, size=(500, 375), seed=0):
    """n smooth random JPEGs spread over `classes` ImageFolder classes under root/imagenet."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    for split in ("train", "val"):
        for k in range(classes):
            os.makedirs(os.path.join(root, "imagenet", split, f"c{k}"), exist_ok=True)
    for i in range(n):
        small = Image.fromarray(rng.randint(0, 256, (12, 16, 3), dtype=np.uint8))
        img = np.asarray(small.resize(size, Image.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.randint(-36, 37, img.shape), 0, 255).astype(np.uint8)
        for split in ("train",) + (("val",) if i < classes else ()):
            Image.fromarray(img).save(os.path.join(root, "imagenet", split, f"c{i % classes}",
                                                   f"{i}.JPEG"), quality=90)


def throughput(root, workers, batch, device):
    """images/s of one pass over the train images with `workers` DataLoader processes."""
    import torch

    from runner.data.datasets import DataError
    from runner.data.imagenet import ImageFolderData
    from runner.training.precision import precision

    data = ImageFolderData(root, device, DataError, workers=workers)
    mode = precision(device)
    n, t0 = 0, None
    for x, _, _ in data.train_batches(batch, 0, 0, mode):
        if t0 is None:  # the first batch pays for starting the workers
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            continue
        n += x.size(0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return n, seconds, n / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64, help="one rank's batch")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as root:
        write_images(root, args.images)
        print(f"ImageNet input pipeline, {args.images} synthetic 500x375 JPEGs, device "
              f"{args.device}, {os.cpu_count()} CPUs\n")
        print("| workers | batch | images | seconds | images/s |")
        print("| --- | --- | --- | --- | --- |")
        for w in args.workers:
            n, seconds, rate = throughput(root, w, args.batch, args.device)
            print(f"| {w} | {args.batch} | {n} | {seconds:.2f} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
