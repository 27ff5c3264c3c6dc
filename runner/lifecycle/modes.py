"""The run modes, and the one place that picks among them (`choose`).

A single-run mode is one MLflow run, a function of the run's parts (runner/lifecycle/
experiment.py) made of the phases in runner/lifecycle/phases.py. A composite mode (a sweep,
the seed protocol, the trajectory analysis) opens a parent run and runs single runs nested
under it through `nested`. Adding a mode: write its function here and give `choose` (or
`single`) the condition that selects it.
"""
import os

from runner.lifecycle import phases
from runner.lifecycle.experiment import open_run
from runner.lifecycle.settings import RunSettings, Source


# --- single runs ------------------------------------------------------------------------
def search_select(p):
    """Search, select and (unless `run.do_retrain = False`) retrain: the paper's pipeline."""
    net, state = phases.resume_selection(p)
    net = net or phases.trained_supernet(p)
    return retrain_if_asked(p, phases.selection(p, net, state))


def select_from_run(p):
    """Select from the supernet another run trained (`source.run`, `source.epoch`)."""
    net, state = phases.resume_selection(p)
    net = net or phases.loaded_supernet(p)
    return retrain_if_asked(p, phases.selection(p, net, state))


def search_only(p):
    """Search and stop (`run.do_select = False`): a supernet for `source.run`."""
    net = phases.trained_supernet(p)
    return {"run_id": p.tracker.run_id, "space": p.space.name, "genotype": net.genotype()}


def analysis(p):
    """`run.analysis` on this run's supernet or the one `source.run` names, in place of
    selection and retrain."""
    net = phases.loaded_supernet(p) if p.source.run else phases.trained_supernet(p)
    phases.reseed(p)  # as selection: the same supernet and seed, the same result
    out = p.settings.analysis(net, p.method, p.data, p.tracker, p.gen, p.seed,
                              p.source.run or p.tracker.run_id, mode=p.mode)
    return {"run_id": p.tracker.run_id, "space": p.space.name, **out}


def retrain_given(p):
    """`run.genotype`: no supernet, no selection; the given genotype is retrained."""
    genotype = p.given.genotype
    phases.log_genotype(p.tracker, genotype, p.space, p.data.num_classes)
    return {"run_id": p.tracker.run_id, "space": p.space.name, "genotype": genotype,
            **phases.retraining(p, genotype)}


def retrain_if_asked(p, summary):
    if p.settings.do_retrain:
        summary.update(phases.retraining(p, summary["genotype"]))
    return summary


SINGLE = {"select": search_select, "select_from_run": select_from_run,
          "search_only": search_only, "analysis": analysis, "retrain_given": retrain_given}


def single(settings, source):
    """The single-run mode the settings ask for."""
    if settings.genotype is not None:
        return "retrain_given"
    if settings.analysis is not None:
        return "analysis"
    if not settings.do_select:
        return "search_only"
    return "select_from_run" if source.run else "select"


def nested(call, **overrides):
    """One single run: the settings from the parsed bindings, `overrides` on top."""
    settings = RunSettings(**overrides)
    name = single(settings, Source())
    return open_run(call, settings, name, SINGLE[name])


# --- composite modes -------------------------------------------------------------------
def seeds_in_turn(call, settings):
    """`run.seeds`: one parent run, one nested run per seed, one after another."""
    from runner.lifecycle.seeds import in_turn

    return in_turn(call, settings, nested)


def seeds_at_once(call, settings, spread):
    """`run.seeds` over `--workers N` processes or machines sharing `seeds.storage`."""
    return spread(call, settings.experiment_name, settings.seeds, nested)


def sweep(call, settings, sweep_settings):
    """`sweep.params`: an Optuna study, one nested run per trial (runner/sweeps/)."""
    return sweep_settings(call, settings.experiment_name, nested)


def trajectory(call, settings, trajectory_settings):
    """`trajectory.selectors`: selections from the supernet's snapshots over its search."""
    from runner.training.search import Search

    return trajectory_settings(call, settings.experiment_name, Search(), settings.plots,
                               nested)


def pool(call, settings, pool_settings):
    """`pool.size`: Zero-Cost-PT's candidate pool and post-validation (runner/selection/pool.py)."""
    return pool_settings(call, settings, Source(), nested)


def choose(call):
    """(mode name, function of no argument) for the parsed command."""
    from runner.analysis.trajectory import Trajectory
    from runner.lifecycle.placement import WORKER_ENV
    from runner.selection.pool import Pool
    from runner.sweeps.seeds import Spread
    from runner.sweeps.sweep import Sweep
    from runner.training import distributed

    settings = RunSettings()
    sweep_settings, spread, traj, pool_settings = Sweep(), Spread(), Trajectory(), Pool()
    if settings.seeds and distributed.ranks().world > 1:
        raise ValueError("run.seeds under torchrun: start one torchrun job per seed, or spread "
                         "the seeds over GPUs with --workers (one process per GPU)")
    if pool_settings.size and (settings.seeds or sweep_settings.params is not None
                               or traj.selectors is not None):
        raise ValueError("pool.size runs one pool per command: start one command per seed, "
                         "without sweep.params or trajectory.selectors")
    if sweep_settings.params is not None:
        return "sweep", lambda: sweep(call, settings, sweep_settings)
    if settings.seeds and (spread.workers > 1 or spread.storage is not None
                           or WORKER_ENV in os.environ):
        return "seeds_at_once", lambda: seeds_at_once(call, settings, spread)
    if settings.seeds:
        return "seeds_in_turn", lambda: seeds_in_turn(call, settings)
    if traj.selectors is not None:
        return "trajectory", lambda: trajectory(call, settings, traj)
    if pool_settings.size:
        return "pool", lambda: pool(call, settings, pool_settings)
    name = single(settings, Source())
    return name, lambda: open_run(call, settings, name, SINGLE[name])


def file_default(gin_files, bindings):
    """(method, selector) names that the experiment file (the first --gin) gives alone, when
    the command changes anything on top of it; None otherwise. It parses that file alone:
    call it before the command's own parse."""
    from runner.config import parse_config
    from runner.selection.select import Selector

    if len(gin_files) < 2 and not bindings:
        return None
    try:
        parse_config(gin_files[:1], [])
        settings = RunSettings()
        return (settings.method().name, Selector().name) if settings.method else None
    except Exception:  # noqa: BLE001 - a file that needs the command's other parts: no default
        return None


def run_command(call):
    """Run what the parsed command asks for; returns its summary."""
    return choose(call)[1]()
