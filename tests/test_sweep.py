"""Optuna sweeps end to end: worker processes on a journal file and on a real PostgreSQL server,
a failing trial, a killed worker's trial retried with the same parameters, nested MLflow runs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pg import Postgres
from helpers import ROOT, argv, command as runner_command

STUDY = "pt_tune_epochs_s3"
PARAMS = ("{'select.tune_epochs': ('int', 0, 1), "
          "'Perturbation.crit': ('categorical', ['acc', 'loss'])}")


def command(storage, n_trials, *extra, params=PARAMS):
    """The sweep experiment file at tiny size on the digits set."""
    binds = ["retrain.auxiliary_weight = 0.0", "dataset.limit = 16", "Perturbation.subset = 8",
             f"sweep.params = {params}", f"sweep.storage = {storage!r}",
             f"sweep.n_trials = {n_trials}", "sweep.heartbeat_interval = 1",
             "sweep.grace_period = 3"]
    return runner_command(*argv("sweeps/pt_tune_epochs_s3.gin", "data/digits.gin", "spaces/s2.gin",
                                "overrides/tiny.gin", binds=binds), *extra)


def start(cmd, folder, name):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    log = open(folder / f"{name}.log", "w")
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(proc, folder, name, timeout=600):
    rc = proc.wait(timeout=timeout)
    assert rc == 0, (folder / f"{name}.log").read_text()[-3000:]


def study_of(storage, name=STUDY):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage.startswith("journal:"):
        storage = JournalStorage(JournalFileBackend(storage[len("journal:"):]))
    return optuna.load_study(study_name=name, storage=storage)


def check_nesting(client, study):
    """Every finished trial has its nested MLflow run, bound to the trial's values."""
    sweep_run = study.user_attrs["mlflow_sweep_run"]
    supernet = study.user_attrs["supernet_run"]
    assert client.get_run(supernet).data.tags["mlflow.parentRunId"] == sweep_run
    for t in study.trials:
        if t.state.name != "COMPLETE":
            continue
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == sweep_run
        assert int(tags["sweep_trial"]) == t.number
        assert json.loads(tags["sweep_params"]) == t.params
        assert tags["selected_from_run"] == supernet  # one supernet, trained once
        assert params["select.tune_epochs"] == str(t.params["select.tune_epochs"])
        assert params["Perturbation.crit"] == t.params["Perturbation.crit"]
        assert run.data.metrics["test_error"] == pytest.approx(t.value)
    assert client.get_run(sweep_run).info.status == "FINISHED"
    assert [f.path for f in client.list_artifacts(sweep_run, "plots")] == ["plots/objective.png"]


def test_two_workers_share_a_journal_study_with_a_global_trial_count(tracking, tmp_path):
    storage = f"journal:{tmp_path}/sweep.journal"
    proc = start(command(storage, 4, "--workers", "2"), tmp_path, "sweep")
    finish(proc, tmp_path, "sweep")
    study = study_of(storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    check_nesting(tracking, study)
    runs = tracking.search_runs([tracking.get_experiment_by_name("sweep_pt_s3").experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == sorted([f"sweep-{STUDY}", f"sweep-{STUDY}-supernet"]
                           + [f"{STUDY}-trial{i}" for i in range(4)])
    sweep_run = tracking.get_run(study.user_attrs["mlflow_sweep_run"])
    assert sweep_run.data.metrics["sweep/n_complete"] == 4
    assert sweep_run.data.tags["sweep_storage"] == storage
    files = {f.path for f in tracking.list_artifacts(sweep_run.info.run_id, "sweep")}
    assert {"sweep/trials.csv", "sweep/trials.md"} <= files
    # running the command again resumes the study: nothing is left to do, no trial is added
    finish(start(command(storage, 4), tmp_path, "again"), tmp_path, "again")
    assert len(study_of(storage).trials) == 4


def test_failing_trials_are_recorded_and_the_study_goes_on(tracking, tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = f"journal:{tmp_path}/sweep.journal"
    study = optuna.create_study(study_name=STUDY, storage=JournalStorage(
        JournalFileBackend(str(tmp_path / "sweep.journal"))))
    fixed = {"select.tune_epochs": 0, "select.edge_order": "random"}
    study.enqueue_trial({**fixed, "Perturbation.crit": "no-such-criterion"})  # before the run
    study.enqueue_trial({**fixed, "Perturbation.crit": "acc", "select.edge_order": "sideways"})
    study.enqueue_trial({**fixed, "Perturbation.crit": "acc"})
    params = PARAMS[:-1] + ", 'select.edge_order': ('categorical', ['random', 'sideways'])}"
    finish(start(command(storage, 3, params=params), tmp_path, "sweep"), tmp_path, "sweep")
    study = study_of(storage)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert "no-such-criterion" in study.trials[0].user_attrs["error"]
    assert "sideways" in study.trials[1].user_attrs["error"]
    check_nesting(tracking, study)
    exp = tracking.get_experiment_by_name("sweep_pt_s3").experiment_id
    (failed,) = tracking.search_runs([exp], f"tags.`mlflow.runName` = '{STUDY}-trial1'")
    assert failed.info.status == "FAILED"  # failed inside its nested run: the run says so


def running_trial_of(storage, pid, name=STUDY, params=2, timeout=300):
    """Wait until worker `pid` runs a trial of study `name` with its `params` values drawn;
    returns that trial's number."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            for t in study_of(storage, name).trials:
                if (t.state.name == "RUNNING" and len(t.params) == params
                        and t.user_attrs.get("worker", "").endswith(f":{pid}")):
                    return t.number
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never ran a trial")


def runs_tagged(client, where):
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, where) if ids else []


def wait_for_run(client, tag, timeout=300):
    """Wait until the trial tagged `tag` ('<study>/<number>') has its MLflow run open."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if runs_tagged(client, f"tags.study_trial = '{tag}'"):
            return
        time.sleep(0.2)
    raise AssertionError(f"no MLflow run for trial {tag}")


def check_killed_run(client, tag, retry):
    """The killed trial's run is KILLED and names its retry; no run is left RUNNING."""
    assert runs_tagged(client, "attributes.status = 'RUNNING'") == []
    (run,) = runs_tagged(client, f"tags.study_trial = '{tag}'")
    assert run.info.status == "KILLED"
    assert run.data.tags["retried_by_trial"] == str(retry.number)


@pytest.fixture
def postgres():
    server = Postgres().start()
    yield server.url
    server.stop()


@pytest.fixture(params=["journal", "postgresql"])
def storage(request, tmp_path):
    """A study storage of each kind: a journal file, or a real PostgreSQL server."""
    if request.param == "journal":
        yield f"journal:{tmp_path}/study.journal"
        return
    server = Postgres().start()
    yield server.url
    server.stop()


def test_a_killed_workers_trial_is_retried_with_its_parameters_and_its_run_closed(
        storage, tracking, tmp_path):
    first = start(command(storage, 3), tmp_path, "first")
    killed = running_trial_of(storage, first.pid)
    wait_for_run(tracking, f"{STUDY}/{killed}")  # killed with its MLflow run open
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = start(command(storage, 3), tmp_path, "second")  # stale: heartbeat or pid
    finish(second, tmp_path, "second")
    study = study_of(storage)
    states = {t.number: t.state.name for t in study.trials}
    assert states[killed] == "FAIL"
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed]
    assert retry.state.name == "COMPLETE"
    assert retry.params == study.trials[killed].params
    assert sum(s == "COMPLETE" for s in states.values()) == 3  # the global count, retry included
    assert len({t.number for t in study.trials}) == len(study.trials) == 4
    check_nesting(tracking, study)
    check_killed_run(tracking, f"{STUDY}/{killed}", retry)


def test_journal_trial_of_a_dead_local_worker_comes_back_with_its_parameters(tmp_path,
                                                                           tracking):
    import socket

    import optuna
    from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    from runner.sweeps.setup import fail_dead_trials

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    host = socket.gethostname()
    for pid in (gone.pid, os.getpid()):
        trial = study.ask()
        trial.suggest_int("select.tune_epochs", 0, 10)
        trial.set_user_attr("worker", f"{host}:{pid}")
    fail_dead_trials(study, storage, RetryHeartbeatStaleTrialCallback(max_retry=3))
    dead, alive, retry = study.trials
    assert (dead.state.name, alive.state.name, retry.state.name) == ("FAIL", "RUNNING", "WAITING")
    assert retry.params == dead.params and retry.system_attrs["failed_trial"] == dead.number
    # both trials' MLflow runs were open; the dead worker's is closed, the live one's is not
    from runner.sweeps.setup import close_killed_runs, trial_tag
    from tracking.mlflow_tracker import Tracker

    ids = {}
    for t in (dead, alive):
        tracker = Tracker()
        tracker.create_run("journal", f"trial{t.number}", {"study_trial": trial_tag(study, t)})
        ids[t.number] = tracker.run_id
    assert close_killed_runs(study, "journal") == [ids[dead.number]]
    run = tracking.get_run(ids[dead.number])
    assert run.info.status == "KILLED"
    assert run.data.tags["retried_by_trial"] == str(retry.number)
    assert tracking.get_run(ids[alive.number]).info.status == "RUNNING"


def test_unreachable_study_storage_is_one_line_naming_it_without_password(tracking, capsys,
                                                                         clean_gin):
    from runner.cli import main

    url = "postgresql://user:secret@127.0.0.1:1/optuna"  # nothing listens on port 1
    assert main(command(url, 2)[3:]) == 2  # in-process, without `python -m runner`
    err = capsys.readouterr().err.strip()
    assert err.startswith("runner: error: ConnectionError: optuna storage "
                          "postgresql://user:***@127.0.0.1:1/optuna unreachable")
    assert "secret" not in err and len(err.splitlines()) == 1


def open_at_once(url, barrier, out):
    import optuna  # noqa: F401 - imported before the barrier: the workers start together
    from runner.sweeps.setup import open_study

    barrier.wait()
    study, _, _ = open_study("race", url, "minimize", 0, 20, 30, 90, 0, f"w{os.getpid()}",
                             [{"run.seed": s} for s in range(20)])
    out.put(study.user_attrs["setup_owner"])


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_workers_opening_a_new_study_at_the_same_moment_enqueue_its_slots_once(kind, tmp_path,
                                                                              request):
    import multiprocessing

    url = (f"journal:{tmp_path}/race.journal" if kind == "journal"
           else request.getfixturevalue("postgres"))
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=open_at_once, args=(url, barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    owners = {out.get(timeout=5) for _ in procs}
    assert len(owners) == 1  # the creator, seen by every joiner
    trials = study_of(url, "race").trials
    assert [t.system_attrs["fixed_params"]["run.seed"] for t in trials] == list(range(20))


def seeds_command(storage):
    """Three seeds of the quickstart at tiny size, shared through `storage` (run.seeds)."""
    binds = ["run.seeds = [0, 1, 2]", "run.experiment_name = 'spread'", "dataset.limit = 16",
             f"seeds.storage = {storage!r}", "seeds.heartbeat_interval = 1",
             "seeds.grace_period = 3"]
    return runner_command(*argv("quickstart.gin", "overrides/tiny.gin", binds=binds))


def test_seeds_shared_by_two_machines_on_postgres_run_once_and_a_killed_machines_seed_again(
        postgres, tracking, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # "machine" A and B: own folders, one study and one tracking store, started together
    a = start(seeds_command(postgres), tmp_path / "a", "a")
    b = start(seeds_command(postgres), tmp_path / "b", "b")
    killed = running_trial_of(postgres, a.pid, "spread-seeds", params=1)  # run.seed drawn
    wait_for_run(tracking, f"spread-seeds/{killed}")
    a.send_signal(signal.SIGKILL)
    a.wait()
    finish(b, tmp_path / "b", "b")
    trials = study_of(postgres, "spread-seeds").trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["run.seed"] for t in done) == [0, 1, 2]  # every seed once
    assert trials[killed].state.name == "FAIL"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert retry.state.name == "COMPLETE" and retry.params == trials[killed].params
    check_killed_run(tracking, f"spread-seeds/{killed}", retry)
    exp = tracking.get_experiment_by_name("spread")
    (parent,) = tracking.search_runs([exp.experiment_id], "attributes.run_name = 'spread-seeds'")
    assert parent.info.status == "FINISHED"
    nested = tracking.search_runs([exp.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    finished = sorted(int(r.data.tags["seed"]) for r in nested if r.info.status == "FINISHED")
    assert finished == [0, 1, 2]
    errors = [r.data.metrics["test_error"] for r in nested if r.info.status == "FINISHED"]
    assert parent.data.metrics["seeds/mean_test_error"] == pytest.approx(sum(errors) / 3)
