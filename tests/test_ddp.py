"""Data-parallel retrain under torchrun (2 processes, gloo): the step of the global batch, one
MLflow run written by rank 0, resumable after a SIGKILL of the whole job; and the global-batch
BatchNorm against torch's on one process."""
import glob
import os
import signal
import subprocess
import time

import pytest
import torch

from helpers import GIN_DIR, ROOT, TINY, argv, experiment_runs, launch
from test_retrain_given import DARTS_V2

RETRAIN = GIN_DIR / "retrain" / "darts_cifar10.gin"


def env_for(tmp_path):
    return dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def job(data_root, nproc, *binds):
    """The retrain entry under torchrun (nproc > 1) or alone, on the tiny CIFAR-10 files."""
    args = argv(RETRAIN, TINY, binds=[f"dataset.root = '{data_root}'",
                                      "dataset.verify_md5 = False", f"run.genotype = {DARTS_V2!r}",
                                      "run.deterministic = True", "retrain.batch_size = 8",
                                      *binds])
    return launch(nproc, "-m", "runner", *args)


def final_weights(client, tmp_path):
    (run,) = experiment_runs(client, "retrain_darts_cifar10")
    state = torch.load(tmp_path / "outputs" / run.info.run_id / "retrain.pt", weights_only=True)
    return run, state


def tracking_at(tmp_path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path}/m.db")


def test_two_ranks_take_the_step_of_the_global_batch(data_root, tmp_path, torchrun_alone):
    runs = {}
    for nproc in (1, 2):
        folder = tmp_path / f"np{nproc}"
        folder.mkdir()
        # drop path draws per-rank masks (distributed.drop_path_stream); cutout's constant
        # squares make max-pool ties that float noise breaks either way: both off, the two
        # runs agree to float tolerance (the augmentation itself is the same: one generator)
        done = subprocess.run(job(data_root, nproc, "retrain.epochs = 1",
                                  "retrain.drop_path_prob = 0.0", "retrain.cutout = 0"),
                              cwd=folder,
                              env=env_for(folder), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[nproc] = final_weights(tracking_at(folder), folder), done.stdout
    (one, w1), _ = runs[1]
    (two, w2), out2 = runs[2]
    assert two.data.tags["world_size"] == "2" and two.data.tags["backend"] == "gloo"
    assert "world_size" not in one.data.tags
    assert w1["epoch"] == w2["epoch"] == 1  # 4 steps of 8 images
    for k, v in w1["net"].items():  # BN running stats included: the global batch's
        torch.testing.assert_close(w2["net"][k], v, rtol=1e-3, atol=1e-4,
                                   msg=lambda m, k=k: f"{k}: {m}")
    for key in ("retrain/train_loss", "retrain/test_acc"):  # global metrics, not a shard's
        assert two.data.metrics[key] == pytest.approx(one.data.metrics[key], rel=1e-4, abs=1e-4)
    assert out2.count("final test accuracy") == 1  # rank 0 alone reports


def descendants(pid):
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_tree(pid):
    for p in descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rank_pid(pid, rank):
    """The process of torchrun `pid` whose environment says RANK=rank."""
    for p in descendants(pid):
        try:
            env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"-m" in open(f"/proc/{p}/cmdline", "rb").read():
            return p
    raise AssertionError(f"no rank {rank} under {pid}")


def checkpoint_epoch(tmp_path, after=0, timeout=300):
    """Wait until the run's retrain checkpoint is past epoch `after`; returns its epoch."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ckpt in (tmp_path / "outputs").glob("*/retrain.pt"):
            try:
                epoch = torch.load(ckpt, weights_only=True)["epoch"]
            except Exception:  # noqa: BLE001 - being replaced at this moment
                continue
            if epoch > after:
                return epoch
        time.sleep(0.2)
    raise AssertionError("no checkpoint")


def test_a_failed_rank_fails_the_run_and_a_killed_job_resumes_it(data_root, tmp_path,
                                                                 torchrun_alone):
    env, epochs = env_for(tmp_path), 10
    cmd = job(data_root, 2, f"retrain.epochs = {epochs}")
    client = tracking_at(tmp_path)
    # 1. rank 1 dies: the job ends, rank 0 says why in one line, the run is FAILED
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = checkpoint_epoch(tmp_path)
    os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    (line,) = [x for x in err.splitlines() if x.startswith("runner: error: rank 0: ")]
    assert "another rank failed" in line
    (run,) = experiment_runs(client, "retrain_darts_cifar10")
    assert run.info.status == "FAILED"
    # 2. --resume continues it; the whole job is SIGKILLed in turn
    proc = subprocess.Popen(cmd + ["--resume"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint_epoch(tmp_path, after=first)
    kill_tree(proc.pid)  # torchrun and its ranks (which it starts in sessions of their own)
    proc.wait()
    killed_at = checkpoint_epoch(tmp_path)
    assert first < killed_at < epochs
    # 3. --resume again: the same run finishes from the last checkpoint
    done = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = experiment_runs(client, "retrain_darts_cifar10")  # the same run, continued
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "retrain/test_acc")]
    assert sorted(set(steps)) == list(range(epochs))
    assert f"retrain {killed_at}/{epochs}" not in done.stdout  # went on, did not start again
    assert f"retrain {killed_at + 1}/{epochs}" in done.stdout


def _global_bn_rank(rank, init, out):
    import torch.distributed as dist

    from runner.training import distributed

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4, requires_grad=True)  # the global batch, the same on both
    w = torch.randn(6, 3, 4, 4)
    bn = distributed.GlobalBatchNorm(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    part = slice(0, 2) if rank == 0 else slice(2, 6)  # unequal shares
    loss = (bn(x[part]) * w[part]).sum()
    loss.backward()
    dist.all_reduce(x.grad)
    dist.all_reduce(bn.weight.grad)
    torch.save({"x_grad": x.grad, "w_grad": bn.weight.grad, "mean": bn.running_mean,
                "var": bn.running_var}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_global_batch_norm_over_two_ranks_is_batch_norm_of_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_global_bn_rank, args=(f"file://{tmp_path}/store", str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    w = torch.randn(6, 3, 4, 4)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    (bn(x) * w).sum().backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["x_grad"], x.grad)  # the backward pass of the whole
        torch.testing.assert_close(got["w_grad"], bn.weight.grad)
        torch.testing.assert_close(got["mean"], bn.running_mean)
        torch.testing.assert_close(got["var"], bn.running_var)
