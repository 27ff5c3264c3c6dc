"""Data-parallel scaling under torchrun: seconds per epoch and images/s of the supernet search
and of the retrain, for 1, 2, 4, ... processes (one per GPU), with the per-process batch fixed
(weak scaling: the global batch grows with the processes, as users scale it).

The data is synthetic CIFAR-10 written in the official pickle format (a GPU machine has no
dataset and no network); throughput does not depend on the pixels. Each launch is a real
`torchrun -m runner` job tracked to a sqlite file; the figures are read back from MLflow
(search/seconds, retrain/seconds; the first epoch, with its warm-up, is left out).

Usage, on a node with N GPUs:  python bench/ddp_scaling.py --nproc 1 2 4 8
       here (gloo, CPUs, tiny):  python bench/ddp_scaling.py --cpu --nproc 1 2
Prints one markdown table: phase, processes, global batch, s/epoch, images/s, speedup, efficiency.
"""
import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOTYPE = "darts_v2"  # DARTS V2 (Liu et al. 2019), a published genotype by name


def write_cifar10(root, n_train, n_test, seed=0):
    """Random images and labels in torchvision's CIFAR-10 'python version' layout."""
    rng = np.random.RandomState(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)

    def dump(name, n, **extra):
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": rng.randint(0, 10, n).tolist(), **extra}, f, protocol=2)

    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        dump(f"data_batch_{i}", len(part))
    dump("test_batch", n_test)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)]}, f, protocol=2)


def launch(nproc, gin_files, binds, folder):
    """One torchrun job (a plain process for nproc 1); returns its MLflow client and run."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder}/mlflow.db"
    cmd = [sys.executable, "-m", "runner"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "runner"]
    for g in gin_files:
        cmd += ["--gin", os.path.join(ROOT, "gin", g)]
    for b in binds:
        cmd += ["--bind", b]
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri,
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{nproc} processes failed:\n{done.stderr[-3000:]}")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("scaling")
    return client, client.search_runs([exp.experiment_id])[0]


def seconds_per_epoch(client, run, key):
    steps = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
    later = [m.value for m in steps[1:]] or [m.value for m in steps]
    return statistics.median(later)


def measure(a, nproc, data_root, folder):
    base = [f"dataset.root = '{data_root}'", "dataset.verify_md5 = False",
            f"run.device = '{'cpu' if a.cpu else 'auto'}'", "run.plots = False",
            "run.experiment_name = 'scaling'"]
    sizes = (["supernet.C = 4", "supernet.layers = 3", "retrain.C = 4", "retrain.layers = 3"]
             if a.cpu else [])
    rows = []
    search_bs, retrain_bs = a.search_batch * nproc, a.retrain_batch * nproc
    if "search" in a.phases:
        client, run = launch(nproc, ["s3_cifar10.gin"], base + sizes + [
            f"search.epochs = {a.epochs}", f"search.batch_size = {search_bs}",
            "run.do_select = False"], os.path.join(folder, "search"))
        s = seconds_per_epoch(client, run, "search/seconds")
        rows.append(("search", nproc, search_bs, s, a.train / 2 / s))  # the weight half
    if "retrain" in a.phases:
        client, run = launch(nproc, ["retrain/darts_cifar10.gin"], base + sizes + [
            f"run.genotype = {GENOTYPE!r}", f"retrain.epochs = {a.epochs}",
            f"retrain.batch_size = {retrain_bs}"], os.path.join(folder, "retrain"))
        s = seconds_per_epoch(client, run, "retrain/seconds")
        rows.append(("retrain", nproc, retrain_bs, s, a.train / s))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--cpu", action="store_true", help="gloo on CPUs, tiny networks and data")
    p.add_argument("--phases", nargs="+", default=["search", "retrain"],
                   choices=["search", "retrain"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train", type=int, default=None, help="synthetic train images")
    p.add_argument("--search-batch", type=int, default=64, help="per process")
    p.add_argument("--retrain-batch", type=int, default=96, help="per process")
    a = p.parse_args()
    a.train = a.train or (64 if a.cpu else 10000)
    if a.cpu:
        a.search_batch, a.retrain_batch = min(a.search_batch, 8), min(a.retrain_batch, 8)
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(os.path.join(tmp, "data"), a.train, max(a.train // 5, 10))
        rows = []
        for n in a.nproc:
            folder = os.path.join(tmp, f"np{n}")
            os.makedirs(os.path.join(folder, "search"))
            os.makedirs(os.path.join(folder, "retrain"))
            rows += measure(a, n, os.path.join(tmp, "data"), folder)
    one = {phase: ips for phase, n, _, _, ips in rows if n == a.nproc[0]}
    print("| phase | processes | global batch | s/epoch | images/s | speedup | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for phase, n, bs, s, ips in rows:
        speed = ips / one[phase]
        print(f"| {phase} | {n} | {bs} | {s:.2f} | {ips:.0f} | {speed:.2f} | "
              f"{speed * a.nproc[0] / n:.2f} |")


if __name__ == "__main__":
    main()
