"""Data-parallel search and PT selection under torchrun (2 processes, gloo) on a tiny S3
supernet: both ranks end with the same alphas, weights, decisions and genotype, bit for bit;
against one process at the same global batch, the searched alphas agree to float tolerance and
every decision and the genotype are the same (the toy's margins are clear of float rounding).
End to end, `torchrun -m runner` searches, selects with PT and retrains in one MLflow run."""
import csv
import json
import os
import subprocess

import pytest
import torch

from helpers import ROOT, experiment_runs, launch, tiny_argv
from helpers import torchrun_alone as alone
from test_ddp import env_for, tracking_at

JOB = ROOT / "tests" / "ddp_search_job.py"
GIN = [str(ROOT / "gin" / "s3_cifar10.gin"), str(ROOT / "gin" / "overrides" / "tiny.gin")]


def binds(data_root):
    return [f"dataset.root = '{data_root}'", "dataset.verify_md5 = False", "dataset.limit = 16",
            "Perturbation.subset = 8", "precision.channels_last = 'off'", "search.epochs = 2"]


def job(tmp_path, data_root, nproc, *extra):
    out = tmp_path / f"np{nproc}"
    out.mkdir()
    done = subprocess.run(launch(nproc, str(JOB), str(out), *GIN, "--", *binds(data_root),
                                 *extra),
                          env=env_for(out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(nproc)]


@pytest.fixture(scope="module")
def ends(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("ddp_search")
    with alone():
        return {n: job(tmp, data_root, n) for n in (1, 2)}


def test_both_ranks_end_with_the_same_supernet_and_genotype(ends):
    r0, r1 = ends[2]
    assert r0["world"] == r1["world"] == 2
    assert torch.equal(r0["searched"], r1["searched"])
    assert torch.equal(r0["alphas"], r1["alphas"])
    assert r0["weights"].keys() == r1["weights"].keys()
    for k, v in r0["weights"].items():  # BN running statistics included
        assert torch.equal(v, r1["weights"][k]), k
    assert r0["decisions"] == r1["decisions"]
    assert r0["genotype"] == r1["genotype"]


def test_two_ranks_search_and_decide_as_one_process(ends):
    (one,), (two, _) = ends[1], ends[2]
    moved = (one["searched"] - ends[1][0]["searched"].new_zeros(())).abs().max()
    assert moved > 1e-4  # alpha took real steps (it starts at N(0, 1e-3))
    torch.testing.assert_close(two["searched"], one["searched"], rtol=1e-5, atol=1e-7)
    assert len(two["decisions"]) == len(one["decisions"]) > 14
    for a, b in zip(two["decisions"], one["decisions"]):
        assert (a["kind"], a["cell"], a["where"], a["chosen"]) == \
               (b["kind"], b["cell"], b["where"], b["chosen"])
        # accuracies count images: equal; losses to float tolerance, which the tuning epochs
        # between rounds grow from 1e-7 to about 2e-4 relative by the last round
        if a["kind"] == "op":
            assert [s and s["acc"] for s in a["scores"]] == [s and s["acc"] for s in b["scores"]]
            assert [s and s["loss"] for s in a["scores"]] == pytest.approx(
                [s and s["loss"] for s in b["scores"]], rel=1e-3)
    assert two["genotype"] == one["genotype"]


@pytest.mark.parametrize("method, atol", [
    (("run.method = @Sdarts", "Sdarts.perturb_alpha = 'pgd_linf'", "Sdarts.pgd_steps = 2"), 1e-7),
    # the finite-difference Hessian term divides by 2 eps (eps = 0.01 / ||v||): float rounding
    # comes out at ~3e-7, against alpha steps of ~3e-4 that a gradient left per rank would miss
    (("Darts.unrolled = True",), 1e-6)], ids=["sdarts_adv", "darts_2nd"])
def test_methods_with_gradient_passes_of_their_own_search_as_one_process(tmp_path, data_root,
                                                                          method, atol,
                                                                          torchrun_alone):
    """SDARTS-ADV's attack and second-order DARTS's virtual step average their gradients too."""
    (one,), (r0, r1) = (job(tmp_path, data_root, n, "run.do_select = False", *method)
                        for n in (1, 2))
    assert torch.equal(r0["searched"], r1["searched"])
    for k, v in r0["weights"].items():
        assert torch.equal(v, r1["weights"][k]), k
    torch.testing.assert_close(r0["searched"], one["searched"], rtol=1e-5, atol=atol)
    assert r0["genotype"] == one["genotype"]


def test_torchrun_searches_selects_and_retrains_in_one_run(tmp_path, data_root, ends,
                                                           torchrun_alone):
    """The runner's whole pipeline on 2 ranks, against the 1-process job of the fixture (the
    same gin files and bindings): the same decisions and genotype."""
    args = tiny_argv("s3_cifar10.gin", data_root, "precision.channels_last = 'off'",
                     "search.epochs = 2")
    done = subprocess.run(launch(2, "-m", "runner", *args), cwd=tmp_path,
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = tracking_at(tmp_path)
    (run,) = experiment_runs(client, "s3_cifar10")  # rank 1 opened no run of its own
    path = client.download_artifacts(run.info.run_id, "selection/decisions.csv",
                                     str(tmp_path / "dl"))
    chosen = [(r["cell"], int(r["where"]), json.loads(r["chosen"]))
              for r in csv.DictReader(open(path))]
    (one,) = ends[1]
    assert chosen == [(d["cell"], d["where"], d["chosen"]) for d in one["decisions"]]
    assert run.info.status == "FINISHED"
    assert run.data.tags["world_size"] == "2" and run.data.tags["selector"] == "pt"
    assert run.data.tags["genotype"] == one["genotype"]
    files = os.listdir(tmp_path / "outputs" / run.info.run_id)
    assert {"search.pt", "select.pt", "retrain.pt"} <= set(files)
    assert not [f for f in files if f.endswith(".tmp")]  # no half-written checkpoint
    assert "test_acc" in run.data.metrics
    assert done.stdout.count("search 2/2") == 1  # rank 0 alone reports


def _disagree(rank, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from runner.training import distributed

    with distributed.session():
        distributed.agree("same", "warm-up")
        try:
            distributed.agree(f"genotype {rank % 2}", "genotype after selection round 3")
        except distributed.RanksDisagree as e:
            (out / f"rank{rank}.txt").write_text(str(e))


def test_ranks_that_disagree_fail_with_a_line_naming_the_rank(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_disagree, args=(port, tmp_path), nprocs=2)
    for r in (0, 1):  # every rank raises, so none is left waiting
        assert (tmp_path / f"rank{r}.txt").read_text() == (
            "genotype after selection round 3: rank 1 has 'genotype 1', rank 0 has 'genotype 0'")
