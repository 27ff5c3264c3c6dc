"""The MLflow runs of an experiment: opened by one process at a time, found again on resume."""
import os
from contextlib import contextmanager

from runner.training import lock


def finished(info, experiment_name, name, output_dir):
    """The summary of a --resume that finds its run FINISHED: where the results are."""
    return {"run_id": info.run_id, "already_finished": (
        f"run {info.run_id} ({name!r} in experiment {experiment_name!r}) already FINISHED; "
        f"its results are in MLflow and {os.path.join(output_dir, info.run_id)}; "
        "nothing to resume")}


@contextmanager
def opened(tracker, experiment_name, name, tags, parent_run_id, reopen, output_dir):
    """The MLflow run, held by this process alone (runner/training/lock.py); a run to reopen
    is locked before it is touched, so a refused process changes nothing in it."""
    what = f"run {{}} ({name!r})"
    if not tracker.records:  # a torchrun rank other than 0: rank 0 holds the run
        yield
        return
    if reopen:
        with lock.held(os.path.join(output_dir, reopen), what.format(reopen)), \
                tracker.run(experiment_name, run_name=name, tags=tags, run_id=reopen,
                            parent_run_id=parent_run_id):
            yield
        return
    with tracker.run(experiment_name, run_name=name, tags=tags, parent_run_id=parent_run_id):
        with lock.held(os.path.join(output_dir, tracker.run_id), what.format(tracker.run_id)):
            yield


def finished_seeds(tracker, experiment_name):
    """Seeds of this protocol whose nested run already FINISHED: seed -> summary."""
    runs = tracker.find_runs(
        [experiment_name],
        f"tags.`mlflow.parentRunId` = '{tracker.run_id}' and attributes.status = 'FINISHED'")
    return {int(r.tags["seed"]): {"run_id": r.run_id,
                                  **({"test_error": r.metrics["test_error"]}
                                     if "test_error" in r.metrics else {})}
            for r in runs}
