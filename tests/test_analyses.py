"""The other analyses of the paper (runner/analysis/): alpha_skip - alpha_conv (Figure 3), PT vs
PT-Mag from one supernet (Figure 6), the tune-epochs grid sweep (Figure 9) and edge shuffling
(Table 1): hand-checked pieces and each analysis file end to end in tiny mode."""
import numpy as np
import pytest
import torch

from helpers import GIN_DIR, experiment_runs, analysis_table, run_cli, tiny_argv

ANALYSIS = GIN_DIR / "analysis"


def test_skip_gap_is_logged_per_epoch_and_plotted_against_accuracy(data_root, tracking, capsys,
                                                                   tmp_path, clean_gin):
    from runner.training.search import skip_conv_gap
    from test_select import ToyNet, space

    net = ToyNet(space(3), torch.zeros(2, 14, 3))  # ops skip, sep3, dil3 on every edge
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[0, 0] = torch.tensor([2.0, 0.0, 1.0])
    p = torch.softmax(torch.tensor([2.0, 0.0, 1.0]), 0)
    assert skip_conv_gap(net) == pytest.approx(float(p[0] - p[2]) / 28)  # other edges: 0
    args = tiny_argv(ANALYSIS / "skip_gap_s2.gin", data_root, "search.epochs = 3",
                     "run.plots = True")
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "skip_gap_s2")
    rid = run.info.run_id
    gaps = tracking.get_metric_history(rid, "search/alpha_skip_minus_conv")
    assert sorted(m.step for m in gaps) == [0, 1, 2]
    rows = analysis_table(tracking, rid, "skip_gap", tmp_path)
    assert [float(r["skip_minus_conv"]) for r in rows] == pytest.approx(
        [m.value for m in sorted(gaps, key=lambda m: m.step)])
    assert "plots/skip_gap.png" in {f.path for f in tracking.list_artifacts(rid, "plots")}
    assert run.data.tags["analysis_of_run"] == rid


def test_pt_vs_ptmag_selects_both_from_one_supernet_and_plots_their_curves(
        data_root, tracking, capsys, tmp_path, clean_gin):
    args = tiny_argv(ANALYSIS / "pt_vs_ptmag.gin", data_root, "search.keep_every = 1",
                     "run.plots = True", "supernet.layers = 2", "run.space = 's2'")
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    runs = {r.info.run_name: r for r in experiment_runs(tracking, "pt_vs_ptmag")}
    assert set(runs) == {"pt_vs_ptmag-trajectory", "pt_vs_ptmag-supernet",
                         "pt_vs_ptmag-pt-epoch1", "pt_vs_ptmag-pt-mag-epoch1"}
    supernet = runs["pt_vs_ptmag-supernet"].info.run_id
    for sel in ("pt", "pt-mag"):
        child = runs[f"pt_vs_ptmag-{sel}-epoch1"]
        assert child.data.tags["selector"] == sel
        assert child.data.tags["selected_from_run"] == supernet
        assert len(tracking.get_metric_history(child.info.run_id, "select/valid_acc_after")) > 0
    parent = runs["pt_vs_ptmag-trajectory"].info.run_id
    assert "plots/valid_acc_after_decisions.png" in {
        f.path for f in tracking.list_artifacts(parent, "plots")}


def test_tune_epochs_grid_sweep_runs_every_value_once_from_one_supernet(
        data_root, nb201_table, tracking, capsys, tmp_path, clean_gin):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "grid.journal"
    args = tiny_argv(ANALYSIS / "tune_epochs_nb201.gin", data_root,
                     f"lookup.table = '{nb201_table}'", "supernet.layers = 1",
                     "sweep.params = {'select.tune_epochs': ('categorical', [0, 2, 1])}",
                     f"sweep.storage = 'journal:{journal}'", "sweep.n_trials = 99")
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    study = optuna.load_study(study_name="tune_epochs_nb201",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.params["select.tune_epochs"] for t in trials] == [0, 2, 1]  # the grid, in order
    assert all(t.state.name == "COMPLETE" for t in trials)
    supernet = study.user_attrs["supernet_run"]
    for t in trials:
        run = tracking.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.params["select.tune_epochs"] == str(t.params["select.tune_epochs"])
        assert run.data.tags["selected_from_run"] == supernet
        assert run.data.metrics["bench/test_acc"] == pytest.approx(t.value)
    sweep_run = study.user_attrs["mlflow_sweep_run"]
    assert "plots/objective.png" in {f.path for f in tracking.list_artifacts(sweep_run, "plots")}
    assert {"sweep/trials.csv", "sweep/trials.md"} <= {
        f.path for f in tracking.list_artifacts(sweep_run, "sweep")}


def test_a_grid_needs_enumerable_params(data_root, tracking, capsys, clean_gin):
    args = tiny_argv(ANALYSIS / "tune_epochs_nb201.gin", data_root,
                     "sweep.params = {'select.tune_lr': ('float', 0.001, 0.01)}")
    rc, _, err = run_cli(args, capsys)
    assert rc == 2 and "sweep.sampler = 'grid' needs categorical or int params" in err


def test_swap_candidates_pair_edges_of_the_same_stride_only():
    from fixtures import tiny_supernet
    from runner.analysis.shuffling import cells_of, swap_candidates

    net = tiny_supernet("darts")
    cells = cells_of(net)
    assert len(cells) == 3  # C4/L3: normal, reduce, reduce cells
    normal, reduce = cells[0], cells[1]
    assert len(swap_candidates(normal)) == 14 * 13 // 2  # every edge stride 1
    # reduction cell: the 8 edges from the two cell inputs have stride 2, the other 6 stride 1
    two = [e for e, m in enumerate(reduce) if m.stride == 2]
    assert two == [0, 1, 2, 3, 5, 6, 9, 10]
    assert len(swap_candidates(reduce)) == 8 * 7 // 2 + 6 * 5 // 2


def test_shuffled_edges_really_swap_with_their_weights():
    from fixtures import tiny_supernet
    from runner.analysis.shuffling import cells_of, shuffled_supernet

    net = tiny_supernet("darts").eval()
    with torch.no_grad():
        net.alphas.normal_()
    out, swaps = shuffled_supernet(net, np.random.RandomState(3))
    assert [c for c, _, _ in swaps] == [0, 1, 2] and all(i < j for _, i, j in swaps)
    # the input each position receives in the original forward
    inputs = {}
    for c, cell in enumerate(cells_of(net)):
        for e, m in enumerate(cell):
            m.register_forward_hook(
                lambda mod, args, o, key=(c, e): inputs.__setitem__(key, args[0]))
    x = torch.randn(2, 3, 16, 16)
    w, act = net.mixing_weights().detach(), net.active_ops()
    with torch.no_grad():
        net(x)
        for (c, i, j), before, after in zip(swaps, cells_of(net), [m.edges for m in out.cells]):
            t = before[0].where[0]
            for e in range(14):
                src = {i: j, j: i}.get(e, e)  # position e now computes edge src
                got = after[e](inputs[(c, e)], w[t, e], act[t][e])
                assert torch.equal(got, before[src](inputs[(c, e)], w[t, src], act[t][src]))
                assert (type(after[e]).__name__ == "Moved") == (e in (i, j))
        assert not torch.equal(out(x), net(x))  # the swaps change the supernet's output
    assert all(type(e).__name__ == "MixedOp" for cell in cells_of(net) for e in cell)


def test_baseline_layer_swap_changes_only_the_chosen_layers():
    from runner.analysis.shuffling import Baseline, shuffled_baseline

    net = Baseline(True, 3, 4, 3, 10)
    out, swaps = shuffled_baseline(net, np.random.RandomState(0))
    for (s, i, j), a, b in zip(swaps, net.stages, out.stages):
        assert 1 <= i < j <= 3
        for k in range(4):
            src = {i: j, j: i}.get(k, k)
            assert torch.equal(b[k][0].weight, a[src][0].weight), (s, k)


def test_edge_shuffling_file_logs_the_table_and_figure(data_root, tracking, capsys, tmp_path,
                                                      clean_gin):
    args = tiny_argv(ANALYSIS / "edge_shuffling_darts.gin", data_root, "run.plots = True",
                     "EdgeShuffling.shuffles = 2", "EdgeShuffling.baseline_epochs = 1",
                     "EdgeShuffling.baseline_depth = 2", "EdgeShuffling.baseline_C = 4",
                     "EdgeShuffling.batch_size = 8")
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "edge_shuffling_darts")
    rows = analysis_table(tracking, run.info.run_id, "edge_shuffling", tmp_path)
    assert [r["model"] for r in rows] == ["supernet", "vgg", "resnet"]
    assert all(int(r["shuffles"]) == 2 for r in rows)
    m = run.data.metrics
    for r in rows:
        assert m[f"analysis/{r['model']}_before"] == pytest.approx(float(r["before"]))
        assert 0.0 <= float(r["after_mean"]) <= 100.0
    assert "plots/edge_shuffling.png" in {
        f.path for f in tracking.list_artifacts(run.info.run_id, "plots")}
