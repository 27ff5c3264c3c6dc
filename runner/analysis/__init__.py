"""The paper's analyses as experiments built from the runner's own runs (runner.lifecycle.experiment.run)."""
