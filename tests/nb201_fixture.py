"""A tiny NAS-Bench-201 benchmark file in the official v1.0/v1.1 on-disk layout.

The layout is what `nas_201_api.NASBench201API(path)` reads with `torch.load`:

    {"meta_archs": [structure string of index 0, 1, ...],
     "arch2infos": {index: {"less": ArchResults.state_dict(),    # the 12-epoch schedule
                            "full": ArchResults.state_dict()}},  # the 200-epoch schedule
     "evaluated_indexes": [index, ...]}

The ArchResults / ResultsCount objects come from the official package itself, so their
state dicts are exactly what the package writes. `meta_archs` lists all 5^6 structures in a
shuffled order (so an index can only come from the file) and only CELLS are evaluated.

The numbers are made up but chosen so that every mistake a converter could make shows up:
every seed has its own final value (the mean over seeds equals none of them), the epoch
before the last is better than the last one (picking the best epoch is wrong), the 12-epoch
entries sit far away from the 200-epoch ones, `cifar10-valid` carries an `ori-test` result of
its own, and the `ori-test` of CIFAR-100 / ImageNet16-120 (valid + test halves) differs from
`x-test`. Two cells tie on the CIFAR-100 test accuracy (rank ties).
"""
import itertools
import random
from collections import OrderedDict

import torch

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EPOCHS = {"less": 12, "full": 200}
# per benchmark dataset: its evaluation sets and its number of classes
EVAL_SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
             "cifar100": ("x-valid", "x-test", "ori-test"),
             "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def structure(ops):
    """The structure string of six edge ops, in the edge order 1<-0, 2<-0, 2<-1, 3<-0, ..."""
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


ALL_NONE = structure(["none"] * 6)
ALL_CONV3 = structure(["nor_conv_3x3"] * 6)
CELLS = (
    ALL_NONE,
    ALL_CONV3,
    structure(["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1",
               "skip_connect"]),
    structure(["skip_connect"] * 6),
    structure(["avg_pool_3x3"] * 6),
    structure(["nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3",
               "nor_conv_1x1"]),
    structure(["nor_conv_1x1"] * 6),
)
# how good each cell is (rough order of the real benchmark); drives every accuracy below
QUALITY = dict(zip(CELLS, (0.0, 0.95, 0.8, 0.35, 0.45, 0.9, 0.7)))
# cells evaluated on fewer seeds than the default three, per benchmark dataset
SEEDS = {ALL_NONE: {"cifar100": (777,)}, CELLS[4]: {"ImageNet16-120": (777, 888),
                                                   "cifar10": (888, 999)}}
DEFAULT_SEEDS = (777, 888, 999)
# the two cells whose CIFAR-100 x-test accuracy is the same on every seed (a rank tie)
TIED = (CELLS[3], CELLS[4])
# what each benchmark dataset tops out at after 200 epochs
TOP = {"cifar10-valid": 91.0, "cifar10": 94.0, "cifar100": 73.0, "ImageNet16-120": 46.0}
SET_SHIFT = {"train": 5.0, "x-valid": -0.4, "x-test": 0.0, "ori-test": 0.3}
SEED_SHIFT = {777: -0.35, 888: 0.05, 999: 0.42}


def all_structures():
    """All 5^6 structure strings, itertools.product order over OPS."""
    return [structure(ops) for ops in itertools.product(OPS, repeat=6)]


def final_value(cell, dataset, setname, seed, hp):
    """The accuracy (%) after the last epoch of one trial."""
    if hp == "less":  # 12 epochs: far lower, clearly not a 200-epoch number
        return round(20.0 + 10.0 * QUALITY[cell] + SET_SHIFT[setname] / 10 + seed / 1e4, 6)
    chance = 100.0 / CLASSES[dataset]
    if cell == ALL_NONE:  # the network outputs a constant: chance level, no seed spread
        return chance if setname != "train" else chance + 0.01 * (seed % 7)
    if setname == "x-test" and dataset == "cifar100" and cell in TIED:
        return 50.0 + SEED_SHIFT[seed]
    value = chance + (TOP[dataset] - chance) * QUALITY[cell] + SET_SHIFT[setname]
    return round(value + SEED_SHIFT[seed] * (1 + QUALITY[cell]), 6)


# The real benchmark's parameter counts (M) of its smallest and largest cells: no conv at all
# (e.g. every edge `none`) and every edge nor_conv_3x3, as extracted from
# NAS-Bench-201-v1_1-096897.pth by third parties (its min/max per dataset, e.g. HPOBench's
# NAS-Bench-201 tables). The other fixture cells get made-up counts.
PUBLISHED_PARAMS = {
    ALL_NONE: {"cifar10-valid": 0.073306, "cifar10": 0.073306, "cifar100": 0.079156,
               "ImageNet16-120": 0.080456},
    ALL_CONV3: {"cifar10-valid": 1.531546, "cifar10": 1.531546, "cifar100": 1.537396,
                "ImageNet16-120": 1.538696},
}


def params_m(cell, dataset):
    """Parameter count in M (the benchmark stores it per dataset: the head has more classes)."""
    if cell in PUBLISHED_PARAMS:
        return PUBLISHED_PARAMS[cell][dataset]
    return round(0.08 + 1.0 * QUALITY[cell] + 0.00065 * CLASSES[dataset], 6)


def curve(final, epochs, bump):
    """Per-epoch values ending at `final`; the epoch before the last is `bump` higher."""
    out = OrderedDict((i, final * (i + 1) / epochs) for i in range(epochs))
    if epochs > 1:
        out[epochs - 2] = final + bump
    out[epochs - 1] = final
    return out


def results_count(api_utils, cell, dataset, seed, hp):
    """One trial of `cell` on `dataset`, as the official ResultsCount."""
    epochs = EPOCHS[hp]
    train = curve(final_value(cell, dataset, "train", seed, hp), epochs, 0.5)
    losses = OrderedDict((i, 2.0 - i / epochs) for i in range(epochs))
    config = {"name": "infer.tiny", "C": 16, "N": 5, "channel": 16, "num_cells": 5,
              "arch_str": cell, "class_num": CLASSES[dataset]}
    rc = api_utils.ResultsCount(dataset, None, train, losses, params_m(cell, dataset),
                                10.0 + 100 * params_m(cell, dataset), config, seed, epochs,
                                [0.012])
    rc.update_train_info(train, None, losses, OrderedDict((i, 7.5) for i in range(epochs)))
    accs, eval_losses, times = {}, {}, {}
    for setname in EVAL_SETS[dataset]:
        values = curve(final_value(cell, dataset, setname, seed, hp), epochs, 0.75)
        for i, v in values.items():
            accs[f"{setname}@{i}"] = v
            eval_losses[f"{setname}@{i}"] = 1.0
            times[f"{setname}@{i}"] = 0.9
    rc.update_eval(accs, eval_losses, times)
    return rc


def seeds_of(cell, dataset):
    return SEEDS.get(cell, {}).get(dataset, DEFAULT_SEEDS)


def write_official_file(path):
    """Write the benchmark file to `path`; returns the ground truth it holds:

    {"structures": CELLS, "meta_archs": [...],
     cell: {"index": int,
            "seeds": {dataset: (seed, ...)},
            "params": {dataset: M},
            "full" / "less": {dataset: {setname: [final value per seed, seed order]}}}}
    """
    from nas_201_api import api_utils

    meta_archs = all_structures()
    random.Random(201).shuffle(meta_archs)
    index_of = {s: i for i, s in enumerate(meta_archs)}
    truth = {"structures": CELLS, "meta_archs": meta_archs}
    arch2infos = {}
    for cell in CELLS:
        idx = index_of[cell]
        entry = {"index": idx, "seeds": {}, "params": {}, "full": {}, "less": {}}
        state = {}
        for hp in ("less", "full"):
            results = api_utils.ArchResults(idx, cell)
            for dataset, sets in EVAL_SETS.items():
                seeds = seeds_of(cell, dataset)
                for seed in seeds:
                    results.update(dataset, seed, results_count(api_utils, cell, dataset, seed,
                                                                hp))
                entry[hp][dataset] = {s: [final_value(cell, dataset, s, seed, hp)
                                          for seed in seeds] for s in ("train",) + sets}
                entry["seeds"][dataset] = tuple(seeds)
                entry["params"][dataset] = params_m(cell, dataset)
            state[hp] = results.state_dict()
        arch2infos[idx] = state
        truth[cell] = entry
    torch.save({"meta_archs": meta_archs, "arch2infos": arch2infos,
                "evaluated_indexes": sorted(arch2infos)}, path)
    return truth


def synthetic_frame(seed=0):
    """A table of the full benchmark's size: all 5^6 cells on the three datasets, random
    accuracies (written with spaces.nb201.table.write_table)."""
    import numpy as np
    import pandas as pd

    from spaces.nb201.table import BENCH_DATASET

    rng = np.random.default_rng(seed)
    cells = all_structures()
    n = len(cells)
    parts = []
    for dataset, top in zip(BENCH_DATASET, (94.0, 73.0, 46.0)):
        test = np.round(rng.uniform(10.0, top, n), 4)  # 4 decimals: real ties happen
        parts.append(pd.DataFrame({
            "structure": cells, "index": np.arange(n), "dataset": dataset,
            "train_acc": test + 5, "valid_acc": test - 0.3, "test_acc": test,
            "test_acc_std": rng.uniform(0, 1, n), "seeds": rng.integers(1, 4, n),
            "params": np.round(rng.uniform(0.07, 1.6, n), 6)}))
    return pd.concat(parts, ignore_index=True)
