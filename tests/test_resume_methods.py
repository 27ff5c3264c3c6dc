"""Shapley-NAS and IS-DARTS killed (SIGKILL) between two of their steps: --resume ends with the
uninterrupted run's alphas, genotype and pruning records (the Shapley buffer, the removal
orders' generator and the pruning mask travel in the search checkpoint)."""
import os
import subprocess

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from helpers import argv, command, method_records
from test_resume import alphas, kill_when, runs

# S2 (2 ops an edge: 56 Shapley players, not 224), 4 search epochs, a copy of the checkpoint
# after each (search_epochN.pt), no retrain
COMMON = ["search.epochs = 4", "search.keep_every = 1", "dataset.limit = 32",
          "run.do_retrain = False", "select.tune_epochs = 0"]
METHODS = {  # steps at the starts of epochs 2 and 3 (0-based): the kill falls between them
    "shapley_nas": ("methods/shapley.gin", ["ShapleyNas.warmup_epochs = 2"]),
    "is_darts": ("methods/is_darts.gin", ["IsDarts.steps = 2", "IsDarts.interval = 1"]),
}


def start(tmp, method, name, extra=()):
    gin_file, binds = METHODS[method]
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", OMP_NUM_THREADS="1")
    args = argv("quickstart.gin", gin_file, "selectors/magnitude.gin", "spaces/s2.gin",
                "overrides/tiny.gin",
                binds=COMMON + binds + [f"run.experiment_name = '{name}'"])
    os.makedirs(tmp / name, exist_ok=True)
    return subprocess.Popen(command(*args, *extra), cwd=tmp / name, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc):
    assert proc.wait(timeout=600) == 0, proc.stderr.read()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_run_killed_between_method_steps_resumes_to_the_uninterrupted_result(method,
                                                                              tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    finish(start(tmp_path, method, "straight"))
    proc = start(tmp_path, method, "killed")
    # after epoch 3 (its step at the start of epoch index 2 done), before epoch 4 ends
    kill_when(proc, tmp_path / "killed", "search_epoch3", "search_epoch4")
    finish(start(tmp_path, method, "killed", ["--resume"]))

    (ref,), (res,) = runs(client, "straight"), runs(client, "killed")
    assert res.info.status == "FINISHED" and res.data.tags["method"] == method
    assert res.data.tags["genotype"] == ref.data.tags["genotype"]
    got, want = alphas(client, res.info.run_id, tmp_path / "a"), \
        alphas(client, ref.info.run_id, tmp_path / "b")
    np.testing.assert_array_equal(got, want)
    if method == "shapley_nas":  # alphas moved by the two Shapley steps only
        assert not np.array_equal(want[1], want[2]) and not np.array_equal(want[2], want[3])
        np.testing.assert_array_equal(want[0], want[1])
    else:  # both pruning steps recorded once, as in the run that was not killed
        steps = method_records(client, res.info.run_id, tmp_path)
        assert steps == method_records(client, ref.info.run_id, tmp_path)
        assert sorted({r["step"] for r in steps if "pruned" in r}) == [0, 1]
