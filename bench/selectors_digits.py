"""The paper's central claims on the digits set (scikit-learn, CPU), over several seeds:

(a) S2: skip_connect ops kept by magnitude vs PT, and the retrained test accuracy of both;
(b) S4: noise ops kept by magnitude vs PT, with the supernet's own valid accuracy;
(c) S2: Figure 2's counts (the op alpha picks vs the op discretisation accuracy picks, per edge);
(d) DARTS space: the mean Kendall tau of alpha vs discretisation accuracy on 3 edges (Figure 1);
(e) S2: magnitude, PT and PT-Mag from one supernet, all retrained, in the MLflow experiment
    `selectors_compare` (the README's MLflow screenshot: scripts/mlflow_screenshot.py).

Every selection of one seed reads the same supernet (`source.run`). Sizes are the
quickstart's (gin/quickstart.gin: C8/L5 supernet, C12/L5 10-epoch retrain) unless set below.
Usage: python bench/selectors_digits.py --seeds 0 1 2 [--tracking sqlite:///evidence.db]
       [--search-epochs 20] [--tune-epochs 2] [--only a b c d e]
(c) alone selects from the S2 supernets an earlier (a) left in the same tracking store.
Prints one markdown table per claim.
"""
import argparse
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

CPU = ["run.device = 'cpu'", "run.plots = False"]


def runner(gin_files, binds, env):
    cmd = [sys.executable, "-m", "runner"]
    for g in gin_files:
        cmd += ["--gin", g]
    for b in CPU + binds:
        cmd += ["--bind", b]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def latest(client, name):
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]


def last(client, run_id, key):
    h = client.get_metric_history(run_id, key)
    return max(h, key=lambda m: m.step).value if h else float("nan")


def selectors(client, env, space, seed, epochs):
    """Magnitude in the search run, PT from its supernet; both retrained."""
    name = f"evidence_{space}"
    base = ["gin/quickstart.gin", f"gin/spaces/{space}.gin"]
    common = [f"run.seed = {seed}", f"run.experiment_name = '{name}'",
              f"search.epochs = {epochs}"]
    runner(base, common, env)
    parent = latest(client, name)
    runner(base + ["gin/selectors/pt.gin"],
           common + [f"source.run = '{parent.info.run_id}'"], env)
    rows = []
    for sel, run in (("magnitude", parent), ("pt", latest(client, name))):
        g = run.data.tags["genotype"]
        rows.append({"space": space, "seed": seed, "selector": sel,
                     "supernet_valid_acc": last(client, parent.info.run_id, "search/valid_acc"),
                     "noise": g.count("'noise'"), "skip_connect": g.count("'skip_connect'"),
                     "test_acc": run.data.metrics.get("test_acc", float("nan"))})
        print(rows[-1], flush=True)
    return rows, parent.info.run_id


def compare(client, env, seed, epochs):
    """(e): one S2 supernet, three selectors, each retrained."""
    name = "selectors_compare"
    base = ["gin/quickstart.gin", "gin/spaces/s2.gin"]
    common = [f"run.seed = {seed}", f"run.experiment_name = '{name}'",
              f"search.epochs = {epochs}"]
    runner(base, common, env)  # magnitude
    parent = latest(client, name).info.run_id
    rows = []
    for sel in ("pt", "pt_mag"):
        runner(base + [f"gin/selectors/{sel}.gin"],
               common + [f"source.run = '{parent}'"], env)
    for run in client.search_runs([client.get_experiment_by_name(name).experiment_id]):
        g = run.data.tags["genotype"]
        rows.append({"selector": run.data.tags["selector"], "seed": seed,
                     "skip_connect": g.count("'skip_connect'"),
                     "test_acc": run.data.metrics.get("test_acc", float("nan"))})
    return rows


def discretisation(client, env, analysis, space_gin, seed, supernet, binds=()):
    name = f"evidence_{analysis}"
    runner([f"gin/analysis/{analysis}.gin", "gin/quickstart.gin", space_gin, "gin/data/digits.gin"],
           [f"run.seed = {seed}", f"run.experiment_name = '{name}'",
            "run.analysis = @Discretisation()", *binds]
           + ([f"source.run = '{supernet}'"] if supernet else []), env)
    run = latest(client, name)
    return {"seed": seed, "picks": run.data.tags.get("analysis_picks"),
            "mean_kendall_tau": run.data.metrics.get("analysis/mean_kendall_tau", float("nan"))}


def searched(client, space, seed):
    """The newest supernet run of an earlier (a)/(b) run of this script for that seed."""
    exp = client.get_experiment_by_name(f"evidence_{space}")
    runs = client.search_runs([exp.experiment_id] if exp else [],
                              f"tags.seed = '{seed}' and tags.selector = 'magnitude'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"no evidence_{space} search run for seed {seed}: run (a) first")
    return runs[0].info.run_id


def table(rows):
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v)
                                     for v in r.values()) + " |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tracking", default="sqlite:///evidence.db")
    p.add_argument("--search-epochs", type=int, default=20,
                   help="S2/S4 supernet epochs (about 12 alpha steps each on digits)")
    p.add_argument("--tune-epochs", type=int, default=2,
                   help="Discretisation.tune_epochs for (c) and (d)")
    p.add_argument("--only", nargs="+", default=["a", "b", "c", "d", "e"])
    a = p.parse_args()
    env = dict(os.environ, MLFLOW_TRACKING_URI=a.tracking)
    client = MlflowClient(a.tracking)
    found, supernets = {}, {}
    for claim, space in (("a", "s2"), ("b", "s4")):
        if claim in a.only:
            rows = []
            for seed in a.seeds:
                r, supernets[(space, seed)] = selectors(client, env, space, seed, a.search_epochs)
                rows += r
            found[claim] = rows
    tune = f"Discretisation.tune_epochs = {a.tune_epochs}"
    if "c" in a.only:
        found["c"] = [discretisation(client, env, "discretisation_s2", "gin/spaces/s2.gin", s,
                                     supernets.get(("s2", s)) or searched(client, "s2", s),
                                     [tune]) for s in a.seeds]
    if "d" in a.only:  # the quickstart's own DARTS-space search (6 epochs)
        found["d"] = [discretisation(client, env, "discretisation_darts", "gin/spaces/darts.gin",
                                     s, None, [tune]) for s in a.seeds]
    if "e" in a.only:
        found["e"] = compare(client, env, a.seeds[0], a.search_epochs)
    for claim, rows in found.items():
        print(f"\n({claim})\n{table(rows)}")


if __name__ == "__main__":
    main()
