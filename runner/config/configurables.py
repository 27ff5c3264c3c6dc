"""Importing this module registers every gin configurable of the runner.

The experiment (run, supernet, search, select and its criteria, retrain, dataset, precision,
the methods) and the sweep. runner.config.parse_config needs them registered.
"""
from runner.lifecycle import experiment  # noqa: F401
from runner.sweeps import seeds, sweep  # noqa: F401
from runner.analysis import discretisation, shuffling, skip_gap, trajectory  # noqa: F401
from runner.selection import pool  # noqa: F401
