"""`runner report` on hand-made MLflow runs, and a multi-seed protocol through the CLI."""
import json
import math

import pandas as pd
import pytest

from runner.cli import main
from runner.commands.report import markdown
from helpers import ROOT


# (space, dataset, method, selector) -> final test errors of seeds 0, 1, 2, ...
HAND = {("s3", "cifar10", "darts", "pt"): [2.61, 2.49, 2.75],
        ("s3", "cifar10", "darts", "magnitude"): [3.34, 3.10],
        ("darts", "cifar10", "sdarts_rs", "pt"): [2.54, 2.44, 2.66, 2.52],
        ("darts", "svhn", "darts", "pt"): [2.42]}


def make_runs(client, experiment):
    exp = client.create_experiment(experiment)
    for (space, data, method, selector), errors in HAND.items():
        for seed, err in enumerate(errors):
            run = client.create_run(exp, tags={"space": space, "dataset": data, "method": method,
                                               "selector": selector, "seed": str(seed)})
            client.log_metric(run.info.run_id, "test_error", err)
            client.set_terminated(run.info.run_id)
    # neither an unfinished run nor a sweep trial counts in the protocol table
    run = client.create_run(exp, tags={"space": "s3", "dataset": "cifar10", "method": "darts",
                                       "selector": "pt", "seed": "9"})
    client.log_metric(run.info.run_id, "test_error", 0.01)
    for i, (epochs, err) in enumerate([(0, 3.1), (5, 2.6)]):
        run = client.create_run(exp, tags={"space": "s3", "dataset": "cifar10", "method": "darts",
                                           "selector": "pt", "seed": "2", "sweep_study": "st",
                                           "sweep_trial": str(i), "sweep_params": json.dumps(
                                               {"select.tune_epochs": epochs})})
        client.log_metric(run.info.run_id, "test_error", err)
        client.set_terminated(run.info.run_id)


def test_report_gives_the_hand_computed_best_and_mean_std(tracking, tmp_path, capsys):
    make_runs(tracking, "paper")
    assert main(["report", "--experiment", "paper", "--out", str(tmp_path / "rep")]) == 0
    table = pd.read_csv(tmp_path / "rep" / "protocol.csv")
    assert len(table) == len(HAND)
    for key, errors in HAND.items():
        (row,) = table[(table.space == key[0]) & (table.dataset == key[1])
                       & (table.method == key[2]) & (table.selector == key[3])].itertuples()
        n = len(errors)
        mean = sum(errors) / n
        std = math.sqrt(sum((e - mean) ** 2 for e in errors) / (n - 1)) if n > 1 else None
        assert (row.N, row.best) == (n, min(errors))
        assert row.mean == pytest.approx(mean)
        assert (math.isnan(row.std) if std is None else row.std == pytest.approx(std))
        assert row.headline == (f"best of {n}" if key[0] != "darts" else f"mean ± std of {n}")
    # S3/C10/PT by hand: best 2.49, mean 2.6167, std 0.1301
    s3 = table[(table.space == "s3") & (table.selector == "pt")].iloc[0]
    assert (round(s3["mean"], 4), round(s3["std"], 4)) == (2.6167, 0.1301)
    sweeps = pd.read_csv(tmp_path / "rep" / "sweeps.csv")
    assert list(sweeps["select.tune_epochs"]) == [0, 5]
    assert list(sweeps.test_error) == [3.1, 2.6]
    out = capsys.readouterr().out
    assert "| s3 | cifar10 | darts | pt | 3 | 2.49 | 2.62 | 0.13 | best of 3 |" in out
    assert (tmp_path / "rep" / "protocol.md").read_text() == markdown(table)
    exp = tracking.get_experiment_by_name("paper").experiment_id
    (rep,) = tracking.search_runs([exp], "tags.`mlflow.runName` = 'report'")
    logged = {f.path for f in tracking.list_artifacts(rep.info.run_id, "report")}
    assert logged == {f"report/{n}.{e}" for n in ("protocol", "benchmark", "retrains", "sweeps")
                      for e in ("csv", "md")}


# (dataset, method, selector) -> NAS-Bench-201 (test acc, valid acc, rank) of seeds 0, 1, ...
BENCH = {("cifar10", "darts", "pt"): [(88.1, 87.9, 900), (86.5, 86.0, 1500), (90.2, 89.8, 300)],
         ("cifar10", "fix_alpha", "pt"): [(93.8, 91.5, 10), (93.4, 91.2, 40)],
         ("cifar100", "darts", "magnitude"): [(15.6, 15.4, 15000)]}


def test_report_gives_nb201_rows_mean_std_over_seeds(tracking, tmp_path):
    exp = tracking.create_experiment("nb201")
    for (data, method, selector), results in BENCH.items():
        for seed, (test, valid, rank) in enumerate(results):
            run = tracking.create_run(exp, tags={"space": "nb201", "dataset": data,
                                                 "method": method, "selector": selector,
                                                 "seed": str(seed)})
            for k, v in (("test_acc", test), ("valid_acc", valid), ("rank", rank)):
                tracking.log_metric(run.info.run_id, f"bench/{k}", v)
            tracking.set_terminated(run.info.run_id)
    # a trajectory point (selection from a mid-search supernet) is not a seed of the protocol
    run = tracking.create_run(exp, tags={"space": "nb201", "dataset": "cifar10", "method": "darts",
                                         "selector": "pt", "seed": "0", "trajectory_epoch": "10"})
    tracking.log_metric(run.info.run_id, "bench/test_acc", 1.0)
    tracking.set_terminated(run.info.run_id)
    assert main(["report", "--experiment", "nb201", "--out", str(tmp_path), "--no-log"]) == 0
    table = pd.read_csv(tmp_path / "benchmark.csv")
    assert len(table) == len(BENCH)
    assert pd.read_csv(tmp_path / "protocol.csv").empty  # no retrain: no test error rows
    for (data, method, selector), results in BENCH.items():
        (row,) = table[(table.dataset == data) & (table.method == method)
                       & (table.selector == selector)].itertuples()
        test = [r[0] for r in results]
        n, mean = len(test), sum(test) / len(test)
        assert (row.space, row.N, row.test_acc_best) == ("nb201", n, max(test))
        assert row.test_acc_mean == pytest.approx(mean)
        if n > 1:
            std = math.sqrt(sum((t - mean) ** 2 for t in test) / (n - 1))
            assert row.test_acc_std == pytest.approx(std)
        else:
            assert math.isnan(row.test_acc_std)
        assert row.valid_acc_mean == pytest.approx(sum(r[1] for r in results) / n)
        assert row.rank_mean == pytest.approx(sum(r[2] for r in results) / n)


def test_report_names_an_unknown_experiment(tracking, capsys):
    assert main(["report", "--experiment", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "runner report: error: ValueError: no MLflow experiment named 'nope'")


def test_multi_seed_protocol_nests_one_run_per_seed(tracking, clean_gin, tmp_path):
    argv = ["--gin", str(ROOT / "gin/quickstart.gin"), "--gin", str(ROOT / "gin/overrides/tiny.gin"),
            "--bind", "run.seeds = [0, 1]", "--bind", "dataset.limit = 16",
            "--bind", "run.plots = True"]
    assert main(argv) == 0
    exp = tracking.get_experiment_by_name("quickstart").experiment_id
    (parent,) = tracking.search_runs([exp], "tags.`mlflow.runName` = 'quickstart-seeds'")
    kids = tracking.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["seed"]) for r in kids) == [0, 1]
    assert all(r.info.status == "FINISHED" for r in kids + [parent])
    errors = [r.data.metrics["test_error"] for r in kids]
    assert parent.data.metrics["seeds/best_test_error"] == min(errors)
    assert parent.data.metrics["seeds/mean_test_error"] == pytest.approx(sum(errors) / 2)
    for kid in kids:  # the plots of a run, logged as PNG files
        rid = kid.info.run_id
        names = {f.path for f in tracking.list_artifacts(rid, "plots")}
        assert names == {f"plots/{n}.png" for n in ("alpha_history", "decisions", "retrain")}
        for name in names:
            with open(tracking.download_artifacts(rid, name, str(tmp_path)), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert not [t for t in kid.data.tags if t.startswith("plot_error")]
