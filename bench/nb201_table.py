"""How fast the NAS-Bench-201 lookup table loads at the full benchmark's size.

Writes a synthetic table of all 5^6 = 15,625 cells on the three datasets (made-up numbers,
the real table's schema, through spaces.nb201.table.write_table) to a temporary folder,
then prints its file size, a cold load in a fresh process (pyarrow's import included; the
module itself, which imports the spaces package and so torch, is imported first and not
timed), the median of warm loads in this process and the time per lookup.

    python bench/nb201_table.py [--repeat 5] [--table PATH]

With --table PATH it times an existing table (e.g. one converted from the official file)
instead of writing a synthetic one.
"""
import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's packages
# a fresh process: the module (and torch) untimed, then the first Table.load
COLD = ("import sys, time; from spaces.nb201.table import Table; t = time.perf_counter(); "
        "Table.load(sys.argv[1]); print(time.perf_counter() - t)")

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def structures():
    """All 5^6 structure strings, itertools.product order over OPS."""
    return [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"
            for a, b, c, d, e, f in itertools.product(OPS, repeat=6)]


def synthetic(out):
    import numpy as np
    import pandas as pd

    from spaces.nb201.table import BENCH_DATASET, write_table

    rng = np.random.default_rng(0)
    cells = structures()
    n = len(cells)
    parts = []
    for dataset in BENCH_DATASET:
        test = rng.uniform(10.0, 94.0, n)
        parts.append(pd.DataFrame({
            "structure": cells, "index": np.arange(n), "dataset": dataset,
            "train_acc": test + rng.uniform(0, 6, n), "valid_acc": test - rng.uniform(0, 1, n),
            "test_acc": test, "test_acc_std": rng.uniform(0, 1, n),
            "seeds": rng.integers(1, 4, n), "params": rng.uniform(0.07, 1.6, n)}))
    write_table(pd.concat(parts, ignore_index=True), out, source="synthetic")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--table", default=None, help="time this table instead of a synthetic one")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.table or os.path.join(tmp, "nb201_table.parquet")
        if args.table is None:
            synthetic(path)
        from spaces.nb201.table import Table

        first = float(subprocess.run([sys.executable, "-c", COLD, path], check=True,
                                     capture_output=True, text=True, cwd=ROOT).stdout)
        table = Table.load(path)
        loads = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            Table.load(path)
            loads.append(time.perf_counter() - t0)
        cells = table.structures()
        t0 = time.perf_counter()
        for cell in cells:
            table.lookup(cell, "cifar10")
        per_lookup = (time.perf_counter() - t0) / len(cells)
        size = os.path.getsize(path)
    print(f"table: {'synthetic' if args.table is None else args.table}, {len(cells)} cells, "
          f"datasets {', '.join(table.datasets())}")
    print(f"file size:        {size / 2 ** 20:.2f} MiB")
    print(f"cold load:        {first * 1e3:.0f} ms (fresh process, pyarrow import included)")
    print(f"load (median {args.repeat}): {statistics.median(loads) * 1e3:.0f} ms")
    print(f"lookup:           {per_lookup * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
