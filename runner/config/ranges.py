"""The valid range of every numeric setting, checked when the config is parsed, before any work.

`RANGES` maps 'configurable.parameter' to its `Range`; tests/test_ranges.py walks every gin
configurable of the project and fails for a numeric parameter that has none here.
"""
from dataclasses import dataclass
from typing import Optional

from runner.compat import gin_internals


@dataclass(frozen=True)
class Range:
    """lo/hi bounds (None: unbounded), open or closed; `integer`; `optional`: None allowed.

    Applied to each element of a tuple or list value."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    optional: bool = False

    def holds(self, v):
        if v is None:
            return self.optional
        if isinstance(v, (tuple, list)):
            return all(self.holds(x) for x in v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.integer and not isinstance(v, int):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def __str__(self):
        kind = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            bounds = (f"in {'(' if self.lo_open else '['}{self.lo:g}, "
                      f"{self.hi:g}{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            bounds = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            bounds = f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return f"{kind} {bounds}" + (" or None" if self.optional else "")


COUNT = Range(0, integer=True)             # epochs, retries, steps that may be zero
POSITIVE_INT = Range(1, integer=True)      # sizes and counts that must be at least one
POSITIVE = Range(0, lo_open=True)          # learning rates, epsilons, clips
NON_NEGATIVE = Range(0)                    # weight decays, loss weights, init scales
FRACTION = Range(0, 1, lo_open=True, hi_open=True)
MOMENTUM = Range(0, 1, hi_open=True)
SEED = Range(0, 2 ** 32 - 1, integer=True)  # numpy's seed range

RANGES = {
    "dataset.pad": Range(0, integer=True, optional=True),
    "dataset.limit": Range(1, integer=True, optional=True),
    "dataset.workers": COUNT,  # DataLoader processes per rank (streamed ImageNet); 0: in-process
    "dataset.image_size": Range(8, integer=True),  # a folder set's side; the cells halve it twice
    "dataset.memory_budget": Range(0, lo_open=True, optional=True),  # GiB
    "run.seed": SEED,
    "run.seeds": SEED,
    "supernet.C": POSITIVE_INT,
    "supernet.layers": POSITIVE_INT,
    "supernet.alpha_init_std": NON_NEGATIVE,
    "Darts.arch_lr": POSITIVE,
    "Darts.arch_betas": MOMENTUM,
    "Darts.arch_weight_decay": NON_NEGATIVE,
    "Sdarts.eps_min": POSITIVE,
    "Sdarts.eps_max": POSITIVE,
    "Sdarts.eps_tune": POSITIVE,
    "Sdarts.pgd_steps": POSITIVE_INT,
    "Sgas.warmup_dec_epoch": COUNT,
    "Sgas.decision_freq": POSITIVE_INT,
    "Sgas.history_size": POSITIVE_INT,
    "Sgas.batch_increase": COUNT,
    "Sgas.max_batch_size": POSITIVE_INT,
    "Perturbation.subset": Range(1, integer=True, optional=True),
    "Perturbation.batch_size": POSITIVE_INT,
    "Perturbation.masks_per_pass": POSITIVE_INT,
    "ZeroCost.batch_size": POSITIVE_INT,
    "Shapley.samples": POSITIVE_INT,
    "Shapley.threshold": Range(0, 1, optional=True),  # None: orders never cut short
    "Shapley.batch_size": POSITIVE_INT,
    "ShapleyNas.warmup_epochs": COUNT,
    "ShapleyNas.samples": POSITIVE_INT,
    "ShapleyNas.threshold": Range(0, 1, optional=True),
    "ShapleyNas.batch_size": POSITIVE_INT,
    "ShapleyNas.momentum": MOMENTUM,
    "ShapleyNas.step_size": POSITIVE,
    "IsDarts.steps": POSITIVE_INT,
    "IsDarts.interval": POSITIVE_INT,
    "IsDarts.measure_batches": Range(1, integer=True, optional=True),
    "IsDarts.batch_size": POSITIVE_INT,
    "Information.batch_size": POSITIVE_INT,
    "Information.batches": Range(1, integer=True, optional=True),
    "pool.size": Range(1, integer=True, optional=True),
    "pool.validate_rounds": POSITIVE_INT,
    "pool.batch_size": POSITIVE_INT,
    "pool.C": Range(1, integer=True, optional=True),
    "pool.layers": Range(1, integer=True, optional=True),
    "select.tune_epochs": COUNT,
    "select.tune_lr": POSITIVE,
    "select.tune_momentum": MOMENTUM,
    "select.tune_weight_decay": NON_NEGATIVE,
    "select.batch_size": POSITIVE_INT,
    "select.grad_clip": POSITIVE,
    "select.edge_order_seed": Range(0, 2 ** 32 - 1, integer=True, optional=True),
    "sweep.n_trials": POSITIVE_INT,
    "sweep.sampler_seed": Range(0, 2 ** 32 - 1, integer=True, optional=True),
    "sweep.workers": POSITIVE_INT,
    "sweep.heartbeat_interval": POSITIVE_INT,
    "sweep.grace_period": POSITIVE_INT,
    "sweep.max_retry": COUNT,
    "seeds.workers": POSITIVE_INT,
    "seeds.heartbeat_interval": POSITIVE_INT,
    "seeds.grace_period": POSITIVE_INT,
    "seeds.max_retry": COUNT,
    "retrain.C": POSITIVE_INT,
    "retrain.layers": POSITIVE_INT,
    "retrain.epochs": POSITIVE_INT,
    "retrain.batch_size": POSITIVE_INT,
    "retrain.lr": POSITIVE,
    "retrain.momentum": MOMENTUM,
    "retrain.weight_decay": NON_NEGATIVE,
    "retrain.grad_clip": POSITIVE,
    "retrain.auxiliary_weight": NON_NEGATIVE,
    "retrain.drop_path_prob": MOMENTUM,  # [0, 1): 1 would drop every path
    "retrain.cutout": COUNT,
    "retrain.lr_gamma": Range(0, 1, lo_open=True),  # StepLR's factor per epoch; 1: constant
    "retrain.label_smoothing": MOMENTUM,  # [0, 1)
    "retrain.max_multiply_adds": Range(0, lo_open=True, optional=True),  # None: no limit
    "search.epochs": COUNT,
    "search.batch_size": POSITIVE_INT,
    "search.lr": POSITIVE,
    "search.lr_min": NON_NEGATIVE,
    "search.momentum": MOMENTUM,
    "search.weight_decay": NON_NEGATIVE,
    "search.grad_clip": POSITIVE,
    "dataset.train_portion": FRACTION,
    "search.keep_every": COUNT,
    "EdgeShuffling.shuffles": POSITIVE_INT,
    "EdgeShuffling.baseline_depth": Range(2, integer=True),  # two layers to swap per stage
    "EdgeShuffling.baseline_C": POSITIVE_INT,
    "EdgeShuffling.baseline_epochs": COUNT,
    "EdgeShuffling.baseline_lr": POSITIVE,
    "EdgeShuffling.batch_size": POSITIVE_INT,
    "Discretisation.num_edges": POSITIVE_INT,
    "Discretisation.edge_seed": Range(0, 2 ** 32 - 1, integer=True, optional=True),
    "Discretisation.tune_epochs": COUNT,
    "Discretisation.tune_lr": POSITIVE,
    "Discretisation.tune_momentum": MOMENTUM,
    "Discretisation.tune_weight_decay": NON_NEGATIVE,
    "Discretisation.batch_size": POSITIVE_INT,
    "Discretisation.grad_clip": POSITIVE,
    "source.epoch": Range(1, integer=True, optional=True),
}


def check_ranges():
    """Every parsed binding of a ranged setting is in its range; else one line naming it."""
    for _, selector, params in gin_internals.bindings():
        for name, value in params.items():
            key = f"{selector.rsplit('.', 1)[-1]}.{name}"
            if key in RANGES and not gin_internals.is_reference(value) \
                    and not RANGES[key].holds(value):
                raise ValueError(f"{key} = {value!r} is out of range: expected {RANGES[key]}")
