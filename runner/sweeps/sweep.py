"""Optuna sweeps of selection hyperparameters: one study, one MLflow sweep run, and one nested
MLflow run per trial; a trial's objective is the last value logged for its metric.

Storage by URL: a journal file (several processes on one machine, the default) or a database URL
such as postgresql://... (several machines; heartbeats fail the trials of killed workers, which
are retried with the same parameters). The trial budget is global: the process that creates the
study enqueues `n_trials` slots, and every worker only runs enqueued trials.
"""
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings

import gin

from runner.compat.optuna_internals import trial_id
from runner.config import one_line, parse_config
from runner.lifecycle.placement import WORKER_ENV, worker_env
from runner.sweeps.setup import (POLL_S, close_killed_runs, fail_dead_trials, open_study,
                                 supernet_run_id, sweep_run_id, trial_tag)
from tracking.secrets import redact

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@gin.configurable("sweep")
class Sweep:
    """An Optuna sweep, bound as `sweep.*` (a config that binds `sweep.params` runs one).

    params: {'gin.binding': ('int', low, high) | ('float', low, high[, 'log']) |
    ('categorical', [choices])}, the sweep's search space, written in gin.
    selection_only: train one supernet (or reuse `supernet_run`) and let every trial select
    from it with `source.run`, instead of searching again per trial.
    storage: an Optuna storage URL (None: the journal file outputs/sweeps/<study>.journal).
    supernet_run: an MLflow run id to select from (None: train one). sampler: 'tpe' (seeded
    with sampler_seed, None: unseeded) or 'grid': one trial per combination of the params'
    values (categorical choices, every int of an int range), in order, n_trials ignored.
    max_retry: retries of a dead worker's trial (0: none).
    """

    def __init__(self, study_name=None, params=None, n_trials=8, storage=None,
                 metric="test_error", direction="minimize", selection_only=True,
                 supernet_run=None, sampler="tpe", sampler_seed=0, workers=1,
                 heartbeat_interval=30, grace_period=90, max_retry=3):
        if sampler not in ("tpe", "grid"):
            raise ValueError(f"sweep.sampler must be 'tpe' or 'grid', not {sampler!r}")
        self.study_name, self.params, self.n_trials, self.storage = study_name, params, \
            n_trials, storage
        self.metric, self.direction, self.selection_only = metric, direction, selection_only
        self.supernet_run, self.sampler, self.sampler_seed = supernet_run, sampler, sampler_seed
        self.workers, self.heartbeat_interval = workers, heartbeat_interval
        self.grace_period, self.max_retry = grace_period, max_retry

    def __call__(self, call, experiment_name, nested):
        """Run trials until the study's `n_trials` slots are done; returns the study summary.
        `nested(call, **overrides)` runs one trial's experiment as a nested run."""
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        # the heartbeat retry callback is marked experimental; it is the documented way
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if self.study_name is None:
            raise ValueError("sweep.study_name is not bound: a sweep names its study")
        grid = grid_points(self.params) if self.sampler == "grid" else None
        study, backend, lock = open_study(self.study_name, self.storage, self.direction,
                                          self.sampler_seed, len(grid) if grid else self.n_trials,
                                          self.heartbeat_interval, self.grace_period,
                                          self.max_retry, WORKER, grid)
        children = spawn_workers(call.argv, self.workers)  # they wait for the setup below
        parent = sweep_run_id(study, experiment_name, call.gin_files, call.bindings,
                              self.storage, WORKER, lock)
        source = None
        if self.selection_only:
            source = self.supernet_run or supernet_run_id(study, call, parent, WORKER, lock,
                                                          nested)
        work(study, backend,
             objective(study, call, self.params, parent, source, self.metric, nested),
             RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry))
        close_killed_runs(study, experiment_name)
        failed = [p.args for p in children if p.wait() != 0]
        summary = summarise_sweep(study, parent, self.metric)
        if failed:
            raise RuntimeError(f"{len(failed)} of {self.workers - 1} sweep worker processes "
                               "failed")
        return summary


def grid_points(params):
    """Every combination of the sweep's values, the first parameter varying slowest."""
    values = []
    for name, (kind, *args) in params.items():
        if kind == "categorical":
            values.append(list(args[0]))
        elif kind == "int":
            values.append(list(range(args[0], args[1] + 1)))
        else:
            raise ValueError(f"sweep.sampler = 'grid' needs categorical or int params; "
                             f"{name!r} is {kind}")
    return [dict(zip(params, combo)) for combo in itertools.product(*values)]


def without_workers(argv):
    """argv less its `--workers N` / `--workers=N`."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--workers="):
            skip = False
            continue
        skip = a == "--workers"
        if not skip:
            out.append(a)
    return out


def spawn(argv, index, count):
    """Worker `index` of `count`: the same command, explicitly (gin bindings are per process),
    told its place (runner/lifecycle/placement.py: one GPU each)."""
    return subprocess.Popen([sys.executable, "-m", "runner", *without_workers(argv),
                             "--workers", "1"], env=worker_env(index, count))


def spawn_workers(argv, workers):
    """Workers 1..N-1 of `--workers N`; this process is worker 0 (its own GPU too)."""
    if workers > 1:
        os.environ[WORKER_ENV] = f"0/{workers}"
    return [spawn(argv, i, workers) for i in range(1, workers)]


def work(study, storage, fn, retry):
    """Run waiting trial slots until none is waiting or running; fail dead workers' trials."""
    import optuna

    waiting, running = optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING
    while True:
        fail_dead_trials(study, storage, retry)
        trials = study.get_trials(deepcopy=False, states=(waiting, running))
        if any(t.state == waiting for t in trials):
            # catch: a trial that raises is recorded FAIL and the study goes on
            study.optimize(fn, n_trials=1, catch=(Exception,))
        elif trials:  # another worker's trial: wait, it may die and come back as a retry
            time.sleep(POLL_S)
        else:
            return


def gin_literal(value):
    """A Python value as gin source (strings quoted, None/True/numbers as written)."""
    return repr(value)


def suggest(trial, name, spec):
    """One hyperparameter from its gin-written distribution."""
    kind, *args = spec
    if kind == "int":
        return trial.suggest_int(name, args[0], args[1])
    if kind == "float":
        return trial.suggest_float(name, args[0], args[1], log=len(args) > 2 and args[2] == "log")
    if kind == "categorical":
        return trial.suggest_categorical(name, list(args[0]))
    raise ValueError(f"sweep.params[{name!r}]: unknown kind {kind!r} "
                     "(int, float or categorical)")


def objective(study, call, params, parent, source, metric, nested):
    """The trial function: bind the suggested values, run the experiment as a nested run."""
    import dataclasses

    import optuna

    from tracking.mlflow_tracker import Tracker

    def fn(trial):
        system = trial.storage.get_trial_system_attrs(trial_id(trial))
        if "fixed_params" not in system:  # another worker took the last slot first
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("no trial slot left")
        trial.set_user_attr("worker", WORKER)
        try:
            values = {name: suggest(trial, name, spec) for name, spec in params.items()}
            extra = [f"{k} = {gin_literal(v)}" for k, v in values.items()]
            if source:
                extra.append(f"source.run = {source!r}")
            bindings = list(call.bindings) + extra
            parse_config(call.gin_files, bindings)  # explicit: never inherited state
            summary = nested(dataclasses.replace(
                call, bindings=bindings, resume=False, parent_run_id=parent,
                run_name=f"{study.study_name}-trial{trial.number}",
                extra_tags={"sweep_study": study.study_name, "sweep_trial": trial.number,
                            "sweep_params": json.dumps(values),
                            "study_trial": trial_tag(study, trial)}))
        except Exception as e:  # recorded on the trial; optimize(catch=...) marks it FAIL
            trial.set_user_attr("error", redact(one_line(e)))  # the study is a store too
            raise
        trial.set_user_attr("mlflow_run_id", summary["run_id"])
        metrics = Tracker().get_run(summary["run_id"]).metrics
        if metric not in metrics:
            raise KeyError(f"sweep.metric {metric!r} not logged by the trial run "
                           f"(it has {sorted(metrics)[:8]}...)")
        return metrics[metric]

    return fn


def summarise_sweep(study, parent, metric):
    """The study summary on the sweep run: trial table, best trial, objective plot."""
    from runner.commands.report import write_tables
    from tracking.mlflow_tracker import Tracker
    from tracking.plots import sweep_objective

    tracker = Tracker()
    tracker.run_id = parent
    trials = study.trials_dataframe()
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_tables({"trials": trials}, tmp):
            tracker.artifact(path, "sweep")
    tracker.plot(sweep_objective, trials, name="objective.png")
    counts = trials.state.value_counts().to_dict() if len(trials) else {}
    summary = {"study": study.study_name, "n_complete": counts.get("COMPLETE", 0),
               "n_fail": counts.get("FAIL", 0), "run_id": parent}
    if done:
        best = study.best_trial
        summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
        tracker.tags({f"best.{k}": v for k, v in best.params.items()})  # a rerun may change it
        tracker.metrics({f"sweep/best_{metric}": best.value}, step=0)
    tracker.metrics({"sweep/n_complete": summary["n_complete"],
                     "sweep/n_fail": summary["n_fail"]}, step=0)
    tracker.set_status("FINISHED")
    return summary
