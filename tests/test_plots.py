"""tracking.plots: each plot writes a readable PNG for real inputs and for empty ones; a plot
logged to an MLflow run is listed among its artifacts; the screenshot script's cheap paths."""
import importlib.util
import math

import numpy as np
import pytest
import torch

from runner.selection.criteria import Magnitude, Perturbation
from runner.methods.darts import Darts
from runner.selection.select import records_table, select
from spaces.cell import get_space
from spaces.darts.space import NUM_EDGES
from tracking import plots
from memory_tracker import MemoryTracker

from fixtures import tiny_images, tiny_supernet
from helpers import ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_side=100):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert min(img.shape[:2]) >= min_side
    assert img.std() > 0  # not a blank canvas
    return img


def test_importing_the_module_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, tracking.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "False"


# --- alpha history -------------------------------------------------------------------------
def test_alpha_history_darts(tmp_path):
    alphas = np.random.RandomState(0).randn(4, 2, NUM_EDGES, 7).cumsum(0)
    out = tmp_path / "sub" / "alphas.png"  # the folder is created
    assert plots.alpha_history(alphas, get_space("darts"), out) == out
    assert_png(out, min_side=400)


def test_alpha_history_s1_ignores_padding_columns(tmp_path):
    """S1's per-edge op lists; columns beyond an edge's op count do not enter the softmax."""
    a = np.random.RandomState(1).randn(3, 2, NUM_EDGES, 2).cumsum(0)
    padded = np.concatenate([a, np.full((3, 2, NUM_EDGES, 2), 50.0)], axis=-1)
    probs = plots._edge_probs(padded, get_space("s1"))
    assert len(probs) == 2 and len(probs[0]) == NUM_EDGES
    for c in range(2):
        for e in range(NUM_EDGES):
            expected = np.exp(a[:, c, e]) / np.exp(a[:, c, e]).sum(-1, keepdims=True)
            assert np.allclose(probs[c][e], expected)
    assert_png(plots.alpha_history(padded, "s1", tmp_path / "a.png"), min_side=400)


def test_alpha_history_without_epochs(tmp_path):
    out = plots.alpha_history(np.zeros((0, 2, NUM_EDGES, 7)), get_space("darts"),
                              tmp_path / "a.png")
    assert_png(out)


def test_alpha_history_rejects_a_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plots.alpha_history(np.zeros((3, 14, 7)), get_space("darts"), tmp_path / "a.png")
    with pytest.raises(ValueError, match="op columns"):
        plots.alpha_history(np.zeros((3, 2, 14, 2)), get_space("darts"), tmp_path / "a.png")


# --- decision timeline ---------------------------------------------------------------------
def real_records(criterion, space="s2"):
    """Decision records of the real selector on the tiny supernet (no tuning: fast)."""
    net = tiny_supernet(space)
    method = Darts()
    method.setup(net)
    _, records = select(net, method, tiny_images(), MemoryTracker(),
                        torch.Generator().manual_seed(0), 0, criterion=criterion,
                        tune_epochs=0, batch_size=8)
    return records


@pytest.fixture(scope="module")
def magnitude_records():
    return real_records(Magnitude(), "s1")


@pytest.fixture(scope="module")
def pt_records():
    return real_records(Perturbation(subset=8, batch_size=8))


def test_decision_timeline_magnitude(tmp_path, magnitude_records):
    assert {r["kind"] for r in magnitude_records} == {"op", "topology"}
    assert "weight" in magnitude_records[0]["scores"][0]
    assert_png(plots.decision_timeline(magnitude_records, tmp_path / "d.png"))


def test_decision_timeline_perturbation(tmp_path, pt_records):
    """PT records; rows of the decisions table (JSON strings) draw the same picture; a valid
    accuracy after tuning adds its panel."""
    assert "acc" in pt_records[0]["scores"][0]
    assert all(math.isnan(r["valid_acc_after"]) for r in pt_records)  # no tuning
    short = assert_png(plots.decision_timeline(pt_records, tmp_path / "a.png"))
    rows = assert_png(plots.decision_timeline(records_table(pt_records), tmp_path / "b.png"))
    assert np.array_equal(short, rows)
    tuned = [dict(r, valid_acc_after=50.0 + r["round"]) for r in pt_records]
    tall = assert_png(plots.decision_timeline(tuned, tmp_path / "tuned.png"))
    assert tall.shape[0] > short.shape[0]
    # a benchmark lookup per decision alone also opens the panel, and draws into it
    judged = [dict(r, bench_test_acc=60.0 + r["step"]) for r in pt_records]
    bench = assert_png(plots.decision_timeline(judged, tmp_path / "bench.png"))
    assert bench.shape == tall.shape and not np.array_equal(bench, tall)


def test_decision_timeline_empty(tmp_path):
    assert_png(plots.decision_timeline([], tmp_path / "d.png"))


def test_candidate_scores_mark_the_chosen(pt_records, magnitude_records):
    for recs in (pt_records, magnitude_records):
        for r in recs:
            entries = plots._candidate_scores(r)
            assert sum(chosen for _, _, chosen, _ in entries) == (1 if r["kind"] == "op" else 2)


# --- retrain curves ------------------------------------------------------------------------
def retrain_history(epochs=5):
    return {"retrain/train_acc": [(e, 20.0 + 10 * e) for e in range(epochs)],
            "retrain/test_acc": [(e, 15.0 + 9 * e) for e in range(epochs)],
            "retrain/train_loss": [(e, 2.3 - 0.3 * e) for e in range(epochs)],
            "retrain/test_loss": [(e, 2.3 - 0.25 * e) for e in range(epochs)],
            "retrain/lr": [(e, 0.025 * (1 + math.cos(math.pi * e / epochs)) / 2)
                           for e in range(epochs)],
            "retrain/seconds": [(e, 1.0) for e in range(epochs)]}


def test_retrain_curves(tmp_path):
    assert_png(plots.retrain_curves(retrain_history(), tmp_path / "r.png"))


def test_retrain_curves_empty(tmp_path):
    assert_png(plots.retrain_curves({}, tmp_path / "r.png"))


# --- sweep objective -----------------------------------------------------------------------
def test_sweep_objective(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        crit = trial.suggest_categorical("crit", ["acc", "loss"])
        layers = trial.suggest_int("layers", 3, 8)
        if layers == 8:
            raise optuna.TrialPruned()
        return -math.log10(lr) + (crit == "acc") + 0.1 * layers

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=12)
    df = study.trials_dataframe()
    assert {"params_lr", "params_crit", "params_layers"} <= set(df.columns)
    assert_png(plots.sweep_objective(df, tmp_path / "s.png"))
    assert_png(plots.sweep_objective(df.iloc[:0], tmp_path / "none.png"))  # no trials
    empty = optuna.create_study().trials_dataframe()  # no columns at all
    assert_png(plots.sweep_objective(empty, tmp_path / "empty.png"))
    with pytest.raises(ValueError, match="no column"):
        plots.sweep_objective(df, tmp_path / "x.png", objective="values_1")


# --- MLflow --------------------------------------------------------------------------------
def test_plot_logged_to_an_mlflow_run(tmp_path, tracking):
    """Curves drawn from MLflow's own metric history, logged back as an artifact."""
    from tracking.mlflow_tracker import Tracker

    tracker = Tracker()  # the `tracking` fixture points MLFLOW_TRACKING_URI at tmp_path
    with tracker.run("plots", run_name="plots"):
        history = retrain_history(3)
        for e in range(3):
            tracker.metrics({k: dict(v)[e] for k, v in history.items()}, step=e)
        logged = {k: tracking.get_metric_history(tracker.run_id, k) for k in history}
        path = plots.retrain_curves(logged, tmp_path / "retrain_curves.png")
        tracker.artifact(str(path), "plots")
    listed = [a.path for a in tracking.list_artifacts(tracker.run_id, "plots")]
    assert listed == ["plots/retrain_curves.png"]
    local = tracking.download_artifacts(tracker.run_id, "plots/retrain_curves.png",
                                        str(tmp_path / "back"))
    assert_png(local)


# --- screenshot script (no browser, no server) ---------------------------------------------
def screenshot_module():
    path = ROOT / "scripts" / "mlflow_screenshot.py"
    spec = importlib.util.spec_from_file_location("mlflow_screenshot", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_screenshot_script_names_the_missing_browser(monkeypatch, capsys):
    mod = screenshot_module()
    monkeypatch.setenv("PATH", "")
    rc = mod.main(["--tracking-uri", "sqlite:///nowhere.db", "--experiment", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "Chromium not found" in err and "apt-get install -y chromium" in err
    assert mod.main(["--tracking-uri", "sqlite:///x.db", "--experiment", "x",
                     "--browser", "no-such-browser"]) == 2
    assert "'no-such-browser' not found" in capsys.readouterr().err


def test_screenshot_script_arguments_and_urls():
    mod = screenshot_module()
    args = mod.parser().parse_args(["--tracking-uri", "sqlite:///m.db", "--experiment", "e"])
    assert args.out.endswith("mlflow_compare.png") and args.view == "compare"
    with pytest.raises(SystemExit):
        mod.parser().parse_args(["--experiment", "e"])  # --tracking-uri is required
    assert mod.absolute_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert mod.absolute_uri("sqlite:///m.db").startswith("sqlite:////")
    assert mod.absolute_uri("http://host:5000") == "http://host:5000"
    from urllib.parse import parse_qs, urlsplit

    url = mod.page_url("http://127.0.0.2:5000", "compare", "3", ["a", "b"])
    route = urlsplit(url).fragment  # "/compare-runs?runs=[...]&experiments=[...]"
    assert route.startswith("/compare-runs?")
    query = parse_qs(route.split("?", 1)[1])
    assert query == {"runs": ['["a", "b"]'], "experiments": ['["3"]']}
    assert mod.page_url("http://h:1", "runs", "3", []) == "http://h:1/#/experiments/3/runs"
