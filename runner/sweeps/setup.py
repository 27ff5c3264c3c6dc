"""What a sweep does once for all its workers: the study and its trial slots, the MLflow sweep
run, the shared supernet; plus dead-worker detection and the closing summary."""
import os
import socket
import time

from runner.compat.optuna_internals import trial_id
from runner.sweeps.locks import setup_lock
from runner.sweeps.urls import default_url, unreachable

POLL_S = 2.0


def storage_for(url, study_name, heartbeat_interval, grace_period, max_retry):
    """A journal file (default, one machine) or an RDB URL with heartbeats (several)."""
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    url = default_url(url, study_name)
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)  # same params, new trial
    try:
        return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                          heartbeat_stale_trial_callback=retry)
    except Exception as e:  # noqa: BLE001 - sqlalchemy/driver errors are long and nested
        raise unreachable(url, e) from e


def open_study(name, url, direction, seed, n_trials, heartbeat_interval, grace_period, max_retry,
               worker, grid=None):
    """Create the study and its `n_trials` slots, or join it; the creator owns the setup.
    grid: the fixed params of each slot, in order (a grid sweep), or None (sampled).
    Creating and topping up run under the study's setup lock: workers started at the same
    moment on several machines would otherwise each count no slot and each enqueue them all
    (and race to create the tables of a new database).

    Returns (study, storage, lock), lock: the setup lock as a context-manager factory."""
    import optuna

    lock = setup_lock(default_url(url, name), name)
    with lock():  # also the first RDBStorage: it creates the tables of a new database
        storage = storage_for(url, name, heartbeat_interval, grace_period, max_retry)
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                        sampler=optuna.samplers.TPESampler(seed=seed))
            study.set_user_attr("setup_owner", worker)
        except optuna.exceptions.DuplicatedStudyError:
            # a joining worker samples with its own seed, or it would repeat the creator's draws
            study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers
                                      .TPESampler(seed=None if seed is None
                                                  else seed + os.getpid()))
            if study.direction.name.lower() != direction:
                raise ValueError(f"study {name!r} exists with direction "
                                 f"{study.direction.name.lower()}, not {direction}")
        top_up(study, n_trials, grid)
    return study, storage, lock


def top_up(study, n_trials, grid=None):
    """Enqueue slots until the study holds `n_trials` trials besides retries (global budget);
    a grid slot carries its values as fixed params, which suggest_* returns."""
    slots = [t for t in study.get_trials(deepcopy=False) if "failed_trial" not in t.system_attrs]
    for i in range(len(slots), n_trials):
        study.enqueue_trial(grid[i] if grid else {})


def pid_alive(pid):
    """Whether process `pid` runs. A zombie (ended, not yet reaped by its parent, e.g. a
    `--workers` child that crashed) answers signal 0 like a live process; its state in
    /proc tells it apart. It is not reaped here: its parent's Popen reads its exit status."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not zombie(pid)


def zombie(pid):
    """Process state Z (zombie) or X (dead) in /proc/<pid>/stat; False where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]  # the name may hold spaces, ')'
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def dead(worker):
    """A worker ('host:pid') on this machine whose process is gone (other hosts: unknown)."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def once(study, key, make, worker, lock):
    """The study-wide value `key`: made by the setup owner, awaited by the others; a dead
    owner's setup is taken over (a rerun resumes a killed setup), under the setup lock so
    that two workers never both take it over."""
    while True:
        attrs = study.user_attrs
        if key in attrs:
            return attrs[key]
        owner = attrs.get("setup_owner")
        if owner == worker:
            value = make()
            study.set_user_attr(key, value)
            return value
        if dead(owner) or owner is None:
            with lock():
                owner = study.user_attrs.get("setup_owner")
                if dead(owner) or owner is None:
                    study.set_user_attr("setup_owner", worker)
            continue
        time.sleep(POLL_S)


def sweep_run_id(study, experiment_name, gin_files, bindings, url, worker, lock):
    """The MLflow parent run of the sweep, created once; trial runs nest under it."""
    from runner.lifecycle.phases import log_config
    from tracking.mlflow_tracker import Tracker

    def make():
        tracker = Tracker()
        tracker.check()
        tracker.create_run(experiment_name, f"sweep-{study.study_name}",
                           {"sweep_study": study.study_name,
                            "sweep_storage": default_url(url, study.study_name)})
        log_config(tracker, gin_files, bindings)
        return tracker.run_id

    return once(study, "mlflow_sweep_run", make, worker, lock)


def supernet_run_id(study, call, parent, worker, lock, nested):
    """Train the supernet every trial selects from, once, as a nested search-only run."""
    import dataclasses

    from runner.config import parse_config

    def make():
        parse_config(call.gin_files, call.bindings)
        child = dataclasses.replace(call, resume=True, parent_run_id=parent,
                                    run_name=f"sweep-{study.study_name}-supernet",
                                    extra_tags={"sweep_study": study.study_name})
        return nested(child, do_select=False)["run_id"]

    return once(study, "supernet_run", make, worker, lock)


def fail_dead_trials(study, storage, retry):
    """RDB (`storage_for` gives it heartbeats): stale trials are failed by Optuna. Journal:
    trials of dead local workers are failed here. Either way each comes back as a waiting
    retry with the same parameters."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import RDBStorage, fail_stale_trials
    from optuna.trial import TrialState

    if isinstance(storage, RDBStorage):
        fail_stale_trials(study)
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not dead(t.user_attrs.get("worker")):
            continue
        try:
            failed = storage.set_trial_state_values(trial_id(t), state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker failed it first
            continue
        if failed:
            retry(study, storage.get_trial(trial_id(t)))


def trial_tag(study, trial):
    """The tag naming a trial on its MLflow run: '<study>/<trial number>'."""
    return f"{study.study_name}/{trial.number}"


def close_killed_runs(study, experiment_name):
    """A SIGKILLed worker leaves its trial's MLflow run RUNNING; once the study has failed that
    trial (and retried it), the run is marked KILLED and tagged with the trial that retried it
    (`retried_by_trial`; 'none' when no retry was left). Runs of failed trials that ended
    (a trial that raised) are FAILED already and left alone."""
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    from tracking.mlflow_tracker import Tracker

    trials = study.get_trials(deepcopy=False)
    failed = {trial_tag(study, t): t.number for t in trials if t.state == TrialState.FAIL}
    if not failed:
        return []
    retried_by = {}
    for t in trials:
        history = RetryFailedTrialCallback.retry_history(t)
        if history:
            retried_by[history[-1]] = t.number
    tracker = Tracker()
    where = (f"tags.study_trial LIKE '{study.study_name}/%' "
             "and attributes.status = 'RUNNING'")
    closed = []
    for run in tracker.find_runs([experiment_name], where, missing_ok=True):
        number = failed.get(run.tags.get("study_trial"))
        if number is None:
            continue
        tracker.set_status("KILLED", run.run_id, tags={
            "killed_trial": number, "retried_by_trial": retried_by.get(number, "none")})
        closed.append(run.run_id)
    return closed
