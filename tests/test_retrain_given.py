"""`run.genotype`: retrain a given genotype (a string, a genotype.json file, a selecting MLflow
run) without search or selection, tracked, nested under its source run, listed by the report."""
import pytest

from helpers import GIN_DIR, TINY, experiment_runs, run_cli, tiny_argv
from spaces.darts.genotype import Genotype
from spaces.darts.published import published

RETRAIN = GIN_DIR / "retrain" / "darts_cifar10.gin"
# DARTS V2 (Liu et al. 2019) as a genotype string, the way the DARTS repository writes it
DARTS_V2 = str(published()["darts_v2"])


def retrain_argv(data_root, genotype, *binds):
    return tiny_argv(RETRAIN, data_root, f"run.genotype = {genotype!r}", *binds)


def only_run(client, name="retrain_darts_cifar10"):
    (run,) = experiment_runs(client, name)
    return run


def test_a_genotype_string_is_retrained_without_search(data_root, tracking, capsys, clean_gin):
    rc, out, err = run_cli(retrain_argv(data_root, DARTS_V2), capsys)
    assert rc == 0, err
    run = only_run(tracking)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert Genotype.parse(tags["genotype"]) == Genotype.parse(DARTS_V2)
    assert tags["genotype_source"] == "string"
    assert tags["method"] == tags["selector"] == "none (given genotype)"
    assert "mlflow.parentRunId" not in tags
    assert "test_error" in run.data.metrics and "retrain/train_acc" in run.data.metrics
    assert not any(k.startswith("search/") for k in run.data.metrics)  # no supernet trained
    files = {f.path for f in tracking.list_artifacts(run.info.run_id)}
    assert "genotype.json" in files and "search" not in files and "selection" not in files
    assert "final test accuracy" in out


def test_the_genotype_of_a_selecting_run_and_its_json_file(data_root, tracking, capsys, tmp_path,
                                                          clean_gin):
    search = tiny_argv(GIN_DIR / "s2_cifar10.gin", data_root, "run.do_retrain = False")
    assert run_cli(search, capsys)[0] == 0
    (source,) = experiment_runs(tracking, "s2_cifar10")
    sid = source.info.run_id
    rc, out, err = run_cli(retrain_argv(data_root, sid, "run.space = 's2'"), capsys)
    assert rc == 0, err
    run = only_run(tracking)
    tags = run.data.tags
    assert tags["genotype"] == source.data.tags["genotype"]
    assert tags["mlflow.parentRunId"] == sid and tags["genotype_run"] == sid
    assert tags["source_selector"] == source.data.tags["selector"]
    # the same genotype from the genotype.json artifact the selecting run logged
    path = tracking.download_artifacts(sid, "genotype.json", str(tmp_path))
    tracking.delete_run(run.info.run_id)
    assert run_cli(retrain_argv(data_root, path, "run.space = 's2'"), capsys)[0] == 0
    again = [r for r in experiment_runs(tracking, "retrain_darts_cifar10")
             if r.info.run_id != run.info.run_id]
    assert again[0].data.tags["genotype"] == source.data.tags["genotype"]
    assert again[0].data.tags["genotype_source"].startswith("file ")


@pytest.mark.parametrize("genotype, culprit", [
    ("Genotype(normal=[('sep_conv_3x3', 0)", "not a darts genotype"),
    (DARTS_V2.replace("dil_conv_3x3", "dil_conv_9x9"), "dil_conv_9x9"),
    ("0123456789abcdef0123456789abcdef", "no MLflow run 0123456789abcdef"),
])
def test_a_bad_genotype_is_one_line_before_training(genotype, culprit, data_root, tracking,
                                                     capsys, clean_gin):
    rc, out, err = run_cli(retrain_argv(data_root, genotype), capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "run.genotype" in err and culprit in err
    exp = tracking.get_experiment_by_name("retrain_darts_cifar10")
    assert exp is None or not tracking.search_runs([exp.experiment_id])  # nothing opened


def test_a_search_file_without_method_says_what_is_missing(data_root, tracking, capsys,
                                                            clean_gin):
    rc, _, err = run_cli(tiny_argv(RETRAIN, data_root), capsys)
    assert rc == 2 and "run.method is not bound" in err and "run.genotype" in err


def test_report_lists_a_retrain_beside_the_run_that_selected_it(data_root, tracking, capsys,
                                                                tmp_path, clean_gin):
    from runner.commands.report import report

    search = tiny_argv(GIN_DIR / "s2_cifar10.gin", data_root, "run.do_retrain = False")
    assert run_cli(search, capsys)[0] == 0
    (source,) = experiment_runs(tracking, "s2_cifar10")
    sid = source.info.run_id
    assert run_cli(retrain_argv(data_root, sid, "run.space = 's2'"), capsys)[0] == 0
    tables = report(["s2_cifar10", "retrain_darts_cifar10"], str(tmp_path / "rep"), log=False)
    (row,) = tables["retrains"].to_dict("records")
    assert row["genotype_run"] == sid and row["source_selector"] == source.data.tags["selector"]
    assert row["source_seed"] == source.data.tags["seed"] and row["test_error"] >= 0
    assert tables["protocol"].empty  # the source has no retrain; the retrain is not protocol
