"""The settings of one run, built once from the gin bindings and passed down.

`run.*` and `source.*` are classes: `RunSettings()` is the parsed `run.*` bindings, with any
keyword given overriding its binding (a nested run of a sweep or a seed protocol). Nothing
below the mode dispatch reads a binding again.
"""
from dataclasses import dataclass, field
from typing import Optional

import gin


@gin.configurable("run")
class RunSettings:
    """What one `runner` command runs.

    seeds: one nested run per seed under a parent run (the multi-seed protocol).
    do_select = False stops after the search (a supernet for `source.run`). analysis
    (runner/analysis/, e.g. @Discretisation()) runs on the supernet in place of selection and
    retrain. genotype (a genotype string, a published name, a genotype.json path or the id of
    the MLflow run that selected it; runner/lifecycle/given.py) skips search and selection.
    log_model: log the retrained network as an MLflow Model (`model/`: torch.export, raw
    images in, class scores out; runner/training/export.py); register_model: also register
    it under that name (a new version each run).
    """

    def __init__(self, experiment_name=gin.REQUIRED, space=gin.REQUIRED, method=None, seed=2,
                 seeds=(), device="auto", output_dir="outputs", do_select=True,
                 do_retrain=True, deterministic=False, plots=True, analysis=None,
                 genotype=None, log_model=True, register_model=None):
        self.experiment_name, self.space, self.method = experiment_name, space, method
        self.seed, self.seeds, self.device, self.output_dir = seed, list(seeds), device, \
            output_dir
        self.do_select, self.do_retrain, self.deterministic = do_select, do_retrain, \
            deterministic
        self.plots, self.analysis, self.genotype = plots, analysis, genotype
        self.log_model, self.register_model = log_model, register_model


@gin.configurable("source")
class Source:
    """Where selection's supernet comes from: `run`, an MLflow run id whose trained supernet
    is selected from (None: this run trains it); `epoch`, its supernet after that search epoch
    (a `search.keep_every` snapshot; None: after the last)."""

    def __init__(self, run=None, epoch=None):
        self.run, self.epoch = run, epoch


@dataclass
class Call:
    """How a run was asked for, beside its gin settings: the files and bindings (logged, and
    re-parsed by nested runs), --resume, and where a nested run hangs in MLflow."""

    gin_files: list
    bindings: list
    resume: bool = False
    argv: list = field(default_factory=list)  # the command line, for worker processes
    parent_run_id: Optional[str] = None
    run_name: Optional[str] = None
    extra_tags: dict = field(default_factory=dict)
    # (method, selector) of the experiment file alone: a run that differs says so in its name
    file_default: Optional[tuple] = None
