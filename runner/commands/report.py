"""`runner report --experiment NAME`: paper-style tables from the MLflow runs of experiments.

Protocol table: per (space, dataset, method, selector), final test error over seeds as best-of-N
and mean ± std (sample std, ddof=1). The paper reports one number per cell for S1-S4 (the best
of its runs, paper Table 3) and mean ± std plus the best for the DARTS space (paper Table 2): the
`headline` column says which. Benchmark table (NAS-Bench-201): the benchmark test accuracy of
the selected cell, mean ± std over seeds (paper Table 4), with valid accuracy and rank. Sweep
table: one row per trial. Retrain table: each retrain of a given genotype with the run that
selected it. Markdown and CSV.
"""
import argparse
import json
import os
import sys

KEYS = ["space", "dataset", "method", "selector"]
TAGS = ["seed", "sweep_study", "sweep_trial", "trajectory_epoch", "genotype_run",
        "pool_candidate"]
SOURCE = ["source_method", "source_selector", "source_dataset", "source_seed"]
BENCH = ["test_acc", "valid_acc", "rank"]


def runs_frame(tracker, experiments):
    """One row per FINISHED run: its tags, test_error, run id, sweep fields."""
    import pandas as pd

    rows = []
    for r in tracker.find_runs(experiments, "attributes.status = 'FINISHED'", missing_ok=False):
        t, m = r.tags, r.metrics
        rows.append({**{k: t.get(k) for k in KEYS + TAGS + SOURCE},
                     "sweep_params": t.get("sweep_params"), "test_error": m.get("test_error"),
                     **{f"bench_{k}": m.get(f"bench/{k}") for k in BENCH},
                     "run_id": r.run_id})
    return pd.DataFrame(rows, columns=KEYS + TAGS + SOURCE + ["sweep_params", "test_error"]
                        + [f"bench_{k}" for k in BENCH] + ["run_id"])


def headline(space_name):
    """How the paper reports a space over seeds: 'best' (of N) or 'mean' (± std)."""
    from spaces.cell import spaces

    space = spaces().get(space_name)
    return space.headline if space is not None else "mean"


def protocol_runs(df):
    """The runs of the seed protocol: sweep trials, trajectory points (selections from
    mid-search supernets), the candidates of a Zero-Cost-PT pool (the pool's run holds its
    result) and retrains of given genotypes (`retrain_table`) are left out."""
    return df[df.sweep_study.isna() & df.trajectory_epoch.isna() & df.genotype_run.isna()
              & df.pool_candidate.isna()]


def protocol_table(df):
    """Best-of-N and mean ± std of final test error per configuration (sweep trials apart)."""
    import pandas as pd

    done = protocol_runs(df[df.test_error.notna()])
    rows = []
    for key, g in done.groupby(KEYS, sort=True, dropna=False):
        err = g.test_error.astype(float)
        std = float(err.std(ddof=1)) if len(err) > 1 else float("nan")
        rows.append({**dict(zip(KEYS, key)), "N": len(err), "best": float(err.min()),
                     "mean": float(err.mean()), "std": std,
                     "headline": (f"best of {len(err)}" if headline(key[0]) == "best"
                                  else f"mean ± std of {len(err)}"),
                     "seeds": " ".join(sorted(str(s) for s in g.seed))})
    return pd.DataFrame(rows, columns=KEYS + ["N", "best", "mean", "std", "headline", "seeds"])


def benchmark_table(df):
    """Benchmark accuracy of the selected cell per configuration: mean ± std (ddof=1) over
    seeds of the test accuracy, the best, mean valid accuracy and mean rank (protocol_runs)."""
    import pandas as pd

    done = protocol_runs(df[df.bench_test_acc.notna()])
    cols = KEYS + ["N", "test_acc_mean", "test_acc_std", "test_acc_best", "valid_acc_mean",
                   "rank_mean", "seeds"]
    rows = []
    for key, g in done.groupby(KEYS, sort=True, dropna=False):
        acc = g.bench_test_acc.astype(float)
        rows.append({**dict(zip(KEYS, key)), "N": len(acc), "test_acc_mean": float(acc.mean()),
                     "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
                     "test_acc_best": float(acc.max()),
                     "valid_acc_mean": float(g.bench_valid_acc.astype(float).mean()),
                     "rank_mean": float(g.bench_rank.astype(float).mean()),
                     "seeds": " ".join(sorted(str(s) for s in g.seed))})
    return pd.DataFrame(rows, columns=cols)


def retrain_table(df):
    """Each retrain of a selected genotype (`run.genotype = '<run id>'`) beside the run that
    selected it: its search dataset, method, selector and seed, then the retrain's result."""
    import pandas as pd

    done = df[df.genotype_run.notna()]
    cols = ["genotype_run", *SOURCE, "dataset", "seed", "test_error", "run_id"]
    return pd.DataFrame(done[cols].sort_values(["genotype_run", "run_id"]).to_dict("records"),
                        columns=cols)


def sweep_table(df):
    """One row per sweep trial run: study, trial number, swept values, test error."""
    import pandas as pd

    trials = df[df.sweep_study.notna() & df.sweep_trial.notna()]
    rows = [{"study": r.sweep_study, "trial": int(r.sweep_trial),
             **json.loads(r.sweep_params or "{}"), "test_error": r.test_error,
             "run_id": r.run_id} for r in trials.itertuples()]
    return pd.DataFrame(rows).sort_values(["study", "trial"]) if rows else pd.DataFrame()


def markdown(df, floatfmt="{:.2f}"):
    """A GitHub markdown table (pandas' to_markdown needs the optional `tabulate`)."""
    if df.empty:
        return "(no runs)\n"

    def cell(v):
        if isinstance(v, float):
            return "–" if v != v else floatfmt.format(v)
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def write_tables(tables, folder):
    """`name.csv` and `name.md` per table, redacted (a table of params may show a storage URL
    logged before redaction existed); returns the paths."""
    from tracking.secrets import redact

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, df in tables.items():
        for ext, text in (("csv", df.to_csv(index=False)), ("md", markdown(df))):
            path = os.path.join(folder, f"{name}.{ext}")
            with open(path, "w") as f:
                f.write(redact(text))
            paths.append(path)
    return paths


def report(experiments, out="reports", log=True):
    """Print the tables, write them under `out`, and log them to a `report` run."""
    from tracking.mlflow_tracker import Tracker

    tracker = Tracker()
    tracker.check()
    df = runs_frame(tracker, experiments)
    tables = {"protocol": protocol_table(df), "benchmark": benchmark_table(df),
              "retrains": retrain_table(df), "sweeps": sweep_table(df)}
    for name, table in tables.items():
        print(f"## {name}\n\n{markdown(table)}")
    paths = write_tables(tables, out)
    if log:
        with tracker.run(experiments[0], run_name="report",
                         tags={"report_of": ",".join(experiments)}):
            for path in paths:
                tracker.artifact(path, "report")
    return tables


def main(argv=None):
    p = argparse.ArgumentParser(prog="runner report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", action="append", required=True, metavar="NAME",
                   help="MLflow experiment name (repeatable)")
    p.add_argument("--out", default="reports", help="folder for the CSV and markdown tables")
    p.add_argument("--no-log", action="store_true", help="do not log a `report` MLflow run")
    a = p.parse_args(argv)
    try:
        report(a.experiment, a.out, log=not a.no_log)
    except Exception as e:  # noqa: BLE001 - one line, as the runner
        from runner.config import one_line

        print(f"runner report: error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0
