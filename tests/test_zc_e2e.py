"""Zero-Cost-PT through the runner: every zc_pt_* experiment file in tiny mode (NAS-Bench-201 on
tiny official-format files with the fixture table, the DARTS space with its retrain), the pool
table, the decisions and the genotype round trip, the selector file on a trained supernet, the
report's grouping, and a kill inside the pool resumed."""
import csv
import glob
import os
import signal
import subprocess
import time

import pytest

from fixtures import experiment_files
from helpers import GIN_DIR, argv, command, experiment_runs, run_cli, tiny_argv
from spaces.darts.genotype import Genotype
from spaces.nb201.genotype import Structure
from spaces.nb201.table import Table

ZC_FILES = [p for p in experiment_files() if "include 'selectors/zc_pt.gin'" in p.read_text()]
NB201 = [p for p in ZC_FILES if "nb201" in p.stem]
# two candidates, training-free (tiny.gin tunes one epoch), one search cell per NB201 stage
POOL = ("pool.size = 2", "select.tune_epochs = 0")
SMALL = "supernet.layers = 1"


def rows_of(client, run_id, path, tmp_path):
    with open(client.download_artifacts(run_id, path, str(tmp_path)), newline="") as f:
        return list(csv.DictReader(f))


def children(client, experiment, parent):
    return [r for r in experiment_runs(client, experiment)
            if r.data.tags.get("mlflow.parentRunId") == parent]


def check_pool(client, experiment, parent, tmp_path, parse, decisions):
    """The parent FINISHED with the pool table, the winner's genotype and its score; each
    candidate a nested run with its decisions (a proxy score per candidate op)."""
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["run_mode"], tags["selector"]) == ("pool", "zc-pt")
    pool = rows_of(client, parent, "selection/pool.csv", tmp_path)
    assert [int(r["candidate"]) for r in pool] == [0, 1]
    chosen = [r for r in pool if r["chosen"] == "True"]
    best = max(float(r["validation_score"]) for r in pool)
    assert chosen and all(float(r["validation_score"]) == best for r in chosen)
    assert str(parse(tags["genotype"])) == tags["genotype"] == chosen[0]["genotype"]
    kids = {r.info.run_id: r for r in children(client, experiment, parent)}
    for row in pool:
        kid = kids[row["run_id"]]
        assert kid.info.status == "FINISHED"
        assert kid.data.tags["genotype"] == row["genotype"]
        assert kid.data.tags["pool_candidate"] == row["candidate"]
        recs = rows_of(client, row["run_id"], "selection/decisions.csv", tmp_path)
        assert len(recs) == decisions and recs[-1]["genotype"] == row["genotype"]
        ops = [r for r in recs if r["kind"] == "op"]
        assert all("masked_score" in r and r["masked_score"] != "" for r in ops)
    history = client.get_metric_history(parent, "pool/validation_score")
    assert {m.value for m in history} == {float(r["validation_score"]) for r in pool}
    return run, pool, kids


@pytest.mark.parametrize("exp", NB201, ids=lambda p: p.stem)
def test_nb201_pool_selects_post_validates_and_looks_up(exp, data_root, nb201_table, tracking,
                                                       capsys, tmp_path):
    args = tiny_argv(exp, data_root, f"lookup.table = '{nb201_table}'", SMALL, *POOL)
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    name = exp.stem
    parent = [r for r in experiment_runs(tracking, name)
              if r.data.tags.get("run_mode") == "pool"][0].info.run_id
    run, pool, _ = check_pool(tracking, name, parent, tmp_path, Structure.parse, 6)
    dataset = name.rsplit("_", 1)[-1]
    table = Table.load(nb201_table)
    for row in pool:
        assert float(row["bench_test_acc"]) == pytest.approx(
            table.lookup(row["genotype"], dataset)["test_acc"])
    assert run.data.metrics["bench/test_acc"] == pytest.approx(
        table.lookup(run.data.tags["genotype"], dataset)["test_acc"])
    assert "test_error" not in run.data.metrics  # NB201: no retrain


def test_darts_pool_retrains_the_winner(data_root, tracking, capsys, tmp_path):
    exp = GIN_DIR / "zc_pt_darts_cifar10.gin"
    rc, out, err = run_cli(tiny_argv(exp, data_root, *POOL), capsys)
    assert rc == 0, err
    runs = experiment_runs(tracking, "zc_pt_darts_cifar10")
    parent = [r for r in runs if r.data.tags.get("run_mode") == "pool"][0].info.run_id
    run, pool, _ = check_pool(tracking, "zc_pt_darts_cifar10", parent, tmp_path,
                              Genotype.parse, 14 * 2 + 3 * 2)
    (retrain,) = [r for r in runs if r.data.tags.get("genotype_run") == parent]
    assert retrain.data.tags["genotype"] == run.data.tags["genotype"]
    assert retrain.data.tags["source_selector"] == "zc-pt"
    assert run.data.metrics["test_error"] == retrain.data.metrics["test_error"]


def test_the_selector_file_selects_from_a_trained_supernet_and_reports_apart(
        data_root, nb201_table, tracking, capsys, tmp_path):
    exp = GIN_DIR / "nb201_cifar10.gin"
    table = f"lookup.table = '{nb201_table}'"
    rc, out, err = run_cli(tiny_argv(exp, data_root, table, SMALL, "run.do_select = False"),
                           capsys)
    assert rc == 0, err
    (trained,) = experiment_runs(tracking, "nb201_cifar10")
    args = tiny_argv(exp, data_root, table, SMALL, *POOL,
                     f"source.run = '{trained.info.run_id}'",
                     extra_gin=[GIN_DIR / "selectors/zc_pt.gin"])
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    runs = experiment_runs(tracking, "nb201_cifar10")
    (parent,) = [r for r in runs if r.data.tags.get("run_mode") == "pool"]
    # no supernet of its own: both candidates select from the trained one
    kids = children(tracking, "nb201_cifar10", parent.info.run_id)
    assert len(kids) == 2
    assert {k.data.tags["selected_from_run"] for k in kids} == {trained.info.run_id}
    rc, out, err = run_cli(["report", "--experiment", "nb201_cifar10", "--out",
                            str(tmp_path / "rep")], capsys)
    assert rc == 0, err
    with open(tmp_path / "rep" / "benchmark.csv", newline="") as f:
        bench = list(csv.DictReader(f))
    # the pool is one zc-pt result; its candidates are not results of their own
    assert [(r["selector"], r["N"]) for r in bench] == [("zc-pt", "1")]


def test_a_kill_inside_the_pool_resumes_and_keeps_the_finished_candidates(tmp_path, data_root):
    exp = GIN_DIR / "zc_pt_nb201_cifar10.gin"
    args = tiny_argv(exp, data_root, *POOL, SMALL, "pool.size = 3", "lookup.enabled = False")
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command(*args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # the supernet run, candidate 0 done, candidate 1 selecting: two selection checkpoints
    while len(glob.glob(f"{tmp_path}/outputs/*/select.pt")) < 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    before = {r.data.tags["mlflow.runName"]: r for r in
              experiment_runs(client, "zc_pt_nb201_cifar10")}
    first = before["zc_pt_nb201_cifar10-candidate0-seed0"]
    assert first.info.status == "FINISHED"
    done = subprocess.run(command(*args, "--resume"), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = experiment_runs(client, "zc_pt_nb201_cifar10")
    names = [r.data.tags["mlflow.runName"] for r in after]
    assert sorted(names) == sorted(set(names))  # every run once: continued, not repeated
    again = {r.data.tags["mlflow.runName"]: r for r in after}
    kept = again["zc_pt_nb201_cifar10-candidate0-seed0"]
    assert (kept.info.run_id, kept.info.end_time) == (first.info.run_id, first.info.end_time)
    parent = again["zc_pt_nb201_cifar10-pool-seed0"]
    assert parent.info.status == "FINISHED"
    assert len(rows_of(client, parent.info.run_id, "selection/pool.csv", tmp_path)) == 3
