"""--resume is safe to repeat (a FINISHED run is left alone, also for multi-seed protocols), and
one process at a time holds a run: a second is refused in one line, a dead holder's run is
taken over. Scheduled early (file order) since its subprocess runs take a while."""
import os
import signal
import subprocess
import time

from mlflow.tracking import MlflowClient

from helpers import command
from test_resume import ARGS, kill_when, runner, runs

QUICK = ["--bind", "search.epochs = 2", "--bind", "run.do_retrain = False",
         "--bind", "select.tune_epochs = 0"]


def finish(tmp, name, *extra):
    """One uninterrupted run; returns the `runner` result with its output."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", OMP_NUM_THREADS="1")
    os.makedirs(tmp / name, exist_ok=True)
    return subprocess.run(command(*ARGS, "--bind", f"run.experiment_name = '{name}'", *QUICK,
                                  *extra), cwd=tmp / name, env=env, capture_output=True,
                          text=True, timeout=600)


def test_resume_of_a_finished_run_does_nothing_and_says_where_it_is(tmp_path):
    """Killed the moment it is marked FINISHED (in the summary or interpreter teardown, if
    still alive), then resumed any number of times: one run, no training."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    proc = runner(tmp_path, "done", QUICK, wait=False)
    deadline = time.time() + 300
    while not [r for r in (runs(client, "done") if client.get_experiment_by_name("done")
                           else []) if r.info.status == "FINISHED"]:
        assert time.time() < deadline and proc.poll() in (None, 0)
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run,) = runs(client, "done")
    before = client.get_metric_history(run.info.run_id, "search/train_loss")
    for _ in range(2):
        out = finish(tmp_path, "done", "--resume")
        assert out.returncode == 0, out.stderr
        assert "search 1/" not in out.stdout  # no training
        assert out.stdout.strip() == (
            f"runner: run {run.info.run_id} ('done-darts-pt-seed2' in experiment 'done') already "
            f"FINISHED; its results are in MLflow and outputs/{run.info.run_id}; "
            "nothing to resume")
    (again,) = runs(client, "done")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert client.get_metric_history(run.info.run_id, "search/train_loss") == before


def test_resume_of_a_finished_multi_seed_protocol_adds_no_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    seeds = ("--bind", "run.seeds = (0,)", "--bind", "search.epochs = 1")
    assert finish(tmp_path, "proto", *seeds).returncode == 0
    ids = {r.info.run_id for r in runs(client, "proto")}
    assert len(ids) == 2  # the parent and one run per seed
    out = finish(tmp_path, "proto", *seeds, "--resume")
    assert out.returncode == 0 and "already FINISHED" in out.stdout, out.stderr
    assert {r.info.run_id for r in runs(client, "proto")} == ids


def test_two_resumes_at_once_one_proceeds_and_a_third_takes_over_a_dead_holder(tmp_path):
    import socket

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    proc = runner(tmp_path, "twice", QUICK, wait=False)
    kill_when(proc, tmp_path / "twice", "search", "select")
    (run,) = runs(client, "twice")
    lock = tmp_path / "twice" / "outputs" / run.info.run_id / ".lock"
    first = runner(tmp_path, "twice", QUICK + ["--resume"], wait=False)
    holder = f"{socket.gethostname()}:{first.pid}"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text() == holder):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # it holds the run while the second one starts
    try:
        second = finish(tmp_path, "twice", "--resume")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    lines = [ln for ln in second.stderr.splitlines() if ln.startswith("runner:")]
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert lines[0].startswith(f"runner: error: RunLocked: run {run.info.run_id} ('twice-darts-pt-seed2') "
                               f"is being run by process {holder}")
    (run,) = runs(client, "twice")
    assert run.info.status == "RUNNING"  # the refused process did not touch it
    third = runner(tmp_path, "twice", QUICK + ["--resume"], wait=False)  # lock died with `first`
    assert third.wait(timeout=600) == 0, third.stderr.read()
    (run,) = runs(client, "twice")
    assert run.info.status == "FINISHED"
