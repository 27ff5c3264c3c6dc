"""Zero-Cost-PT on NAS-Bench-201 at the authors' defaults (C16/N5, NASWOT on batches of 256, a
pool of 10, 100 post-validation batches of 256), ours beside the authors' code on this device.

    python bench/zc_nb201.py units [--reference DIR] [--threads 2]
    python bench/zc_nb201.py full  [--threads 2] [--keep DIR]

units: the two costs a run is made of, on the same weights and the same batch, each side's
       own code (the authors': nasbench201/op_score.py Jocab_Score on TinyNetworkDartsProj, and
       Scorers/scorer.py Jocab_Scorer on their cell_infers TinyNetwork): the NASWOT score of one
       masked supernet, and one post-validation batch of a candidate network. Both sides'
       masked-supernet scores and post-validation scores must agree (checked), and a full run
       costs pool x 6 edges x 5 ops masked scores plus distinct candidates x 100 batches.
full:  our whole run, `runner --gin gin/zc_pt_nb201_cifar10.gin`, on synthetic CIFAR-10 files in
       the official format (50,000 train images: post-validation reads the first 25,600), its
       wall time and the number of distinct candidates it post-validated, from MLflow.

Prints one JSON object per mode.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference" / "zerocost-pt"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OPS_SCORED = 10 * 6 * 5  # pool x edges x ops
ROUNDS = 100


def timed(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def reference_modules(ref):
    sys.path[:0] = [str(ref), str(ref / "nasbench201")]
    if not torch.cuda.is_available():  # the reference hard-codes .cuda(); a no-op on a CPU
        torch.Tensor.cuda = lambda self, *a, **k: self
        nn.Module.cuda = lambda self, *a, **k: self
    from nasbench201.cell_infers.tiny_network import TinyNetwork
    from nasbench201.cell_operations import SearchSpaceNames
    from nasbench201.genotypes import Structure
    from nasbench201.op_score import Jocab_Score
    from nasbench201.search_model_darts_proj import TinyNetworkDartsProj
    from Scorers.scorer import Jocab_Scorer
    return SimpleNamespace(TinyNetwork=TinyNetwork, ops=SearchSpaceNames["nas-bench-201"],
                           Structure=Structure, Jocab_Score=Jocab_Score,
                           Proj=TinyNetworkDartsProj, Scorer=Jocab_Scorer)


def copy_weights(src, dst):
    ours = [p for n, p in src.named_parameters() if n != "alphas"]
    with torch.no_grad():
        for a, b in zip(ours, dst.parameters(), strict=True):
            b.copy_(a)


def units(ref_dir, repeat):
    from runner.selection.pool import validation_score
    from runner.selection.proxies import naswot
    from runner.selection.zero_cost import ZeroCost
    from spaces.cell import get_space
    from spaces.nb201.genotype import Structure
    from spaces.nb201.network import Network
    from spaces.nb201.supernet import Nb201Supernet

    ref = reference_modules(ref_dir)
    torch.manual_seed(0)
    ours = Nb201Supernet(get_space("nb201"), C=16, layers=5, num_classes=10)
    args = SimpleNamespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4, nesterov=False)
    theirs = ref.Proj(C=16, N=5, max_nodes=4, num_classes=10, criterion=nn.CrossEntropyLoss(),
                      search_space=ref.ops, args=args)
    copy_weights(ours, theirs)
    theirs._arch_parameters.data.copy_(ours.alphas.data[0])
    x, y = torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,))
    crit = ZeroCost()
    mine, t_ours = timed(lambda: crit.score(ours, x, y, [(0, 0, 3)]), repeat)

    def their_masked():
        w = theirs.get_projected_weights()
        w[0] = w[0] * (torch.arange(5) != 3)
        return ref.Jocab_Score(theirs, x, y, weights=w)

    their, t_ref = timed(their_masked, 1)
    torch.manual_seed(1)
    net = Network(Structure.parse(ARCH), 16, 5, 10)
    tnet = ref.TinyNetwork(16, 5, ref.Structure.str2structure(ARCH), 10)
    copy_weights(net, tnet)
    scorer = ref.Scorer(0)
    tnet.to = lambda *a, **k: tnet
    scorer.setup_hooks(tnet, 256)
    v_ours, tv_ours = timed(lambda: validation_score(net, [(x, y)], naswot), repeat)
    v_ref, tv_ref = timed(lambda: scorer.score(tnet, x, y), 1)
    assert abs(mine - their) <= 1e-4 * abs(their), (mine, their)
    assert abs(v_ours - v_ref) <= 1e-4 * abs(v_ref), (v_ours, v_ref)
    out = {"masked_score_s": {"ours": t_ours, "reference": t_ref},
           "post_validation_batch_s": {"ours": tv_ours, "reference": tv_ref},
           "scores_agree": True}
    for distinct in (1, 10):
        o = OPS_SCORED * t_ours + distinct * ROUNDS * tv_ours
        r = OPS_SCORED * t_ref + distinct * ROUNDS * tv_ref
        out[f"run_estimate_{distinct}_distinct_s"] = {"ours": o, "reference": r,
                                                      "ratio": o / r}
    return out


def write_cifar10(root, n_train=50000, n_test=1000, seed=0):
    """Random images and labels in the official python-pickle layout."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per = n_train // 5
    for i in range(5):
        batch = {"data": rng.randint(0, 256, (per, 3072), dtype=np.uint8),
                 "labels": rng.randint(0, 10, per).tolist()}
        with open(folder / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": rng.randint(0, 256, (n_test, 3072), dtype=np.uint8),
                     "labels": rng.randint(0, 10, n_test).tolist()}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)]}, f, protocol=2)


def full(keep):
    from mlflow.tracking import MlflowClient

    work = keep or tempfile.mkdtemp()
    write_cifar10(os.path.join(work, "data"))
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db",
               RUNNER_PROGRESS="0")
    cmd = [sys.executable, "-m", "runner", "--gin", str(ROOT / "gin/zc_pt_nb201_cifar10.gin"),
           "--bind", f"dataset.root = '{work}/data'", "--bind", "dataset.verify_md5 = False"]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("zc_pt_nb201_cifar10")
    (parent,) = client.search_runs([exp.experiment_id], "tags.run_mode = 'pool'")
    kids = client.search_runs([exp.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    select_s = sum(sum(m.value for m in client.get_metric_history(k.info.run_id,
                                                                  "select/seconds"))
                   for k in kids)
    return {"ours_full_run_s": wall, "selection_s": select_s,
            "distinct_candidates": parent.data.metrics["pool/distinct"],
            "genotype": parent.data.tags["genotype"], "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("units", "full"))
    ap.add_argument("--reference", default=str(REFERENCE))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temp one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = units(Path(a.reference), a.repeat) if a.mode == "units" else full(a.keep)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
