"""The paper's central claims on the digits set (scikit-learn, CPU), over several seeds:

(a) S2: skip_connect ops kept by magnitude vs PT, and the retrained test accuracy of both;
(b) S4: noise ops kept by magnitude vs PT, with the supernet's own valid accuracy;
(c) S2: Figure 2's counts (the op alpha picks vs the op discretisation accuracy picks, per edge);
(d) DARTS space: the mean Kendall tau of alpha vs discretisation accuracy on 3 edges (Figure 1);
(e) S2: magnitude, PT and PT-Mag from one supernet, all retrained, in the MLflow experiment
    `selectors_compare` (the README's MLflow screenshot: scripts/mlflow_screenshot.py);
(f) DARTS space: Zero-Cost-PT on the untrained supernet (its pool of 10, post-validated), PT
    and magnitude from the quickstart's 6-epoch supernet; wall seconds of each selection (a
    runner process without retrain), then each genotype retrained the same way
    (`run.genotype = <run id>`, the quickstart's C12/L5 10-epoch retrain, the same seed).
    "search s" is the wall time of the search process (the magnitude parse inside it: its
    "selection s"); PT's and Zero-Cost-PT's "selection s" are the wall times of their own
    runner processes (start-up, loading, every nested run and the post-validation included).
(g) DARTS space: the whole selection line on the same seeds: magnitude, PT, Zero-Cost-PT,
    Shapley values and IS-DARTS's information measure as selectors of the quickstart's
    supernet, then Shapley-NAS and IS-DARTS as searches of their own at the quickstart's
    size (6 epochs: Shapley-NAS steps alpha in the last 3, 3 orders of 256 images each;
    IS-DARTS prunes at the starts of epochs 2 and 4), every genotype retrained the same way.

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
import time

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


def timed_runner(gin_files, binds, env):
    t = time.perf_counter()
    runner(gin_files, binds, env)
    return time.perf_counter() - t


def zero_cost(client, env, seed, tune_epochs):
    """(f): the three selectors on the quickstart's DARTS space, selection timed, all retrained."""
    name = "evidence_zero_cost"
    base = ["gin/quickstart.gin"]
    common = [f"run.seed = {seed}", f"run.experiment_name = '{name}'", "run.do_retrain = False"]
    search_s = timed_runner(base, common, env)  # search + magnitude parse
    supernet = latest(client, name).info.run_id
    pt_s = timed_runner(base + ["gin/selectors/pt.gin"],
                        common + [f"source.run = '{supernet}'",
                                  f"select.tune_epochs = {tune_epochs}"], env)
    pt = latest(client, name).info.run_id
    zc_s = timed_runner(base + ["gin/selectors/zc_pt.gin"], common + ["search.epochs = 0"], env)
    exp = client.get_experiment_by_name(name).experiment_id
    zc = client.search_runs([exp], "tags.run_mode = 'pool'",
                            order_by=["attributes.start_time DESC"])[0]
    magnitude_s = sum(m.value for m in client.get_metric_history(supernet, "select/seconds"))
    rows = []
    for sel, run_id, search, select in (("magnitude", supernet, search_s, magnitude_s),
                                        ("pt", pt, search_s, pt_s),
                                        ("zc-pt (untrained)", zc.info.run_id, 0.0, zc_s)):
        runner(base, [f"run.seed = {seed}", f"run.experiment_name = '{name}_retrain'",
                      f"run.genotype = '{run_id}'"], env)
        retrained = latest(client, f"{name}_retrain")
        rows.append({"seed": seed, "selector": sel, "search s": search, "selection s": select,
                     "skip_connect kept": client.get_run(run_id).data.tags["genotype"].count(
                         "'skip_connect'"),
                     "test_acc": retrained.data.metrics.get("test_acc", float("nan"))})
        print(rows[-1], flush=True)
    return rows


LINE_SELECTORS = (  # (name, gin files on top of the quickstart, bindings)
    ("pt", ["gin/selectors/pt.gin"], []),
    ("shapley", ["gin/selectors/shapley.gin"], ["Shapley.batch_size = 256"]),
    ("information", ["gin/selectors/information.gin"], []),
)
LINE_METHODS = (
    ("shapley-nas", ["gin/methods/shapley.gin"],
     ["ShapleyNas.warmup_epochs = 3", "ShapleyNas.samples = 3", "ShapleyNas.batch_size = 256",
      "search.batch_size = 64", "search.lr = 0.025"]),  # the quickstart's own optimiser
    ("is-darts", ["gin/methods/is_darts.gin"], ["IsDarts.steps = 2", "IsDarts.interval = 2"]),
)


def selection_line(client, env, seed, tune_epochs):
    """(g): every selector on one supernet, the two methods on their own searches, all
    retrained the same way."""
    name, base = "evidence_selection_line", ["gin/quickstart.gin"]
    common = [f"run.seed = {seed}", f"run.experiment_name = '{name}'", "run.do_retrain = False"]
    search_s = timed_runner(base, common, env)  # search + the magnitude parse
    supernet = latest(client, name).info.run_id
    chosen = {"magnitude": (supernet, search_s)}
    for sel, files, binds in LINE_SELECTORS:
        tune = [f"select.tune_epochs = {tune_epochs}"] if sel == "pt" else []
        t = timed_runner(base + files, common + [f"source.run = '{supernet}'"] + tune + binds,
                         env)
        chosen[sel] = (latest(client, name).info.run_id, t)
    t = timed_runner(base + ["gin/selectors/zc_pt.gin"], common + ["search.epochs = 0"], env)
    exp = client.get_experiment_by_name(name).experiment_id
    chosen["zc-pt"] = (client.search_runs([exp], "tags.run_mode = 'pool'",
                                          order_by=["attributes.start_time DESC"])[0]
                       .info.run_id, t)
    for method, files, binds in LINE_METHODS:
        t = timed_runner(base + files + ["gin/selectors/magnitude.gin"],
                         common + binds + ["select.tune_epochs = 0"], env)
        chosen[method] = (latest(client, name).info.run_id, t)
    rows = []
    for sel, (run_id, seconds) in chosen.items():
        runner(base, [f"run.seed = {seed}", f"run.experiment_name = '{name}_retrain'",
                      f"run.genotype = '{run_id}'"], env)
        retrained = latest(client, f"{name}_retrain")
        rows.append({"seed": seed, "selector or method": sel, "process s": seconds,
                     "skip_connect kept": client.get_run(run_id).data.tags["genotype"].count(
                         "'skip_connect'"),
                     "test_acc": retrained.data.metrics.get("test_acc", float("nan"))})
        print(rows[-1], flush=True)
    return rows


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
    p.add_argument("--only", nargs="+", default=["a", "b", "c", "d", "e", "f", "g"])
    p.add_argument("--pt-tune-epochs", type=int, default=5,
                   help="select.tune_epochs of PT in (f) (the paper's 5)")
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
    if "f" in a.only:
        found["f"] = [r for s in a.seeds for r in zero_cost(client, env, s, a.pt_tune_epochs)]
    if "g" in a.only:
        found["g"] = [r for s in a.seeds
                      for r in selection_line(client, env, s, a.pt_tune_epochs)]
    for claim, rows in found.items():
        print(f"\n({claim})\n{table(rows)}")


if __name__ == "__main__":
    main()
