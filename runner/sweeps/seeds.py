"""The seeds of `run.seeds` run at once: one worker process per GPU (`--workers N`), or the
same command on several machines sharing a PostgreSQL study (`seeds.storage`).

The seeds are the slots of a grid study over `run.seed` (the sweep machinery of
runner/sweeps/: trial slots, dead-worker retries, one MLflow parent run made once), so every
seed runs once, a killed worker's seed runs again, and the parent run collects them all with
the summary metrics the sequential protocol (runner/lifecycle/seeds.py) logs.
"""
import gin

from runner.config import parse_config
from runner.sweeps.setup import close_killed_runs, once, open_study, trial_tag
from runner.sweeps.urls import default_url
from runner.sweeps.sweep import WORKER, spawn_workers, work


@gin.configurable("seeds")
class Spread:
    """How the seeds of `run.seeds` run at once: `workers` local processes (`--workers N`) and
    every machine that runs the same command on the same `storage` (None: a journal file, one
    machine). study_name (None: '<experiment>-seeds') names the study; running the command
    again joins it (resumes)."""

    def __init__(self, workers=1, storage=None, study_name=None, heartbeat_interval=30,
                 grace_period=90, max_retry=3):
        self.workers, self.storage, self.study_name = workers, storage, study_name
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.max_retry = max_retry

    def __call__(self, call, experiment_name, seed_list, nested):
        """Run `seed_list` as trial slots; `nested(call, **overrides)` runs one seed."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        name = self.study_name or f"{experiment_name}-seeds"
        study, backend, lock = open_study(name, self.storage, "minimize", 0, len(seed_list),
                                          self.heartbeat_interval, self.grace_period,
                                          self.max_retry, WORKER,
                                          [{"run.seed": s} for s in seed_list])
        children = spawn_workers(call.argv, self.workers)
        parent = once(study, "mlflow_seeds_run",
                      lambda: parent_run(call, experiment_name, seed_list,
                                         default_url(self.storage, name)), WORKER, lock)
        work(study, backend, objective(call, experiment_name, seed_list, parent, nested),
             RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry))
        close_killed_runs(study, experiment_name)
        failed = [p for p in children if p.wait() != 0]
        summary = summarise(parent, experiment_name, seed_list)
        if failed:
            raise RuntimeError(f"{len(failed)} of {self.workers - 1} seed worker processes "
                               "failed")
        return summary


def parent_run(call, experiment_name, seed_list, url):
    """The protocol's parent run, as the sequential one names and tags it."""
    from runner.lifecycle.phases import log_config
    from tracking.mlflow_tracker import Tracker

    tracker = Tracker()
    tracker.check()
    tracker.create_run(experiment_name, f"{experiment_name}-seeds",
                       {"seeds": str(list(seed_list)), "seeds_storage": url})
    log_config(tracker, call.gin_files, call.bindings)
    return tracker.run_id


def objective(call, experiment_name, seed_list, parent, nested):
    """One seed per trial slot: that seed's nested run under the parent."""
    import dataclasses

    import optuna

    from runner.compat.optuna_internals import trial_id

    def fn(trial):
        if "fixed_params" not in trial.storage.get_trial_system_attrs(trial_id(trial)):
            trial.set_user_attr("surplus", True)  # another worker took the last slot first
            raise optuna.TrialPruned("no seed left")
        trial.set_user_attr("worker", WORKER)
        seed = trial.suggest_categorical("run.seed", list(seed_list))
        extra = list(call.bindings) + [f"run.seed = {seed}", "run.seeds = []"]
        parse_config(call.gin_files, extra)  # explicit: never state inherited from another trial
        child = dataclasses.replace(call, bindings=extra, resume=False, parent_run_id=parent,
                                    run_name=f"{experiment_name}-seed{seed}",
                                    extra_tags={"worker": WORKER,
                                                "study_trial": trial_tag(trial.study, trial)})
        out = nested(child)
        trial.set_user_attr("mlflow_run_id", out["run_id"])
        return out.get("test_error", 0.0)

    return fn


def summarise(parent, experiment_name, seed_list):
    """Collect the finished seed runs on the parent and close it."""
    from runner.lifecycle.runs import finished_seeds
    from runner.lifecycle.seeds import log_seed_metrics
    from tracking.mlflow_tracker import Tracker

    tracker = Tracker()
    tracker.run_id = parent
    done = finished_seeds(tracker, experiment_name)
    missing = [s for s in seed_list if s not in done]
    results = [done[s] for s in seed_list if s in done]
    log_seed_metrics(tracker, results)
    tracker.set_status("FINISHED" if not missing else "FAILED")
    if missing:
        raise RuntimeError(f"seeds {missing} did not finish (see the study's failed trials); "
                           "run the same command again to retry them")
    return {"run_id": parent, "seeds": dict(zip(seed_list, results))}
