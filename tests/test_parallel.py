"""Work spread over processes: the worker -> GPU mapping, and run.seeds over --workers on a
journal study (the same protocol summary as one after another)."""
import os
import subprocess

import pytest
import torch

from helpers import ROOT, TINY, argv, command, experiment_runs
from runner.lifecycle.placement import cpu_threads, place, this_worker, visible_gpus

EIGHT = [str(i) for i in range(8)]


@pytest.mark.parametrize("workers, expected", [
    (1, ["cuda:0"]),
    (2, ["cuda:0", "cuda:1"]),
    (8, [f"cuda:{i}" for i in range(8)]),
    (12, [f"cuda:{i}" for i in range(8)] + ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
])
def test_one_worker_per_gpu_round_robin_on_eight_gpus(workers, expected):
    assert [place(i, workers, EIGHT)[0] for i in range(workers)] == expected


def test_placement_reports_the_physical_gpu_named_by_cuda_visible_devices():
    named = ["3", "5", "6"]  # CUDA_VISIBLE_DEVICES=3,5,6: torch calls them cuda:0..2
    assert [place(i, 4, named) for i in range(4)] == [
        ("cuda:0", "3"), ("cuda:1", "5"), ("cuda:2", "6"), ("cuda:0", "3")]


@pytest.mark.parametrize("workers", [1, 2, 8, 12])
def test_without_gpus_every_worker_is_on_the_cpu(workers):
    assert {place(i, workers, [])[0] for i in range(workers)} == {"cpu"}
    with pytest.raises(ValueError):
        place(workers, workers, EIGHT)


def test_worker_index_from_the_runner_or_torchrun_environment():
    assert this_worker({}) == (0, 1)
    assert this_worker({"RUNNER_WORKER": "3/8"}) == (3, 8)
    assert this_worker({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == (1, 2)
    assert cpu_threads(2, cores=2) == 1 and cpu_threads(1, cores=16) == 16
    assert cpu_threads(32, cores=16) == 1
    if not torch.cuda.is_available():  # named GPUs that torch cannot see are not used
        assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,5"}) == []


def seeds_command(*extra):
    binds = ["run.seeds = [0, 1]", "run.deterministic = True", "run.experiment_name = 'par'"]
    return command(*argv("quickstart.gin", TINY, binds=binds), *extra)


def protocol(client):
    """(parent summary metrics, {seed: (genotype, test_error)}) of the experiment's runs."""
    runs = experiment_runs(client, "par")
    (parent,) = [r for r in runs if r.info.run_name == "par-seeds"]
    seeds = {int(r.data.tags["seed"]): (r.data.tags["genotype"], r.data.metrics["test_error"])
             for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert parent.info.status == "FINISHED"
    return {k: v for k, v in parent.data.metrics.items() if k.startswith("seeds/")}, seeds


def test_seeds_over_two_workers_match_the_sequential_protocol(tracking, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("RUNNER_WORKER", None)
    subprocess.run(seeds_command(), cwd=tmp_path, env=env, check=True, capture_output=True)
    sequential = protocol(tracking)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/spread.db"
    done = subprocess.run(seeds_command("--workers", "2"), cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    spread = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert protocol(spread) == sequential
    seed_runs = [r for r in experiment_runs(spread, "par") if r.data.tags.get("seed")]
    assert sorted(r.data.tags["seed"] for r in seed_runs) == ["0", "1"]  # each seed once
    assert 1 <= len({r.data.tags["worker"] for r in seed_runs}) <= 2  # by the two processes
    assert "seed 0: run" in done.stdout and "seed 1: run" in done.stdout
