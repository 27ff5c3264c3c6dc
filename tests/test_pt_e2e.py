"""PT through the runner: decisions table in MLflow, selecting again from a finished run."""
import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from spaces.darts.genotype import Genotype
from helpers import FAST_BINDS, argv

BASE = argv("quickstart.gin", "selectors/pt.gin", "overrides/tiny.gin",
            binds=["run.do_retrain = False", *FAST_BINDS])


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(uri)


def only_run(client, experiment="quickstart"):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    return runs


def decisions(client, run_id, tmp_path):
    path = client.download_artifacts(run_id, "selection/decisions.csv", str(tmp_path))
    return pd.read_csv(path)


def test_decisions_table_has_one_row_per_decision_with_every_candidate(tracking, tmp_path):
    assert main(BASE) == 0
    (run,) = only_run(tracking)
    assert run.data.tags["selector"] == "pt"
    table = decisions(tracking, run.info.run_id, tmp_path)
    ops, topo = table[table.kind == "op"], table[table.kind == "topology"]
    assert len(ops) == 28 and len(topo) == 6  # 14 edges and 3 nodes per cell type
    for _, row in ops.iterrows():
        cands = json.loads(row.candidates)
        accs, losses = json.loads(row.masked_acc), json.loads(row.masked_loss)
        assert len(cands) == len(accs) == len(losses) == 7
        assert json.loads(row.chosen) == cands[accs.index(min(accs))]  # argmin, first on ties
    assert set(table.cell) == {"normal", "reduce"}
    assert list(table.step) == list(range(len(table)))
    assert table.genotype.str.startswith("Genotype(").all()
    steps = [m.step for m in tracking.get_metric_history(run.info.run_id, "select/seconds")]
    assert steps == list(range(34))
    # the last genotype in the table is the run's genotype
    assert Genotype.parse(table.genotype.iloc[-1]) == Genotype.parse(run.data.tags["genotype"])


def test_select_from_run_reproduces_the_original_selection(tracking, tmp_path):
    # S2 (2 ops per edge): the replay is what is checked, not the 7-op scoring
    base = argv("quickstart.gin", "selectors/pt.gin", "spaces/s2.gin", "overrides/tiny.gin",
                binds=["run.do_retrain = False", *FAST_BINDS])
    assert main(base) == 0
    (first,) = only_run(tracking)
    assert main(base + ["--bind", f"source.run = '{first.info.run_id}'"]) == 0
    _, second = only_run(tracking)
    assert second.data.tags["mlflow.parentRunId"] == first.info.run_id
    assert second.data.tags["selected_from_run"] == first.info.run_id
    assert "search/train_acc" not in second.data.metrics  # the supernet was not retrained
    assert second.data.tags["genotype"] == first.data.tags["genotype"]
    a = decisions(tracking, first.info.run_id, tmp_path / "a")
    b = decisions(tracking, second.info.run_id, tmp_path / "b")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
