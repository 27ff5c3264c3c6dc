"""NAS-Bench-201 through the runner: every NB201 experiment file in tiny mode on tiny
official-format files, each selector, the supernet methods that apply, and the benchmark lookup
(final and after every decision) with the converted table present and absent."""
import csv

import numpy as np
import pytest

from fixtures import experiment_files
from helpers import GIN_DIR, TINY, argv, experiment_runs, run_cli, tiny_argv
from spaces.nb201 import OPS
from spaces.nb201.table import Table
from spaces.nb201.genotype import Structure

# the Zero-Cost-PT, Shapley-NAS and IS-DARTS files: test_zc_e2e.py, test_shapley.py,
# test_is_darts.py
OWN_TESTS = ("include 'selectors/zc_pt.gin'", "include 'methods/shapley.gin'",
             "include 'methods/is_darts.gin'")
NB201_FILES = [p for p in experiment_files() if "include 'spaces/nb201.gin'" in p.read_text()
               and not any(inc in p.read_text() for inc in OWN_TESTS)]
DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet16"}
DATA = ("dataset.verify_md5 = False", "Perturbation.subset = 8", "dataset.limit = 16")
# one search cell per stage (tiny.gin's 3 are the DARTS skeleton's size): a third of the time
SMALL = "supernet.layers = 1"


def decision_rows(client, run_id, tmp_path):
    path = client.download_artifacts(run_id, "selection/decisions.csv", str(tmp_path))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key),
                                              key=lambda m: m.step)]


def check_selection(client, run, tmp_path):
    """6 op decisions, one per edge; the structure string round-trips (tag, artifact)."""
    tag = run.data.tags["genotype"]
    assert str(Structure.parse(tag)) == tag
    text = client.download_artifacts(run.info.run_id, "genotype.txt", str(tmp_path))
    assert open(text).read() == tag + "\n"
    rows = decision_rows(client, run.info.run_id, tmp_path)
    assert [r["kind"] for r in rows] == ["op"] * 6
    assert sorted(int(r["where"]) for r in rows) == list(range(6))
    assert rows[-1]["genotype"] == tag
    assert "retrain/test_acc" not in run.data.metrics  # NB201 is judged by lookup
    return rows


def check_lookups(client, run, rows, table, dataset):
    """Each decision's cell and the final cell were looked up, with the table's answers."""
    rid = run.info.run_id
    for key in ("test_acc", "valid_acc", "rank"):
        want = [table.lookup(r["genotype"], dataset)[key] for r in rows]
        assert [float(r[f"bench_{key}"]) for r in rows] == pytest.approx(want)
        assert history(client, rid, f"select/bench_{key}") == \
            [(i, pytest.approx(v)) for i, v in enumerate(want)]
    final = table.lookup(run.data.tags["genotype"], dataset)
    m = run.data.metrics
    for key in ("test_acc", "valid_acc", "train_acc", "test_acc_std", "rank", "num_cells"):
        assert m[f"bench/{key}"] == pytest.approx(final[key]), key
    assert m["bench/params_M"] == pytest.approx(final["params"])
    assert run.data.tags["bench_lookup"].startswith("NAS-Bench-201 ")


@pytest.mark.parametrize("exp", NB201_FILES, ids=lambda p: p.stem)
def test_experiment_file_searches_selects_and_looks_up(exp, data_root, nb201_table, tracking,
                                                       capsys, tmp_path, clean_gin):
    args = tiny_argv(exp, data_root, f"lookup.table = '{nb201_table}'", SMALL)
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, exp.stem)
    tags = run.data.tags
    dataset = exp.stem.rsplit("_", 1)[-1]
    assert tags["space"] == "nb201" and tags["dataset"] == DATASET[dataset]
    assert tags["method"] == ("fix_alpha" if "fix_alpha" in exp.stem else "darts")
    assert tags["selector"] == "pt" and tags["seed"] == "0"
    rows = check_selection(tracking, run, tmp_path)
    check_lookups(tracking, run, rows, Table.load(nb201_table), dataset)
    assert f"rank {run.data.metrics['bench/rank']:.0f} of 15625 cells" in out


# every NB201 file once more with a non-PT selector file, both selectors on both methods
OTHER_SELECTOR = [(p, "magnitude" if i % 2 == 0 else "pt_mag")
                  for i, p in enumerate(sorted(NB201_FILES, key=lambda p: p.stem))]


@pytest.mark.parametrize("exp,selector", OTHER_SELECTOR,
                         ids=[f"{p.stem}-{s}" for p, s in OTHER_SELECTOR])
def test_the_selector_files_apply_to_nb201(exp, selector, data_root, nb201_table, tracking,
                                           capsys, tmp_path, clean_gin):
    args = tiny_argv(exp, data_root, f"lookup.table = '{nb201_table}'", SMALL,
                     extra_gin=(GIN_DIR / "selectors" / f"{selector}.gin",))
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, exp.stem)
    assert run.data.tags["selector"] == selector.replace("_", "-")
    rows = check_selection(tracking, run, tmp_path)
    check_lookups(tracking, run, rows, Table.load(nb201_table), exp.stem.rsplit("_", 1)[-1])
    if selector == "magnitude":  # no tuning: argmax of the final alpha over all 5 ops
        path = tracking.download_artifacts(run.info.run_id, "search/alphas.npz", str(tmp_path))
        alpha = np.load(path)["alphas"][-1, 0]
        ops = [OPS[k] for k in alpha.argmax(-1)]
        assert [op for node in Structure.parse(run.data.tags["genotype"]).nodes
                for op, _ in node] == ops


def test_without_a_table_the_run_finishes_and_says_how_to_make_one(data_root, tracking, capsys,
                                                                    tmp_path, clean_gin):
    missing = tmp_path / "no" / "nb201_table.parquet"
    args = tiny_argv(GIN_DIR / "nb201_cifar100.gin", data_root, f"lookup.table = '{missing}'",
                     SMALL)
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "nb201_cifar100")
    assert run.info.status == "FINISHED"
    assert run.data.tags["bench_lookup"] == f"skipped: no table at {missing}"
    lines = [line for line in err.splitlines() if "nb201-table" in line]
    assert len(lines) == 1 and str(missing) in lines[0]
    assert "runner nb201-table --source" in lines[0]
    rows = check_selection(tracking, run, tmp_path)
    assert not any(k.startswith("bench") for k in rows[0])
    assert not any(k.startswith(("bench/", "select/bench")) for k in run.data.metrics)
    assert "benchmark:" not in out


def test_a_corrupt_table_fails_before_any_training(data_root, tracking, capsys, tmp_path,
                                                   clean_gin):
    bad = tmp_path / "t.parquet"
    bad.write_bytes(b"not a parquet file")
    rc, _, err = run_cli(tiny_argv(GIN_DIR / "nb201_cifar10.gin", data_root,
                                   f"lookup.table = '{bad}'"), capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err
    (run,) = experiment_runs(tracking, "nb201_cifar10")
    assert "search/train_acc" not in run.data.metrics


@pytest.mark.parametrize("method,tag", [("darts_2nd", "darts_2nd"), ("sdarts_rs", "sdarts_rs"),
                                        ("sdarts_adv", "sdarts_adv")])
def test_other_supernet_methods_run_on_nb201(method, tag, data_root, nb201_table, tracking,
                                             capsys, tmp_path, clean_gin):
    # the method file brings the DARTS-space search defaults; the space file comes after it
    args = argv(GIN_DIR / "nb201_cifar10.gin", GIN_DIR / "methods" / f"{method}.gin",
                GIN_DIR / "spaces" / "nb201.gin", TINY,
                binds=(f"dataset.root = '{data_root}'", f"lookup.table = '{nb201_table}'")
                + DATA + (SMALL,))
    rc, _, err = run_cli(args, capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "nb201_cifar10")
    assert run.data.tags["method"] == tag
    check_lookups(tracking, run, check_selection(tracking, run, tmp_path),
                  Table.load(nb201_table), "cifar10")


def test_sgas_on_nb201_is_a_one_line_error(data_root, nb201_table, tracking, capsys,
                                           clean_gin):
    args = argv(GIN_DIR / "nb201_cifar10.gin", GIN_DIR / "methods" / "sgas.gin",
                GIN_DIR / "spaces" / "nb201.gin", TINY,
                binds=(f"dataset.root = '{data_root}'", f"lookup.table = '{nb201_table}'")
                + DATA)
    rc, out, err = run_cli(args, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("runner: error: ValueError: SGAS")
