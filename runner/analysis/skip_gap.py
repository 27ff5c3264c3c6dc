"""mean(alpha_skip - alpha_conv) (softmaxed) vs the supernet's valid accuracy over search
epochs (paper §3.2, Figure 3): the gap grows as the supernet gets better.

Reads the per-epoch search metrics `search/alpha_skip_minus_conv` and `search/valid_acc` of the
run that trained the supernet (`source.run`, or this run when it searched).
"""
import tempfile

import gin


@gin.configurable
class SkipGap:
    """The analysis, run by `run.analysis = @SkipGap()`."""

    name = "skip_gap"

    def __call__(self, net, method, data, tracker, gen, seed, source, mode=None):
        """`source`: the run that trained the supernet (this run, or `source.run`); nothing
        trains, so `mode` is not used."""
        rows = epochs_table(tracker, source)
        if not rows:
            raise ValueError(f"run {source} logged no search/alpha_skip_minus_conv: its space "
                             f"has no edge with both skip_connect and a conv op")
        return log(tracker, rows, source)


def epochs_table(tracker, run_id):
    """[{'epoch', 'valid_acc', 'skip_minus_conv'}] from the run's search metric histories."""
    def by_epoch(key):
        return {p.step: p.value for p in tracker.metric_history(key, run_id)}

    gap, acc = by_epoch("search/alpha_skip_minus_conv"), by_epoch("search/valid_acc")
    return [{"epoch": e, "valid_acc": acc[e], "skip_minus_conv": gap[e]}
            for e in sorted(gap) if e in acc]


def correlation(rows):
    """Spearman's rank correlation of the gap with the valid accuracy (NaN: too few epochs)."""
    from scipy.stats import spearmanr

    if len(rows) < 3:
        return float("nan")
    return float(spearmanr([r["valid_acc"] for r in rows],
                           [r["skip_minus_conv"] for r in rows]).statistic)


def log(tracker, rows, source):
    import math

    import pandas as pd

    from runner.commands.report import write_tables
    from tracking.plots import skip_gap_vs_accuracy

    with tempfile.TemporaryDirectory() as tmp:
        for path in write_tables({"skip_gap": pd.DataFrame(rows)}, tmp):
            tracker.artifact(path, "analysis")
    rho = correlation(rows)
    tracker.tags({"analysis": "skip_gap", "analysis_of_run": source})
    if math.isfinite(rho):
        tracker.metrics({"analysis/spearman_gap_vs_valid_acc": rho}, step=0)
    tracker.plot(skip_gap_vs_accuracy, rows, name="skip_gap.png")
    return {"analysis": "skip_gap", "epochs": len(rows), "spearman": rho}
