"""Selection quality over supernet training (paper Figure 4; Figure 8 with fix alpha), and
selectors compared from one supernet (Figure 6: the supernet's accuracy after each decision).

One parent run: a nested search-only run keeps its supernet every `search.keep_every` epochs;
then, for each kept epoch and each selector, a nested run selects from that snapshot
(`select.from_run` + `select.from_epoch`, the same path as any selection from a saved supernet)
and looks the cell up in the benchmark. The parent logs the table and the plot.
"""
import tempfile

import gin

from runner.config import bound, parse_config
from tracking.plots import selection_curves

# a selector's bindings on top of the experiment's (which bind the PT settings)
SELECTORS = {
    "pt": ("select.criterion = @Perturbation()",),
    "magnitude": ("select.criterion = @Magnitude()", "select.tune_epochs = 0"),
    "pt-mag": ("select.criterion = @Magnitude()",),
}


@gin.configurable(denylist=["gin_files", "bindings", "resume"])
def trajectory(gin_files=(), bindings=(), resume=False, selectors=("pt", "magnitude")):
    """Run the analysis; returns {'run_id', 'trajectory': rows}. With `resume`, finished nested runs
    are kept and the rest continue (each nested run resumes as any run does)."""
    from runner.lifecycle.experiment import run
    from tracking.mlflow_tracker import Tracker

    unknown = [s for s in selectors if s not in SELECTORS]
    if unknown:
        raise ValueError(f"trajectory.selectors: unknown {unknown}; known: {list(SELECTORS)}")
    name = gin.query_parameter("run.experiment_name")
    epochs, every = bound("search.epochs", 50), bound("search.keep_every", 0)
    if not every or every > epochs:
        raise ValueError(f"search.keep_every = {every!r} keeps no supernet of the "
                         f"{epochs} search epochs; the trajectory needs at least one")
    tracker = Tracker(plots=bound("run.plots", True))
    tracker.check()
    newest = tracker.newest(name, f"{name}-trajectory") if resume else None
    with tracker.run(name, run_name=f"{name}-trajectory", run_id=newest and newest.run_id,
                     tags={"analysis": "trajectory", "selectors": ",".join(selectors)}):
        parent = tracker.run_id
        tracker.text("\n".join(bindings) + "\n", "config/bindings.gin")
        supernet = run(gin_files, bindings, resume, parent_run_id=parent, do_select=False,
                       run_name=f"{name}-supernet")["run_id"]
        rows = []
        for epoch in range(every, epochs + 1, every):
            for sel in selectors:
                extra = [*SELECTORS[sel], f"select.from_run = '{supernet}'",
                         f"select.from_epoch = {epoch}"]
                parse_config(gin_files, list(bindings) + extra)  # explicit, per nested run
                child = run(gin_files, list(bindings) + extra, resume, parent_run_id=parent,
                            run_name=f"{name}-{sel}-epoch{epoch}",
                            extra_tags={"trajectory_epoch": epoch})
                rows.append(result_row(tracker, child["run_id"], epoch, sel))
                if "test_acc" in rows[-1]:
                    tracker.ensure_logged(  # once per point, on --resume too
                        {f"trajectory/{sel}_bench_test_acc": rows[-1]["test_acc"]}, step=epoch)
        log_table(tracker, rows)
        last = {r["selector"]: after_each_decision(tracker, r["run_id"])
                for r in rows if r["supernet_epoch"] == rows[-1]["supernet_epoch"]}
        tracker.plot(selection_curves, last, name="valid_acc_after_decisions.png")
        return {"run_id": parent, "trajectory": rows}


def after_each_decision(tracker, run_id):
    """The supernet's valid accuracy after each decision's fine-tuning (select/valid_acc_after)."""
    history = tracker.client.get_metric_history(run_id, "select/valid_acc_after")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def result_row(tracker, run_id, epoch, selector):
    data = tracker.client.get_run(run_id).data
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
