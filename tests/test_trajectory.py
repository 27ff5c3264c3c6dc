"""The Figure 4 analysis in tiny mode: snapshots of one supernet, PT and magnitude from each,
benchmark accuracies in a table and a plot on the parent run."""
import csv

from helpers import GIN_DIR, run_cli, tiny_argv
from spaces.nb201.table import Table

TRAJECTORY = GIN_DIR / "analysis" / "nb201_trajectory.gin"


def test_trajectory_selects_from_each_kept_supernet(data_root, nb201_table, tracking, capsys,
                                                    tmp_path, clean_gin):
    args = tiny_argv(TRAJECTORY, data_root, f"lookup.table = '{nb201_table}'",
                     "search.epochs = 2", "search.keep_every = 1", "run.plots = True",
                     "supernet.layers = 1")
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    exp = tracking.get_experiment_by_name("nb201_trajectory")
    runs = {r.info.run_name: r for r in tracking.search_runs([exp.experiment_id])}
    assert set(runs) == {"nb201_trajectory-trajectory", "nb201_trajectory-supernet"} | {
        f"nb201_trajectory-{s}-epoch{e}" for s in ("pt", "magnitude") for e in (1, 2)}
    parent = runs["nb201_trajectory-trajectory"]
    supernet = runs["nb201_trajectory-supernet"].info.run_id
    assert all(r.info.status == "FINISHED" for r in runs.values())
    table = Table.load(nb201_table)
    path = tracking.download_artifacts(parent.info.run_id, "trajectory/trajectory.csv",
                                       str(tmp_path))
    rows = list(csv.DictReader(open(path)))
    assert [(int(r["supernet_epoch"]), r["selector"]) for r in rows] == [
        (1, "pt"), (1, "magnitude"), (2, "pt"), (2, "magnitude")]
    for r in rows:
        child = runs[f"nb201_trajectory-{r['selector']}-epoch{r['supernet_epoch']}"]
        tags = child.data.tags
        assert r["run_id"] == child.info.run_id and r["genotype"] == tags["genotype"]
        assert tags["selected_from_run"] == supernet
        assert tags["selected_from_epoch"] == r["supernet_epoch"]
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["selector"] == r["selector"]
        assert float(r["test_acc"]) == table.lookup(r["genotype"], "cifar10")["test_acc"]
    history = tracking.get_metric_history(parent.info.run_id, "trajectory/pt_bench_test_acc")
    assert sorted(m.step for m in history) == [1, 2]
    names = {f.path for f in tracking.list_artifacts(parent.info.run_id, "plots")}
    assert names == {"plots/trajectory.png", "plots/valid_acc_after_decisions.png"}
    png = tracking.download_artifacts(parent.info.run_id, "plots/trajectory.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # run again with --resume: every nested run is found FINISHED, nothing is rerun
    rc, _, err = run_cli(args + ["--resume"], capsys)
    assert rc == 0, err
    again = tracking.search_runs([exp.experiment_id])
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs.values())
    assert all(r.info.status == "FINISHED" for r in again)
    history = tracking.get_metric_history(parent.info.run_id, "trajectory/pt_bench_test_acc")
    assert sorted(m.step for m in history) == [1, 2]
    # a search epoch that was not kept is a one-line error naming the missing snapshot
    rc, _, err = run_cli(tiny_argv(GIN_DIR / "nb201_cifar10.gin", data_root,
                                   f"source.run = '{supernet}'", "source.epoch = 7"),
                         capsys)
    errors = [line for line in err.splitlines() if line.startswith("runner: error:")]
    assert rc == 2 and len(errors) == 1, err
    assert f"run {supernet} has no artifact search/search_epoch7.pt" in errors[0]


def test_a_trajectory_that_keeps_no_supernet_is_refused(data_root, tracking, capsys, clean_gin):
    rc, _, err = run_cli(tiny_argv(TRAJECTORY, data_root), capsys)  # tiny: 1 epoch, keep 10
    assert rc == 2 and "search.keep_every = 10 keeps no supernet of the 1 search epochs" in err
