"""Discretisation accuracy at convergence vs alpha (runner/analysis/discretisation.py):
Kendall tau and picks by hand, a rigged toy, both analysis files end to end in tiny mode."""
import csv
import math

import numpy as np
import pytest
import torch

from helpers import GIN_DIR, experiment_runs, analysis_table, run_cli, tiny_argv
from memory_tracker import MemoryTracker
from runner.analysis.discretisation import Discretisation, edge_summary, kendall_tau
from runner.methods.darts import Darts

ANALYSIS = GIN_DIR / "analysis"


def test_kendall_tau_against_hand_counts():
    # 4 items: concordant pairs minus discordant pairs over all 6 pairs
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    # (1,2) c, (1,3) c, (1,4) c, (2,3) d, (2,4) c, (3,4) c -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_edge_summary_picks_and_tau():
    rows = [{"edge": 3, "op": o, "alpha": a, "disc_acc": d}
            for o, a, d in (("skip", 0.6, 40.0), ("sep3", 0.3, 70.0), ("max", 0.1, 55.0))]
    (s,) = edge_summary(rows)
    assert (s["edge"], s["alpha_pick"], s["acc_pick"]) == (3, "skip", "sep3")
    # alpha order skip > sep3 > max, accuracy sep3 > max > skip: pairs c = 1, d = 2
    assert s["kendall_tau"] == pytest.approx(-1 / 3)


def test_discretisation_ranks_the_strong_op_first_while_alpha_ranks_it_last():
    from test_select import ToyNet, space, toy_data

    u = torch.zeros(2, 14, 3)
    u[0, 5] = torch.tensor([0.5, 1.0, 6.0])  # op 2 is by far the strongest on normal edge 5
    net = ToyNet(space(3), u)
    with torch.no_grad():
        net.alphas[0, 5] = torch.tensor([2.0, 1.0, -3.0])  # alpha ranks it last
    method = Darts()
    method.setup(net)
    tracker = MemoryTracker()
    out = Discretisation(edges="all", tune_epochs=0, batch_size=256)(
        net, method, toy_data(), tracker, torch.Generator().manual_seed(0), 0)
    table = list(csv.DictReader(tracker.files["analysis/discretisation.csv"].decode()
                                .splitlines()))
    rows = [dict(r, edge=int(r["edge"]), alpha=float(r["alpha"]), disc_acc=float(r["disc_acc"]))
            for r in table]
    assert len(rows) == 14 * 3 and tracker.files["plots/discretisation.png"][:4] == b"\x89PNG"
    (edge5,) = [s for s in edge_summary(rows) if s["edge"] == 5]
    assert edge5["acc_pick"] == "dil_conv_3x3" and edge5["alpha_pick"] == "skip_connect"
    assert edge5["kendall_tau"] == pytest.approx(-1.0)
    assert "analysis/mean_kendall_tau" in out
    assert net.decisions()[0][5] < 0  # the supernet is left undecided


def test_discretisation_darts_file_logs_table_figure_and_tau(data_root, tracking, capsys,
                                                             tmp_path, clean_gin):
    args = tiny_argv(ANALYSIS / "discretisation_darts.gin", data_root,
                     "Discretisation.num_edges = 1", "Discretisation.tune_epochs = 1",
                     "run.plots = True")
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "discretisation_darts")
    rid, tags = run.info.run_id, run.data.tags
    assert tags["analysis"] == "discretisation" and tags["selector"] == "analysis: discretisation"
    rows = analysis_table(tracking, rid, "discretisation", tmp_path)
    edges = sorted({int(r["edge"]) for r in rows})
    assert len(edges) == 1 and tags["analysis_edges"] == ",".join(map(str, edges))
    assert [r["op"] for r in rows[:7]] == list(
        __import__("spaces.cell", fromlist=["get_space"]).get_space("darts").ops(0)[edges[0]])
    per_edge = analysis_table(tracking, rid, "edges", tmp_path)
    taus = [float(s["kendall_tau"] or "nan") for s in per_edge]  # NaN: constant accuracies
    finite = [t for t in taus if not math.isnan(t)]  # tiny data: accuracies often all tie
    if finite:
        assert run.data.metrics["analysis/mean_kendall_tau"] == pytest.approx(np.mean(finite))
    else:
        assert "analysis/mean_kendall_tau" not in run.data.metrics
    plots = {f.path for f in tracking.list_artifacts(rid, "plots")}
    assert "plots/discretisation.png" in plots
    assert "retrain/test_acc" not in run.data.metrics and "discretisation on the darts" in out


def test_discretisation_s2_counts_and_is_reproducible_from_the_same_supernet(
        data_root, tracking, capsys, tmp_path, clean_gin):
    args = tiny_argv(ANALYSIS / "discretisation_s2.gin", data_root,
                     "Discretisation.tune_epochs = 1", "dataset.limit = 8")
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    (first,) = experiment_runs(tracking, "discretisation_s2")
    rows = analysis_table(tracking, first.info.run_id, "discretisation", tmp_path)
    assert len(rows) == 14 * 2 and {r["op"] for r in rows} == {"skip_connect", "sep_conv_3x3"}
    picks = first.data.tags["analysis_picks"]
    m = first.data.metrics
    a = int(m.get("analysis/alpha_picks_skip_connect", 0))
    assert a + int(m.get("analysis/alpha_picks_sep_conv_3x3", 0)) == 14
    assert f"alpha: sep_conv_3x3 on {14 - a}/14, skip_connect on {a}/14" in picks
    # the same supernet (read back from the first run) and seed give the same table
    rc, _, err = run_cli(args + ["--bind", f"source.run = '{first.info.run_id}'"], capsys)
    assert rc == 0, err
    second = experiment_runs(tracking, "discretisation_s2")[-1]
    assert second.data.tags["selected_from_run"] == first.info.run_id
    assert second.data.tags["mlflow.parentRunId"] == first.info.run_id
    assert analysis_table(tracking, second.info.run_id, "discretisation", tmp_path) == rows
