"""NAS-Bench-201 lookup (gin `lookup.*`): on a family with a tabular benchmark (NAS-Bench-201) the selected cell's
trained accuracy is read from the benchmark instead of retraining (darts-pt nasbench201), for the
final cell and for the cell each decision state gives (decided edges plus magnitude elsewhere).

A missing table never stops a run: it searches and selects, the `bench_lookup` tag says the
lookup was skipped, and one line says how to make the table.
"""
import math
import sys

import gin

# what a lookup logs, and the names it gets on the decision timeline
FINAL = ("test_acc", "valid_acc", "train_acc", "test_acc_std", "rank", "params", "seeds",
         "num_cells")
PER_DECISION = ("test_acc", "valid_acc", "rank")


class Judge:
    """genotype -> the benchmark's numbers for it ({} for a cell the table lacks)."""

    def __init__(self, table, dataset, name):
        self.table, self.dataset, self.name = table, dataset, name

    def __call__(self, genotype):
        try:
            found = self.table.lookup(str(genotype), self.dataset)
        except KeyError:
            return {}
        return {k: float(found[k]) for k in FINAL if k in found}


@gin.configurable("lookup", denylist=["space", "dataset_name", "tracker"])
def judge_for(space, dataset_name, tracker, table=None, enabled=True):
    """A Judge for the space's benchmark on `dataset_name`, or None (no benchmark, lookup off,
    dataset not in it, or no table at `table`; the last three are tagged on the run).

    table: the converted table (None: the family's default path). A table that exists but
    cannot be read is an error before any training.
    """
    bench = space.family.benchmark
    if bench is None:
        return None
    path = table or bench.default_table
    if not enabled:
        return skipped(tracker, "lookup.enabled = False")
    if dataset_name not in bench.datasets:
        return skipped(tracker, f"{bench.name} has no {dataset_name} results")
    try:
        loaded = bench.load(path)
    except FileNotFoundError:
        print(f"runner: no {bench.name} table at {path}: the benchmark lookup is skipped; "
              f"make the table once with `{bench.make}`", file=sys.stderr, flush=True)
        return skipped(tracker, f"no table at {path}")
    if dataset_name not in loaded.datasets():
        return skipped(tracker, f"the table at {path} has no {dataset_name} results")
    tracker.tags({"bench_lookup": f"{bench.name} {bench.datasets[dataset_name]} ({path})"})
    return Judge(loaded, bench.datasets[dataset_name], bench.name)


def skipped(tracker, why):
    tracker.tags({"bench_lookup": f"skipped: {why}"})
    return None


def decision_columns(found):
    """The per-decision lookup as decision-table columns / step metrics (`bench_*`)."""
    return {f"bench_{k}": v for k, v in found.items() if k in PER_DECISION}


def log_final(tracker, judge, genotype):
    """The selected cell's benchmark numbers as `bench/*` metrics; returns them."""
    found = judge(genotype)
    if not found:
        tracker.tags({"bench_lookup": f"skipped: {genotype} not in the {judge.name} table"})
        return {}
    names = {"params": "params_M"}  # the benchmark stores parameters in millions
    tracker.ensure_logged({f"bench/{names.get(k, k)}": v for k, v in found.items()
                           if math.isfinite(v)}, step=0)
    return found
