"""NAS-Bench-201 accuracies of NB201 cells, from a compact table converted once.

The official benchmark file (NAS-Bench-201-v1_0-e61699.pth / v1_1-096897.pth, gigabytes,
minutes to load) is read once through the official API package (`pip install nas-bench-201`)
by `convert()` / `runner nb201-table`, which keeps only what `Table.lookup` answers in a small
parquet file; `Table.load` reads that in milliseconds and needs neither the API package nor
the original file.

What the numbers are (NAS-Bench-201 paper, Table 4; darts-pt reports the same):
- the 200-epoch schedule only (hp='200', the 'full' entries of the v1.0/v1.1 files; the
  12-epoch 'less' entries are never read), the last epoch, averaged over the benchmark's
  seeds: exactly `get_more_info(index, dataset, hp='200', is_random=False)`;
- cifar10: test = 'ori-test' of the 'cifar10' entry (trained on train + valid);
  valid = 'x-valid' of the 'cifar10-valid' entry (trained on the train half only), i.e. the
  'valid-accuracy' of get_more_info(index, 'cifar10-valid', ...): the 'cifar10' entry has no
  validation set of its own (decided; darts-pt logs no CIFAR-10 validation accuracy);
  train = 'train' of the 'cifar10' entry; `seeds`/`params` from 'cifar10';
- cifar100 and ImageNet16-120: valid = 'x-valid', test = 'x-test' (the two halves of the
  original test set; 'ori-test' is both together and is not used), train = 'train';
- test_acc_std: the population standard deviation (ddof=0) of the final test accuracy over
  the seeds of the test entry (0 for a single seed); seeds: how many seeds that is;
- params: the benchmark's stored parameter count (M) of the network for that dataset (the
  classifier head differs: 10 / 100 / 120 classes);
- rank: 1 + the number of cells in the table with a strictly higher test accuracy on that
  dataset (1 = best; equal accuracies share the better rank), over the table's cells.

Table layout (one row per cell and dataset):
  structure str, index int32 (the benchmark's arch index, its `meta_archs` order),
  dataset str (our run name: cifar10 / cifar100 / imagenet16), train_acc, valid_acc (NaN where
  the benchmark has none), test_acc, test_acc_std float64, seeds int16, params float64;
  parquet key-value metadata b"nb201_table" holds a JSON header (format, hp, source).

Only torch-free standard modules at import time; pandas / pyarrow / the API are imported
where they are needed.
"""
import json
import math
import os
import pickle

BENCH_DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}
HP = "200"  # the 200-epoch schedule; the API's other one, '12', is never read
# per benchmark dataset: (entry, set) of the validation accuracy, and the test set's name
VALID_FROM = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "x-valid"),
              "ImageNet16-120": ("ImageNet16-120", "x-valid")}
TEST_SET = {"cifar10": "ori-test", "cifar100": "x-test", "ImageNet16-120": "x-test"}
COLUMNS = {"structure": "str", "index": "int32", "dataset": "str", "train_acc": "float64",
           "valid_acc": "float64", "test_acc": "float64", "test_acc_std": "float64",
           "seeds": "int16", "params": "float64"}
META_KEY = b"nb201_table"
FORMAT = 1
OFFICIAL_FILE = "NAS-Bench-201-v1_1-096897.pth"
INSTALL = "pip install nas-bench-201"


def default_table_path():
    return "data/nb201_table.parquet"


def convert_command(out):
    return f"runner nb201-table --source {OFFICIAL_FILE} --out {out}"


def _one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Table:
    """The converted benchmark: `Table.load(path).lookup(structure, "cifar10")`."""

    def __init__(self, columns, path=None, header=None):
        """columns: column name -> numpy array (rows as in the file); see Table.load."""
        import numpy as np

        self.path, self.header = path, dict(header or {})
        structs = list(columns["structure"])
        codes = {}
        for s in structs:
            codes.setdefault(s, len(codes))
        self._code = codes
        code = np.fromiter((codes[s] for s in structs), dtype=np.int64, count=len(structs))
        self._cols = {k: np.asarray(columns[k]) for k in COLUMNS if k != "structure"}
        datasets = self._cols["dataset"]
        self._rows, self._rank, self._count = {}, np.zeros(len(structs)), {}
        for name in BENCH_DATASET:
            rows = np.flatnonzero(datasets == name)
            if not len(rows):
                continue
            if len(np.unique(code[rows])) != len(rows):
                raise ValueError(f"a cell appears twice for {name}")
            if np.isnan(self._cols["test_acc"][rows]).any():
                raise ValueError(f"a test accuracy is NaN for {name}")
            at = np.full(len(codes), -1, dtype=np.int64)
            at[code[rows]] = rows
            test = self._cols["test_acc"][rows]
            ordered = np.sort(test)
            # how many are strictly better = n - (how many are <= this one)
            self._rank[rows] = 1 + len(rows) - np.searchsorted(ordered, test, side="right")
            self._rows[name], self._count[name] = at, len(rows)
        unknown = set(np.unique(datasets).tolist()) - set(BENCH_DATASET)
        if unknown:
            raise ValueError(f"unknown datasets {sorted(unknown)}")
        first = {}
        for s, i in zip(structs, self._cols["index"].tolist()):
            first.setdefault(s, i)
        self._structures = sorted(first, key=first.get)

    @classmethod
    def load(cls, path=None):
        """Read a table written by `convert` / `write_table` (default: default_table_path())."""
        path = os.fspath(default_table_path() if path is None else path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no NAS-Bench-201 table at {path}; convert the official "
                                    f"file once with: {convert_command(path)}")
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
            header = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
            missing = [c for c in COLUMNS if c not in table.column_names]
            if missing:
                raise ValueError(f"columns {missing} missing")
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}, expected {FORMAT}")
            columns = {c: table.column(c).to_numpy() for c in COLUMNS}
            return cls(columns, path, header)
        except Exception as e:  # noqa: BLE001 - any unreadable file: one line naming it
            raise ValueError(f"{path}: not a readable NAS-Bench-201 table ({_one_line(e)}); "
                             f"convert it again with: {convert_command(path)}") from None

    def structures(self):
        """The table's structure strings, in benchmark index order."""
        return list(self._structures)

    def datasets(self):
        return list(self._rows)

    def __len__(self):
        return len(self._structures)

    def __contains__(self, structure):
        return str(structure) in self._code

    def lookup(self, structure, dataset):
        """The benchmark's numbers for one cell (a structure string or a Structure) on one
        dataset (cifar10 / cifar100 / imagenet16, or the benchmark's name), all as floats."""
        name = _run_name(dataset)
        key = str(structure)
        if name not in self._rows:
            raise KeyError(f"the NAS-Bench-201 table {self.path} has no {name} results")
        code = self._code.get(key)
        row = -1 if code is None else int(self._rows[name][code])
        if row < 0:
            raise KeyError(f"{key!r} is not a cell of the NAS-Bench-201 table {self.path} "
                           f"for {name}")
        out = {k: float(self._cols[k][row]) for k in
               ("test_acc", "valid_acc", "train_acc", "test_acc_std", "seeds", "params",
                "index")}
        out["rank"] = float(self._rank[row])
        out["num_cells"] = float(self._count[name])
        return out


def _run_name(dataset):
    if dataset in BENCH_DATASET:
        return dataset
    for ours, theirs in BENCH_DATASET.items():
        if dataset == theirs:
            return ours
    raise ValueError(f"unknown dataset {dataset!r} for NAS-Bench-201 (one of "
                     f"{', '.join(BENCH_DATASET)})")


def write_table(df, out, source=None):
    """Write a DataFrame with the COLUMNS (one row per cell and dataset) as the table at
    `out` (atomically: a half-written file never replaces a good one). Returns the number of
    distinct cells."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {missing}")
    frame = pd.DataFrame({c: df[c].to_numpy(dtype=object if t == "str" else t)
                          for c, t in COLUMNS.items()})
    unknown = set(frame["dataset"]) - set(BENCH_DATASET)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)} (one of {list(BENCH_DATASET)})")
    if frame.duplicated(["structure", "dataset"]).any():
        raise ValueError("a cell appears twice for one dataset")
    if not np.isfinite(frame["test_acc"].to_numpy()).all():
        raise ValueError("every row needs a test accuracy")
    order = frame["dataset"].map({d: i for i, d in enumerate(BENCH_DATASET)})
    frame = frame.assign(_order=order).sort_values(["_order", "index"], kind="stable")
    schema = pa.schema([(c, pa.string() if t == "str" else pa.from_numpy_dtype(np.dtype(t)))
                        for c, t in COLUMNS.items()])
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=schema, preserve_index=False)
    header = {"format": FORMAT, "hp": HP, "source": source}
    table = table.replace_schema_metadata({META_KEY: json.dumps(header).encode()})
    out = os.fspath(out)
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return int(frame["structure"].nunique())


def _open_api(source):
    """The official API on `source`: a NAS-Bench-201 .pth file (nas_201_api), or NATS-Bench's
    topology benchmark (nats_bench): its `-simple` folder (fast mode, one small file per
    cell) or its .pickle.pbz2 file."""
    natsbench = os.path.isdir(source) or source.endswith(".pickle.pbz2")
    package = "nats_bench" if natsbench else "nas-bench-201"
    try:
        if natsbench:
            import nats_bench
        else:
            from nas_201_api import NASBench201API
    except ImportError:
        raise ImportError(f"reading {source} needs the official API package: pip install "
                          f"{package}") from None
    if natsbench:
        return nats_bench.create(source, "tss", fast_mode=os.path.isdir(source),
                                 verbose=False), True
    try:
        return NASBench201API(source, verbose=False), False
    except pickle.UnpicklingError:
        # torch >= 2.6 loads with weights_only=True by default and refuses a file that holds
        # other Python objects than tensors and plain containers. The API then cannot open
        # the file by path (and it must not be patched); it also takes the loaded dict
        # instead. A full unpickle can run code from the file, so this is done only for the
        # file the user named on the command line, never for a file found elsewhere.
        import torch

        data = torch.load(source, map_location="cpu", weights_only=False)
        return NASBench201API(data, verbose=False), False


def _rows(api, index, structure):
    """The table rows of one evaluated cell, straight from the API's own queries."""
    import numpy as np

    rows = []
    for ours, bench in BENCH_DATASET.items():
        try:
            info = api.get_more_info(index, bench, hp=HP, is_random=False)
        except (KeyError, ValueError):  # the cell has no 200-epoch results on this dataset
            continue
        if info.get("test-accuracy") is None:
            continue
        entry, _ = VALID_FROM[bench]
        try:
            valid = (info if entry == bench else
                     api.get_more_info(index, entry, hp=HP, is_random=False))["valid-accuracy"]
        except (KeyError, ValueError):
            valid = math.nan
        # get_more_info has filled arch2infos_dict (NATS-Bench's fast mode reads the cell's
        # file on the first query). Seeds and costs come from the cell's ArchResults there:
        # the API's own get_cost_info/query_by_index deep-copy it on every call, which for
        # 15,625 cells takes many minutes.
        results = api.arch2infos_dict[index][HP]
        seeds = results.get_dataset_seeds(bench)
        per_seed = [results.get_metrics(bench, TEST_SET[bench], is_random=s)["accuracy"]
                    for s in seeds]
        rows.append({"structure": structure, "index": index, "dataset": ours,
                     "train_acc": float(info["train-accuracy"]),
                     "valid_acc": math.nan if valid is None else float(valid),
                     "test_acc": float(info["test-accuracy"]),
                     "test_acc_std": float(np.std(per_seed)), "seeds": len(seeds),
                     "params": float(results.get_compute_costs(bench)["params"])})
    return rows


def convert(source, out=None, log=None):
    """Read the official benchmark at `source` through its API package and write the compact
    table to `out` (default: default_table_path()). Returns the number of cells written."""
    import pandas as pd

    source = os.fspath(source)
    out = default_table_path() if out is None else os.fspath(out)
    if not os.path.exists(source):
        raise FileNotFoundError(f"no NAS-Bench-201 file at {source} (the official file is "
                                f"{OFFICIAL_FILE})")
    log = log or (lambda message: None)
    log(f"reading {source} with the official API (minutes for the full benchmark)")
    try:
        api, fast = _open_api(source)
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the API trips over: one line naming it
        raise ValueError(f"{source}: not a NAS-Bench-201 benchmark file the official API "
                         f"reads ({_one_line(e)})") from None
    # NATS-Bench's fast mode knows no cell before it is queried: walk them all
    indexes = range(len(api)) if fast else sorted(api.evaluated_indexes)
    rows = []
    for n, index in enumerate(indexes, 1):
        try:
            rows += _rows(api, index, api.arch(index))
        except AssertionError:  # fast mode: this cell's file is missing from the folder
            continue
        if fast:  # the cell is done: do not keep 15,625 cells' curves in memory
            api.arch2infos_dict.pop(index, None)
        if n % 2000 == 0:
            log(f"  {n} / {len(indexes)} cells")
    if not rows:
        raise ValueError(f"{source}: no cell has 200-epoch results for "
                         f"{', '.join(BENCH_DATASET.values())}")
    return write_table(pd.DataFrame(rows), out, source=os.path.basename(source.rstrip("/")))
