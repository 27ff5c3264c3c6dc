"""The composition root: one `runner` call = one MLflow run of search, selection and retrain."""
import functools
import glob
import os
import tempfile
from dataclasses import dataclass

import gin
import numpy as np
import torch

from runner import methods  # noqa: F401  (registers them with gin)
from runner.training import distributed
from runner.config import flat_bindings
from runner.data.datasets import dataset
from runner.selection.lookup import judge_for, log_final
from runner.selection.select import (records_table, select, selector_name, source_epoch,
                                     source_run)
from runner.lifecycle.given import given_genotype
from runner.lifecycle.environment import (git_commit, pick_device, seed_everything, set_deterministic,
                                writable)
from runner.lifecycle.runs import finished, finished_seeds, opened
from runner.training import checkpoint
from runner.training.retrain import retrain
from runner.training.search import search
from spaces.cell import SearchSpace, get_space
from tracking import plots
from tracking.mlflow_tracker import Tracker
from tracking.silent import SilentTracker


RETRAIN_ONLY = "none (given genotype)"


@gin.configurable(denylist=["space", "num_classes", "in_channels"])
def supernet(space, num_classes, in_channels, C=16, layers=8, alpha_init_std=1e-3):
    """The search supernet of the space's family (DARTS: C=16, 8 cells, darts-pt's defaults).

    alpha_init_std 0 starts every edge at uniform mixing weights."""
    return space.family.supernet(space, alpha_init_std, C=C, layers=layers,
                                 num_classes=num_classes, in_channels=in_channels)


def log_config(tracker, gin_files, bindings):
    for path in gin_files:
        tracker.artifact(path, "config")
    tracker.text("\n".join(bindings) + "\n", "config/bindings.gin")
    tracker.params(flat_bindings())


def log_selection(tracker, records, genotype, space, num_classes):
    import pandas as pd

    rows = records_table(records)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "decisions.csv")
        pd.DataFrame(rows).to_csv(path, index=False)
        tracker.artifact(path, "selection")
    tracker.json(records, "selection/decisions.json")
    timeline = functools.partial(plots.decision_timeline, cell_types=space.cell.types)
    tracker.plot(timeline, records, name="decisions.png")
    log_genotype(tracker, genotype, space, num_classes)


def log_genotype(tracker, genotype, space, num_classes):
    tracker.text(genotype.to_json(), "genotype.json")
    tracker.text(str(genotype) + "\n", "genotype.txt")
    tracker.tags({"genotype": str(genotype)})
    size = space.family.param_size(genotype, num_classes)
    tracker.ensure_logged({"genotype/param_size_M": size / 1e6,
                           "genotype/skip_count": genotype.count("skip_connect")}, step=0)


def train_supernet(tracker, net, method, data, gen, out, resume=None):
    """Search, then log the alphas per epoch and the supernet checkpoint as artifacts."""
    ckpt = os.path.join(out, "search.pt")
    alphas = search(net, method, data, tracker, gen, ckpt, resume=resume)
    if not distributed.is_main():  # rank 0 writes the files and logs them
        return
    alpha_path = os.path.join(out, "alphas.npz")
    np.savez_compressed(alpha_path, alphas=alphas, cells=np.array(net.space.cell.types))
    tracker.artifact(alpha_path, "search")
    tracker.plot(plots.alpha_history, alphas, net.space, name="alpha_history.png")
    for snapshot in sorted(glob.glob(os.path.join(out, "search_epoch*.pt"))):
        tracker.artifact(snapshot, "search")  # search.keep_every; after a resume too
    if os.path.exists(ckpt):
        tracker.artifact(ckpt, "search")
    else:  # zero search epochs: still leave the supernet selection will start from
        checkpoint.save({"epoch": 0, "meta": checkpoint.meta(net, method),
                         "net": net.state_dict(), "method": method.state_dict()}, ckpt)
        tracker.artifact(ckpt, "search")


def load_supernet(tracker, run_id, net, method, out, device, epoch=None):
    """Start selection from the supernet another run trained (`select.from_run`), after its
    search epoch `epoch` (`select.from_epoch`, a `search.keep_every` snapshot) or at its end."""
    name = "search.pt" if epoch is None else f"search_epoch{epoch}.pt"
    # torchrun: rank 0 reads the tracking store, every rank gets the state
    state = distributed.decide(lambda: fetch_supernet(tracker, run_id, name, out, device))
    trained = state.get("meta", {}).get("space", net.space.name)
    if trained != net.space.name:  # another method may select from it; another space may not
        raise checkpoint.CheckpointError(f"run {run_id} trained a {trained} supernet, "
                                         f"not {net.space.name}")
    with checkpoint.applying(state, f"supernet checkpoint of run {run_id}"):
        net.load_state_dict(state["net"])
        method.setup(net)
        method.load_state_dict(state["method"])
    tracker.tags({"selected_from_run": run_id, "selected_from_epoch":
                  state.get("epoch") if epoch is not None else "final"})


def fetch_supernet(tracker, run_id, name, out, device):
    try:
        path = tracker.client.download_artifacts(run_id, f"search/{name}", out)
    except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing artifact
        raise checkpoint.CheckpointError(f"run {run_id} has no artifact search/{name} "
                                         f"({type(e).__name__})") from e
    return checkpoint.load(path, map_location=device)


@gin.configurable(denylist=["gin_files", "bindings", "resume", "parent_run_id", "run_name",
                            "extra_tags"])
def run(gin_files=(), bindings=(), resume=False, experiment_name=gin.REQUIRED,
        space=gin.REQUIRED, method=None, seed=2, seeds=(), device="auto",
        output_dir="outputs", do_select=True, do_retrain=True, deterministic=False, plots=True,
        analysis=None, genotype=None, parent_run_id=None, run_name=None, extra_tags=None):
    """Search, select and retrain as the gin files say; returns a summary dict.

    With `resume`, the newest run of the same name continues in place from its last
    checkpoint (epoch boundary or PT round), or, when it FINISHED, is left alone (a repeated
    --resume is safe). `seeds` runs one nested run per seed under one
    parent run; `do_select=False` stops after the search (a supernet for `select.from_run`).
    `analysis` (runner/analysis/, e.g. @Discretisation()) runs on the searched or loaded
    supernet in place of selection and retrain. `genotype` (a genotype string, a genotype.json
    path or the id of the MLflow run that selected it; runner/lifecycle/given.py) skips search and
    selection: the run retrains that genotype, nested under its selecting run if named.
    """
    if seeds and distributed.ranks().world > 1:
        raise ValueError("run.seeds under torchrun: start one torchrun job per seed, or spread "
                         "the seeds over GPUs with --workers (one process per GPU)")
    if seeds:
        return run_seeds(gin_files, bindings, resume, experiment_name, list(seeds),
                         parent_run_id, output_dir)
    device, placed = pick_device(device)
    space = get_space(space)
    set_deterministic(deterministic)
    writable(output_dir)
    # under torchrun rank 0 alone reads and writes the tracking store and tells the others
    tracker = Tracker(plots=plots) if distributed.is_main() else SilentTracker()
    distributed.decide(tracker.check)  # fail before any training when it is unreachable
    given = (distributed.decide(lambda: given_genotype(genotype, space, tracker.client))
             if genotype is not None else None)
    check_parts(method, given, analysis)
    name = run_name or f"{experiment_name}-seed{seed}"
    newest = distributed.decide(lambda: tracker.newest(experiment_name, name)) if resume else None
    if newest is not None and newest.status == "FINISHED":  # a repeated --resume: nothing to do
        return finished(newest, experiment_name, name, output_dir)
    data = dataset(device=device)
    seed_everything(seed)
    gen = torch.Generator(device).manual_seed(seed)
    method = method() if given is None else None
    tags = {"space": space.name, "method": method.name if method else RETRAIN_ONLY,
            "selector": selector_name() if method else RETRAIN_ONLY,
            "dataset": data.name, "seed": seed, "git_commit": git_commit(), "device": str(device),
            "deterministic": deterministic, **placed, **distributed.tags(), **(extra_tags or {})}
    if analysis is not None:
        tags["selector"] = f"analysis: {analysis.name}"
    elif not do_select:
        tags["selector"] = "none (search only)"
    if given is not None:
        tags.update(given.tags)
    with opened(tracker, experiment_name, name, tags,
                parent_run_id or (given.source_run if given else source_run()),
                newest and newest.run_id, output_dir):
        tracker.run_id = distributed.decide(lambda: tracker.run_id)
        try:
            judge = (judge_for(space, data.name, tracker)
                     if do_select and not analysis and given is None else None)
            parts = Parts(tracker, space, method, data, gen, seed, device,
                          os.path.join(output_dir, tracker.run_id), judge, analysis)
            if given is not None:
                return _retrain_given(parts, given.genotype, gin_files, bindings)
            return _run(parts, gin_files, bindings, do_select, do_retrain)
        finally:
            tracker.text(gin.operative_config_str(), "config/operative.gin")


def check_parts(method, given, analysis=None):
    if method is None and given is None:
        raise ValueError("run.method is not bound (include a gin/methods/ file), nor is "
                         "run.genotype (a retrain of a given genotype)")
    if distributed.ranks().world > 1 and analysis is not None:
        raise ValueError(f"run.analysis ({analysis.name}) runs in one process, not under "
                         "torchrun")


def run_seeds(gin_files, bindings, resume, experiment_name, seeds, parent_run_id=None,
              output_dir="outputs"):
    """One parent run with one nested run per seed (the multi-seed protocol)."""
    tracker = Tracker()
    tracker.check()
    name = f"{experiment_name}-seeds"
    newest = tracker.newest(experiment_name, name) if resume else None
    if newest is not None and newest.status == "FINISHED":
        return finished(newest, experiment_name, name, output_dir)
    with opened(tracker, experiment_name, name, {"seeds": seeds}, parent_run_id,
                newest and newest.run_id, output_dir):
        log_config(tracker, gin_files, bindings)
        done = finished_seeds(tracker, experiment_name) if resume else {}
        results = []
        for s in seeds:
            if s in done:  # a resumed protocol does not rerun the seeds that finished
                results.append(done[s])
                continue
            out = run(gin_files, bindings, resume, seed=s, seeds=(), parent_run_id=tracker.run_id)
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


def saved(out, phase):
    """The checkpoint a killed run left for `phase`, or None."""
    path = os.path.join(out, f"{phase}.pt")
    return checkpoint.load(path) if os.path.exists(path) else None


@dataclass
class Parts:
    """What one run's phases share: built once by `run` from the gin bindings."""

    tracker: Tracker
    space: SearchSpace
    method: object
    data: object
    gen: torch.Generator
    seed: int
    device: torch.device
    out: str  # the run's output folder: its checkpoints
    judge: object = None  # runner.selection.lookup.Judge when the family's benchmark table is there
    analysis: object = None  # runs on the supernet instead of selection (runner/analysis/)


def _run(p, gin_files, bindings, do_select, do_retrain):
    tracker, method, data, gen, out = p.tracker, p.method, p.data, p.gen, p.out
    os.makedirs(out, exist_ok=True)
    log_config(tracker, gin_files, bindings)
    net = supernet(p.space, data.num_classes, data.in_channels).to(p.device)
    parent = source_run()
    select_state = distributed.decide(lambda: saved(out, "select"))  # rank 0's file, to all
    if select_state is not None:
        method.setup(net)  # the selection checkpoint holds the supernet and alpha optimiser
    elif parent:
        load_supernet(tracker, parent, net, method, out, p.device, source_epoch())
    else:
        train_supernet(tracker, net, method, data, gen, out,
                       distributed.decide(lambda: saved(out, "search")))
    summary = {"run_id": tracker.run_id, "space": p.space.name}
    if p.analysis is not None:
        seed_everything(p.seed)  # as selection: the same supernet and seed, the same result
        gen.manual_seed(p.seed)
        return dict(summary, **p.analysis(net, method, data, tracker, gen, p.seed))
    if not do_select:
        return dict(summary, genotype=net.genotype())
    if select_state is None:
        # selection draws from freshly seeded RNGs, so that selecting again from this run's
        # checkpoint (`select.from_run`) replays the same batches and decisions
        seed_everything(p.seed)
        gen.manual_seed(p.seed)
    genotype, records = select(net, method, data, tracker, gen, p.seed,
                               ckpt_path=os.path.join(out, "select.pt"), resume=select_state,
                               judge=p.judge)
    log_selection(tracker, records, genotype, p.space, data.num_classes)
    summary["genotype"] = genotype
    if p.judge:
        summary["bench"] = log_final(tracker, p.judge, genotype)
    if do_retrain:
        summary.update(_retrain(p, genotype))
    return summary


def _retrain(p, genotype):
    """Train the genotype's network from scratch; its test error is the run's result."""
    resume = distributed.decide(lambda: saved(p.out, "retrain"))  # rank 0's file, to all
    result = retrain(genotype, p.space, p.data, p.tracker, p.gen, p.device,
                     ckpt_path=os.path.join(p.out, "retrain.pt"), resume=resume)
    p.tracker.ensure_logged({k: result[k] for k in ("test_error", "test_acc", "test_top5_error")
                             if k in result}, step=0)
    p.tracker.plot(plots.retrain_curves, p.tracker.history("retrain/"), name="retrain.png")
    return result


def _retrain_given(p, genotype, gin_files, bindings):
    """`run.genotype`: no supernet, no selection; the given genotype is retrained."""
    os.makedirs(p.out, exist_ok=True)
    log_config(p.tracker, gin_files, bindings)
    log_genotype(p.tracker, genotype, p.space, p.data.num_classes)
    return {"run_id": p.tracker.run_id, "space": p.space.name, "genotype": genotype,
            **_retrain(p, genotype)}
