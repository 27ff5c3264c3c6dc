"""The multi-seed protocol run in one process: one parent run, one nested run per seed
(runner/sweeps/seeds.py runs the same protocol over several workers or machines)."""
import dataclasses

import numpy as np

from runner.lifecycle.phases import log_config
from runner.lifecycle.runs import finished, finished_seeds, opened
from tracking.mlflow_tracker import Tracker


def in_turn(call, settings, nested):
    """Run `settings.seeds` one after another as nested runs (`nested(call, **overrides)`);
    on --resume the seeds that finished are not run again."""
    tracker = Tracker()
    tracker.check()
    experiment, seeds = settings.experiment_name, settings.seeds
    name = f"{experiment}-seeds"
    newest = tracker.newest(experiment, name) if call.resume else None
    if newest is not None and newest.status == "FINISHED":
        return finished(newest, experiment, name, settings.output_dir)
    with opened(tracker, experiment, name, {"seeds": seeds}, call.parent_run_id,
                newest and newest.run_id, settings.output_dir):
        log_config(tracker, call.gin_files, call.bindings)
        done = finished_seeds(tracker, experiment) if call.resume else {}
        child = dataclasses.replace(call, parent_run_id=tracker.run_id)
        results = []
        for s in seeds:
            if s in done:  # a resumed protocol does not rerun the seeds that finished
                results.append(done[s])
                continue
            out = nested(child, seed=s, seeds=())
            results.append({k: out[k] for k in ("run_id", "test_error") if k in out})
        log_seed_metrics(tracker, results)
        return {"run_id": tracker.run_id, "seeds": dict(zip(seeds, results))}


def log_seed_metrics(tracker, results):
    """The protocol's summary on its parent run: best, mean and std of the seeds' test errors
    (run one after another here, or at once by runner/sweeps/seeds.py)."""
    errors = [r["test_error"] for r in results if "test_error" in r]
    if errors:
        tracker.metrics({"seeds/best_test_error": min(errors),
                         "seeds/mean_test_error": float(np.mean(errors)),
                         "seeds/std_test_error": float(np.std(errors, ddof=1))
                         if len(errors) > 1 else 0.0}, step=0)
