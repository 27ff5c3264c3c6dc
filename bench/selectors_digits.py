"""PT vs magnitude on the same supernets: S4 `noise` kept and S2 skip counts (paper §5, Table 3).

Searches S2 and S4 supernets on the digits set for several seeds, then selects from each
supernet: magnitude in the search run, PT through `select.from_run`; prints a markdown table.
Usage: python bench/selectors_digits.py --seeds 0 1 2 [--tracking sqlite:///evidence.db]
"""
import argparse
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

SMALL = ["supernet.C = 6", "supernet.layers = 5", "search.epochs = 4",
         "Perturbation.subset = 128", "run.do_retrain = False", "run.device = 'cpu'"]


def runner(gin_files, binds, env):
    cmd = [sys.executable, "-m", "runner"]
    for g in gin_files:
        cmd += ["--gin", g]
    for b in SMALL + binds:
        cmd += ["--bind", b]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def latest(client, name):
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tracking", default="sqlite:///evidence.db")
    a = p.parse_args()
    env = dict(os.environ, MLFLOW_TRACKING_URI=a.tracking)
    client = MlflowClient(a.tracking)
    rows = []
    for space in ("s4", "s2"):
        for seed in a.seeds:
            name = f"evidence_{space}"
            base = ["gin/quickstart.gin", f"gin/spaces/{space}.gin"]
            common = [f"run.seed = {seed}", f"run.experiment_name = '{name}'"]
            runner(base, common, env)  # search, then magnitude selection (quickstart's selector)
            parent = latest(client, name)
            runner(base + ["gin/selectors/pt.gin"], common + [
                "select.tune_epochs = 1", f"select.from_run = '{parent.info.run_id}'"], env)
            for sel, run in (("magnitude", parent), ("pt", latest(client, name))):
                g = run.data.tags["genotype"]
                rows.append((space, seed, sel, g.count("'noise'"), g.count("'skip_connect'")))
                print(rows[-1], flush=True)
    print("\n| space | seed | selector | noise ops kept | skip_connect ops |\n|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")


if __name__ == "__main__":
    main()
