"""The NAS-Bench-201 lookup table: converted from a tiny file in the official format (written
with the official package's own classes, tests/nb201_fixture.py), every answer equals the
official API's get_more_info(hp='200', is_random=False) and the fixture's ground truth, the
12-epoch results never leak in, ranks and params are right, the errors are one line each,
and a table of the full benchmark's size stays small and loads."""
import ast
import bz2
import itertools
import pickle

import numpy as np
import pytest
import torch

import nb201_fixture as fx
from helpers import ROOT
from spaces.nb201 import table as table_module
from spaces.nb201.table import BENCH_DATASET, COLUMNS, Table, convert, write_table

nas_201_api = pytest.importorskip("nas_201_api")
DATASETS = tuple(BENCH_DATASET)  # cifar10, cifar100, imagenet16


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(path of the official-format file, its ground truth)."""
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-tiny.pth"
    return path, fx.write_official_file(path)


@pytest.fixture(scope="module")
def api(official):
    return nas_201_api.NASBench201API(str(official[0]), verbose=False)


@pytest.fixture(scope="module")
def table_path(official, tmp_path_factory):
    out = tmp_path_factory.mktemp("table") / "sub" / "nb201.parquet"
    assert convert(official[0], out) == len(fx.CELLS)
    return out


@pytest.fixture(scope="module")
def table(table_path):
    return Table.load(table_path)


def truth_for(truth, cell, dataset):
    """The expected numbers of one cell, computed from the fixture's per-seed values by the
    semantics documented in spaces/nb201/table.py."""
    bench = BENCH_DATASET[dataset]
    full = truth[cell]["full"]
    test_set = "ori-test" if bench == "cifar10" else "x-test"
    valid_entry = "cifar10-valid" if bench == "cifar10" else bench
    return {"test_acc": np.mean(full[bench][test_set]),
            "valid_acc": np.mean(full[valid_entry]["x-valid"]),
            "train_acc": np.mean(full[bench]["train"]),
            "test_acc_std": np.std(full[bench][test_set]),
            "seeds": len(truth[cell]["seeds"][bench]),
            "params": truth[cell]["params"][bench],
            "index": truth[cell]["index"]}


def test_the_fixture_converts(table, official):
    assert sorted(table.structures()) == sorted(fx.CELLS)
    indexes = [official[1][c]["index"] for c in table.structures()]
    assert indexes == sorted(indexes)  # benchmark index order
    assert table.datasets() == list(DATASETS)
    assert table.header["hp"] == "200" and table.header["source"] == official[0].name


@pytest.mark.parametrize("dataset", DATASETS)
def test_lookups_equal_the_official_api_and_the_ground_truth(table, api, official, dataset):
    truth = official[1]
    bench = BENCH_DATASET[dataset]
    for cell in fx.CELLS:
        got = table.lookup(cell, dataset)
        assert all(type(v) is float for v in got.values())
        idx = api.query_index_by_arch(cell)
        assert got["index"] == idx == truth[cell]["index"]
        info = api.get_more_info(idx, bench, hp="200", is_random=False)
        assert got["test_acc"] == info["test-accuracy"]
        assert got["train_acc"] == info["train-accuracy"]
        if bench == "cifar10":  # the 'cifar10' entry has no validation set: cifar10-valid's
            assert "valid-accuracy" not in info
            info = api.get_more_info(idx, "cifar10-valid", hp="200", is_random=False)
        assert got["valid_acc"] == info["valid-accuracy"]
        expected = truth_for(truth, cell, dataset)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), (cell, key)
        assert got["params"] == api.get_cost_info(idx, bench, hp="200")["params"]


def test_seed_means_are_not_any_single_seed(official):
    truth = official[1]
    for cell in fx.CELLS[1:]:  # the all-none cell sits at chance on every seed
        values = truth[cell]["full"]["cifar100"]["x-valid"]
        assert np.mean(values) not in values


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_12_epoch_value_leaks_in(table, api, official, dataset):
    bench = BENCH_DATASET[dataset]
    for cell in fx.CELLS:
        got = table.lookup(cell, dataset)
        less = official[1][cell]["less"]
        less_values = {float(np.mean(v)) for d in less.values() for v in d.values()}
        less_values |= {x for d in less.values() for v in d.values() for x in v}
        for key in ("test_acc", "valid_acc", "train_acc"):
            assert got[key] not in less_values
        info12 = api.get_more_info(int(got["index"]), bench, hp="12", is_random=False)
        assert got["test_acc"] != info12["test-accuracy"]
        assert got["train_acc"] != info12["train-accuracy"]


def test_the_last_epoch_not_the_best_one(table):
    # the fixture's second-to-last epoch beats the last one on every set (nb201_fixture.curve)
    cell = fx.ALL_CONV3
    got = table.lookup(cell, "cifar10")
    assert got["test_acc"] == pytest.approx(np.mean([fx.final_value(cell, "cifar10", "ori-test",
                                                                    s, "full")
                                                     for s in fx.DEFAULT_SEEDS]))


@pytest.mark.parametrize("dataset", DATASETS)
def test_rank_among_the_table_cells(table, official, dataset):
    means = {c: truth_for(official[1], c, dataset)["test_acc"] for c in fx.CELLS}
    for cell in fx.CELLS:
        got = table.lookup(cell, dataset)
        assert got["rank"] == 1 + sum(m > means[cell] for m in means.values())
        assert got["num_cells"] == len(fx.CELLS)
    assert table.lookup(fx.ALL_CONV3, dataset)["rank"] == 1
    assert table.lookup(fx.ALL_NONE, dataset)["rank"] == len(fx.CELLS)


def test_tied_cells_share_the_better_rank(table):
    a, b = (table.lookup(c, "cifar100") for c in fx.TIED)
    assert a["test_acc"] == b["test_acc"]
    assert a["rank"] == b["rank"] == 5  # four cells are better; the tie takes 5, not 5 and 6
    # the next cell down is 7th (two cells hold 5): only the all-none cell is below them
    assert table.lookup(fx.ALL_NONE, "cifar100")["rank"] == 7


def test_seed_counts_follow_the_test_entry(table):
    assert table.lookup(fx.ALL_NONE, "cifar100")["seeds"] == 1
    assert table.lookup(fx.ALL_NONE, "cifar100")["test_acc_std"] == 0.0
    assert table.lookup(fx.CELLS[4], "cifar10")["seeds"] == 2  # 'cifar10', not cifar10-valid
    assert table.lookup(fx.CELLS[4], "imagenet16")["seeds"] == 2


def test_benchmark_dataset_names_and_structures_are_accepted(table):
    from spaces.nb201.genotype import Structure

    assert table.lookup(fx.ALL_CONV3, "ImageNet16-120") == table.lookup(fx.ALL_CONV3,
                                                                        "imagenet16")
    assert table.lookup(Structure.parse(fx.ALL_CONV3), "cifar10") == \
        table.lookup(fx.ALL_CONV3, "cifar10")
    with pytest.raises(ValueError, match="svhn"):
        table.lookup(fx.ALL_CONV3, "svhn")


def test_unknown_structure_is_a_key_error(table):
    unknown = fx.structure(["skip_connect"] * 5 + ["none"])  # a real cell, not in the table
    for cell in (unknown, "|conv~0|"):
        with pytest.raises(KeyError) as info:
            table.lookup(cell, "cifar10")
        assert "\n" not in str(info.value) and cell in str(info.value)
    assert unknown not in table and fx.ALL_NONE in table


def test_missing_table_names_the_path_and_the_command(tmp_path):
    path = tmp_path / "nowhere" / "nb201.parquet"
    with pytest.raises(FileNotFoundError) as info:
        Table.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "runner nb201-table" in message


def test_corrupt_table_is_a_value_error_naming_the_path(tmp_path):
    path = tmp_path / "nb201.parquet"
    path.write_bytes(b"\x00garbage\xff" * 100)
    with pytest.raises(ValueError) as info:
        Table.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_parquet_file_of_something_else_is_a_value_error(tmp_path):
    import pandas as pd

    path = tmp_path / "other.parquet"
    pd.DataFrame({"structure": ["x"], "acc": [1.0]}).to_parquet(path)
    with pytest.raises(ValueError, match="columns"):
        Table.load(path)


def test_the_command_end_to_end(official, tmp_path, capsys):
    from runner.commands.nb201_table import main

    out = tmp_path / "data" / "nb201.parquet"
    assert main(["--source", str(official[0]), "--out", str(out)]) == 0
    assert f"{len(fx.CELLS)} cells" in capsys.readouterr().out
    got = Table.load(out).lookup(fx.ALL_CONV3, "cifar10")
    assert got["test_acc"] == pytest.approx(truth_for(official[1], fx.ALL_CONV3, "cifar10")[
        "test_acc"])


def test_the_command_on_a_missing_source(tmp_path, capsys):
    from runner.commands.nb201_table import main

    missing = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    assert main(["--source", str(missing), "--out", str(tmp_path / "t.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err
    assert not (tmp_path / "t.parquet").exists()
    assert main([]) == 2  # no --source: one usage line
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_command_on_a_file_that_is_no_benchmark(tmp_path, capsys):
    from runner.commands.nb201_table import main

    bad = tmp_path / "bad.pth"
    torch.save({"meta_archs": []}, bad)
    assert main(["--source", str(bad), "--out", str(tmp_path / "t.parquet")]) == 2
    # stderr: the progress line "reading FILE ...", then the error on one line
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("runner nb201-table: error: ")
    assert str(bad) in errors[0] and "arch2infos" in errors[0]


def test_the_default_output_path():
    from runner.commands.nb201_table import parser

    assert table_module.default_table_path() == "data/nb201_table.parquet"
    assert parser().parse_args(["--source", "x"]).out == "data/nb201_table.parquet"


def test_without_the_api_package_one_line_says_what_to_install(official, tmp_path,
                                                              monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nas_201_api", None)
    with pytest.raises(ImportError) as info:
        convert(official[0], tmp_path / "t.parquet")
    assert "\n" not in str(info.value) and "pip install nas-bench-201" in str(info.value)


def test_a_file_that_weights_only_loading_refuses(official, table, tmp_path):
    """torch >= 2.6 refuses a file holding e.g. numpy scalars by default; the converter then
    loads the (user-named) file in full and gives the API the dict."""
    data = torch.load(official[0])
    idx = official[1][fx.ALL_CONV3]["index"]
    for result in data["arch2infos"][idx]["full"]["all_results"].values():
        result["latency"] = [np.float64(0.012)]
    path = tmp_path / "numpy.pth"
    torch.save(data, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    out = tmp_path / "t.parquet"
    assert convert(path, out) == len(fx.CELLS)
    again = Table.load(out)
    assert [again.lookup(c, d) for c in fx.CELLS for d in DATASETS] == \
        [table.lookup(c, d) for c in fx.CELLS for d in DATASETS]


def test_nats_bench_topology_gives_the_same_table(official, table, tmp_path):
    """The same benchmark in NATS-Bench's layouts (hp keys '12'/'200'): its single
    .pickle.pbz2 file, and its fast-mode folder of one file per cell."""
    pytest.importorskip("nats_bench")
    data = torch.load(official[0])
    arch2infos = {i: {"12": v["less"], "200": v["full"]} for i, v in data["arch2infos"].items()}
    single = tmp_path / "NATS-tss-tiny.pickle.pbz2"
    with bz2.BZ2File(single, "wb", compresslevel=1) as f:
        pickle.dump({"meta_archs": data["meta_archs"], "arch2infos": arch2infos,
                     "evaluated_indexes": data["evaluated_indexes"]}, f, protocol=4)
    folder = tmp_path / "NATS-tss-tiny-simple"
    folder.mkdir()
    with bz2.BZ2File(folder / "meta.pickle.pbz2", "wb", compresslevel=1) as f:
        pickle.dump({"meta_archs": data["meta_archs"]}, f, protocol=4)
    for i, infos in arch2infos.items():
        with bz2.BZ2File(folder / f"{i:06d}.pickle.pbz2", "wb", compresslevel=1) as f:
            pickle.dump(infos, f, protocol=4)
    expected = [table.lookup(c, d) for c in fx.CELLS for d in DATASETS]
    for source in (single, folder):
        out = tmp_path / f"{source.name}.parquet"
        assert convert(source, out) == len(fx.CELLS)
        again = Table.load(out)
        assert [again.lookup(c, d) for c in fx.CELLS for d in DATASETS] == expected


def test_a_full_size_table_is_small_and_loads(tmp_path):
    df = fx.synthetic_frame()
    assert len(df) == 5 ** 6 * 3
    out = tmp_path / "full.parquet"
    assert write_table(df, out) == 5 ** 6
    assert out.stat().st_size < 5 * 2 ** 20
    t = Table.load(out)
    assert len(t) == 5 ** 6 and t.structures() == fx.all_structures()
    for dataset in DATASETS:
        rows = df[df.dataset == dataset]
        test = rows.test_acc.to_numpy()
        for i in (0, 1234, 5 ** 6 - 1):
            got = t.lookup(rows.structure.iloc[i], dataset)
            assert got["test_acc"] == test[i] and got["num_cells"] == 5 ** 6
            assert got["rank"] == 1 + (test > test[i]).sum()
            assert got["seeds"] == rows.seeds.iloc[i] and got["index"] == i


def test_write_table_refuses_bad_frames(tmp_path):
    df = fx.synthetic_frame().head(10)
    with pytest.raises(ValueError, match="columns"):
        write_table(df.drop(columns="params"), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="twice"):
        write_table(df.iloc[[0, 0]], tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="unknown datasets"):
        write_table(df.assign(dataset="svhn"), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="test accuracy"):
        write_table(df.assign(test_acc=np.nan), tmp_path / "a.parquet")
    assert not list(tmp_path.iterdir())
    assert list(COLUMNS) == list(df.columns)


def test_the_module_imports_only_the_standard_library_at_top_level():
    """`import spaces.nb201.table` needs no pandas, pyarrow or API package."""
    tree = ast.parse((ROOT / "spaces" / "nb201" / "table.py").read_text())
    top = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
           for a in node.names}
    top |= {node.module.split(".")[0] for node in tree.body
            if isinstance(node, ast.ImportFrom)}
    assert top <= {"json", "math", "os", "pickle"}


def test_fixture_structures_are_nb201_cells():
    assert len(set(fx.CELLS)) == len(fx.CELLS) and fx.ALL_NONE in fx.CELLS
    every = set(fx.all_structures())
    assert len(every) == 5 ** 6 and set(fx.CELLS) <= every
    assert next(itertools.islice(fx.all_structures(), 0, None)) == fx.ALL_NONE


@pytest.mark.parametrize("cell", sorted(fx.PUBLISHED_PARAMS))
def test_discrete_network_has_the_benchmarks_parameter_count(table, cell):
    """The benchmark's own counts of its smallest and largest cells, read through the converted
    table, equal the discrete network's parameters for 10, 100 and 120 classes."""
    from spaces.nb201.genotype import Structure
    from spaces.nb201.network import param_size

    for dataset, classes in (("cifar10", 10), ("cifar100", 100), ("imagenet16", 120)):
        want = table.lookup(cell, dataset)["params"]
        assert param_size(Structure.parse(cell), classes) / 1e6 == pytest.approx(want, abs=1e-6)
