"""Selection quality over supernet training (paper Figure 4; Figure 8 with fix alpha), and
selectors compared from one supernet (Figure 6: the supernet's accuracy after each decision).

One parent run: a nested search-only run keeps its supernet every `search.keep_every` epochs;
then, for each kept epoch and each selector, a nested run selects from that snapshot
(`source.run` + `source.epoch`, the same path as any selection from a saved supernet)
and looks the cell up in the benchmark. The parent logs the table and the plot.
"""
import tempfile

import gin

from runner.config import parse_config
from tracking.plots import selection_curves

# a selector's bindings on top of the experiment's (which bind the PT settings)
SELECTORS = {
    "pt": ("select.criterion = @Perturbation()",),
    "magnitude": ("select.criterion = @Magnitude()", "select.tune_epochs = 0"),
    "pt-mag": ("select.criterion = @Magnitude()",),
    "zc-pt": ("select.criterion = @ZeroCost()", "select.tune_epochs = 0"),
}


@gin.configurable("trajectory")
class Trajectory:
    """The analysis, run when `trajectory.selectors` is bound (e.g. ('pt', 'magnitude'))."""

    def __init__(self, selectors=None):
        unknown = [s for s in selectors or () if s not in SELECTORS]
        if unknown:
            raise ValueError(f"trajectory.selectors: unknown {unknown}; known: "
                             f"{list(SELECTORS)}")
        self.selectors = selectors

    def __call__(self, call, name, search, plots, nested):
        """Returns {'run_id', 'trajectory': rows}. `search`: the search settings (their
        `keep_every` snapshots are the points). With `call.resume`, finished nested runs are
        kept and the rest continue (each nested run resumes as any run does)."""
        import dataclasses

        from tracking.mlflow_tracker import Tracker

        snapshots = search.snapshot_epochs()
        if not snapshots:
            raise ValueError(f"search.keep_every = {search.keep_every!r} keeps no supernet of "
                             f"the {search.epochs} search epochs; the trajectory needs at least "
                             "one")
        tracker = Tracker(plots=plots)
        tracker.check()
        newest = tracker.newest(name, f"{name}-trajectory") if call.resume else None
        with tracker.run(name, run_name=f"{name}-trajectory", run_id=newest and newest.run_id,
                         tags={"analysis": "trajectory", "selectors": ",".join(self.selectors)}):
            parent = tracker.run_id
            tracker.text("\n".join(call.bindings) + "\n", "config/bindings.gin")
            child = dataclasses.replace(call, parent_run_id=parent)
            supernet = nested(dataclasses.replace(child, run_name=f"{name}-supernet"),
                              do_select=False)["run_id"]
            rows = []
            for epoch in snapshots:
                for sel in self.selectors:
                    extra = [*SELECTORS[sel], f"source.run = '{supernet}'",
                             f"source.epoch = {epoch}"]
                    bindings = list(call.bindings) + extra
                    parse_config(call.gin_files, bindings)  # explicit, per nested run
                    out = nested(dataclasses.replace(
                        child, bindings=bindings, run_name=f"{name}-{sel}-epoch{epoch}",
                        extra_tags={"trajectory_epoch": epoch}))
                    rows.append(result_row(tracker, out["run_id"], epoch, sel))
                    if "test_acc" in rows[-1]:
                        tracker.ensure_logged(  # once per point, on --resume too
                            {f"trajectory/{sel}_bench_test_acc": rows[-1]["test_acc"]},
                            step=epoch)
            log_table(tracker, rows)
            last = {r["selector"]: after_each_decision(tracker, r["run_id"])
                    for r in rows if r["supernet_epoch"] == rows[-1]["supernet_epoch"]}
            tracker.plot(selection_curves, last, name="valid_acc_after_decisions.png")
            return {"run_id": parent, "trajectory": rows}


def after_each_decision(tracker, run_id):
    """The supernet's valid accuracy after each decision's fine-tuning (select/valid_acc_after)."""
    return [p.value for p in tracker.metric_history("select/valid_acc_after", run_id)]


def result_row(tracker, run_id, epoch, selector):
    data = tracker.get_run(run_id)
    row = {"supernet_epoch": epoch, "selector": selector, "genotype": data.tags.get("genotype"),
           "run_id": run_id}
    for key in ("test_acc", "valid_acc", "rank"):
        if f"bench/{key}" in data.metrics:
            row[key] = data.metrics[f"bench/{key}"]
    return row


def log_table(tracker, rows):
    import pandas as pd

    from runner.commands.report import write_tables
    from tracking.plots import selection_trajectory

    with tempfile.TemporaryDirectory() as tmp:
        for path in write_tables({"trajectory": pd.DataFrame(rows)}, tmp):
            tracker.artifact(path, "trajectory")
    tracker.plot(selection_trajectory, rows, name="trajectory.png")
