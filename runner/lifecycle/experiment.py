"""What every single-run mode shares: its parts built once, its MLflow run opened (or reopened
on --resume), and the phases the modes are made of (runner/lifecycle/modes.py)."""
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import gin
import torch

from runner import methods  # noqa: F401  (registers them with gin)
from runner.data.datasets import DataError, dataset
from runner.lifecycle import phases
from runner.lifecycle.environment import (git_commit, pick_device, seed_everything,
                                          set_deterministic, writable)
from runner.lifecycle.given import given_genotype
from runner.lifecycle.runs import finished, opened
from runner.lifecycle.settings import Call, RunSettings, Source
from runner.selection.lookup import judge_for
from runner.selection.select import Selector
from runner.training import distributed
from runner.training.precision import precision
from runner.training.search import Search
from spaces.cell import SearchSpace, get_space
from tracking.interface import RunTracker
from tracking.mlflow_tracker import Tracker
from tracking.silent import SilentTracker

RETRAIN_ONLY = "none (given genotype)"


@dataclass
class Parts:
    """What one run's phases share: built once from the settings."""

    call: Call
    settings: RunSettings
    tracker: RunTracker
    space: SearchSpace
    data: Any
    gen: torch.Generator
    device: torch.device
    mode: Any  # the precision switches, decided once for the run's device
    method: Any = None  # None: a retrain of a given genotype
    selector: Optional[Selector] = None
    search: Optional[Search] = None
    source: Source = field(default_factory=lambda: Source(None, None))
    given: Any = None  # runner.lifecycle.given.Given
    judge: Any = None  # runner.selection.lookup.Judge when the benchmark table is there
    out: str = ""  # the run's output folder: its checkpoints

    @property
    def seed(self):
        return self.settings.seed


def open_run(call, settings, mode_name, body):
    """Build the parts, open the run and return `body(parts)`; with `call.resume` the newest
    run of the same name continues in place, or, when it FINISHED, is left alone (a repeated
    --resume is safe)."""
    check(settings)
    device, placed = pick_device(settings.device)
    space = get_space(settings.space)
    set_deterministic(settings.deterministic)
    writable(settings.output_dir)
    # under torchrun rank 0 alone reads and writes the tracking store and tells the others
    tracker = Tracker(plots=settings.plots) if distributed.is_main() else SilentTracker()
    distributed.decide(tracker.check)  # fail before any training when it is unreachable
    p = Parts(call, settings, tracker, space, None, None, device, precision(device))
    if settings.genotype is not None:
        p.given = distributed.decide(lambda: given_genotype(settings.genotype, space, tracker))
    else:
        p.method, p.selector, p.search, p.source = settings.method(), Selector(), Search(), \
            Source()
    name = call.run_name or run_name(settings, p, call)
    newest = distributed.decide(lambda: tracker.newest(settings.experiment_name, name)) \
        if call.resume else None
    if newest is not None and newest.status == "FINISHED":  # a repeated --resume: nothing to do
        return finished(newest, settings.experiment_name, name, settings.output_dir)
    p.data = dataset(device=device)
    if getattr(p.data, "streamed", False) and settings.genotype is None:
        raise DataError(f"{p.data.name} data streams from disk (over dataset.memory_budget, or "
                        "ImageNet): search and selection need it in memory; retrain a given "
                        "genotype (run.genotype), or lower dataset.image_size or dataset.limit")
    seed_everything(settings.seed)
    p.gen = torch.Generator(device).manual_seed(settings.seed)
    parent = call.parent_run_id or (p.given.source_run if p.given else p.source.run)
    with opened(tracker, settings.experiment_name, name, tags(p, mode_name, placed), parent,
                newest and newest.run_id, settings.output_dir):
        tracker.run_id = distributed.decide(lambda: tracker.run_id)
        try:
            if mode_name in ("select", "select_from_run"):
                p.judge = judge_for(space, p.data.name, tracker)
            p.out = os.path.join(settings.output_dir, tracker.run_id)
            os.makedirs(p.out, exist_ok=True)
            phases.log_config(tracker, call.gin_files, call.bindings)
            phases.log_dataset(tracker, p.data)
            return body(p)
        finally:
            tracker.text(gin.operative_config_str(), "config/operative.gin")


def check(settings):
    if settings.method is None and settings.genotype is None:
        raise ValueError("run.method is not bound (include a gin/methods/ file), nor is "
                         "run.genotype (a retrain of a given genotype)")
    if distributed.ranks().world > 1 and settings.analysis is not None:
        raise ValueError(f"run.analysis ({settings.analysis.name}) runs in one process, not "
                         "under torchrun")


def run_name(settings, p, call):
    """'<experiment>-seed<N>'; '<experiment>-<method>-<selector>-seed<N>' when the command
    makes them other than the experiment file's (`call.file_default`), so that runs compared
    in the MLflow UI say what differs."""
    names = (p.method.name, p.selector.name) if p.method is not None else None
    differ = call.file_default is not None and names != call.file_default
    middle = f"-{names[0]}-{names[1]}" if differ and names else ""
    return f"{settings.experiment_name}{middle}-seed{settings.seed}"


def tags(p, mode_name, placed):
    """The run's tags: what it searched, how it selected, where it ran."""
    s = p.settings
    selector = {"search_only": "none (search only)", "retrain_given": RETRAIN_ONLY,
                "analysis": f"analysis: {getattr(s.analysis, 'name', '')}"}.get(
        mode_name, p.selector.name if p.selector else RETRAIN_ONLY)
    out = {"space": p.space.name, "method": p.method.name if p.method else RETRAIN_ONLY,
           "selector": selector, "dataset": p.data.name, "seed": s.seed,
           "git_commit": git_commit(), "device": str(p.device), "deterministic": s.deterministic,
           "run_mode": mode_name, **placed, **distributed.tags(), **p.call.extra_tags}
    if p.given is not None:
        out.update(p.given.tags)
    return out
