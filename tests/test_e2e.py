"""End to end: every gin file parses; every experiment file runs in tiny mode through the real
CLI into a real MLflow sqlite store, and the run reads back with the right status, tags, params,
metric histories and artifacts; errors are one line, exit 2 and leave no run behind."""
import ast
import csv
import os
import re
import subprocess
import sys

import gin
import numpy as np
import pytest

from fixtures import all_gin_files, experiment_files
from helpers import GIN_DIR, ROOT, TINY, gin_statements, run_cli, tiny_argv
from runner.training import checkpoint
from runner.config import configurables  # noqa: F401  (parse_config needs them registered)
from runner.cli import main
from runner.config import parse_config
from spaces.cell import get_space
from spaces.darts.genotype import Genotype

# the DARTS-cell experiment files; the NAS-Bench-201 ones have their own checks (test_nb201_e2e)
# (the Zero-Cost-PT files run a pool of nested runs: tests/test_zc_e2e.py; folder.gin reads a
# folder of images: tests/test_folder.py; IS-DARTS decides every edge in its search, leaving
# the selector nothing: tests/test_is_darts.py)
OWN_TESTS = ("include 'selectors/zc_pt.gin'", "include 'data/folder.gin'",
             "include 'methods/is_darts.gin'")
EXPERIMENTS = [p for p in experiment_files() if "include 'spaces/nb201.gin'" not in p.read_text()
               and not any(inc in p.read_text() for inc in OWN_TESTS)]
EXPECTED_EXPERIMENTS = {"quickstart", "darts_cifar10"} | {
    f"s{k}_{d}" for k in (1, 2, 3, 4) for d in ("cifar10", "cifar100", "svhn")}

# the `method` tag expected from the methods/ part an experiment file includes
METHOD_TAG = {"darts": "darts", "darts_2nd": "darts_2nd", "sdarts_rs": "sdarts_rs",
              "sdarts_adv": "sdarts_adv", "sgas": "sgas_cri1", "sgas_cri2": "sgas_cri2",
              "fix_alpha": "fix_alpha", "shapley": "shapley_nas", "is_darts": "is_darts"}


# ------------------------------------------------------------------------------ helpers


def rel(path):
    return str(path.relative_to(GIN_DIR))


def includes_of(path):
    return [s[1] for s in gin_statements(path) if s[0] == "include"]


def _param_text(value):
    """What MLflow should hold for a gin value: strings bare, @refs without (), else repr."""
    if value.startswith("@"):
        return value[:-2] if value.endswith("()") else value
    v = ast.literal_eval(value)
    return v if isinstance(v, str) else repr(v)


def expected_bindings(files, binds=()):
    """Last-wins composition of gin files (includes in place) and --bind lines, done by hand."""
    out = {}

    def visit(path):
        for s in gin_statements(path):
            if s[0] == "include":
                visit(GIN_DIR / s[1])
            else:
                out[s[1]] = _param_text(s[2])

    for f in files:
        visit(f)
    for b in binds:
        key, value = (s.strip() for s in b.split("=", 1))
        out[key] = _param_text(value)
    return out


def expected_selector(bindings):
    """Magnitude without fine-tuning is classic DARTS, with it PT-Mag (paper §6.2); else PT."""
    if bindings["select.criterion"] == "@Magnitude":
        return "pt-mag" if int(bindings.get("select.tune_epochs", "0")) > 0 else "magnitude"
    assert bindings["select.criterion"] == "@Perturbation"
    return "pt"


def expected_tags(exp, argv):
    """Tags from what the experiment file includes and the composed bindings of the call."""
    inc = includes_of(exp)

    def part(folder):
        names = [os.path.splitext(os.path.basename(i))[0] for i in inc
                 if i.startswith(folder + "/")]
        assert len(names) == 1, f"{exp.name} should include exactly one {folder}/ file: {inc}"
        return names[0]

    files = [argv[i + 1] for i, a in enumerate(argv) if a == "--gin"]
    binds = expected_bindings(files, bind_lines(argv))
    return {"space": part("spaces"), "dataset": part("data"),
            "selector": expected_selector(binds), "method": METHOD_TAG[part("methods")],
            "seed": binds.get("run.seed", "2"), "device": "cpu"}


def git_head():
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def bind_lines(argv):
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]


def all_runs(client):
    from mlflow.entities import ViewType

    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(ids, run_view_type=ViewType.ALL) if ids else []


def artifact_paths(client, run_id, path=None):
    out = set()
    for f in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def read_artifact(client, run_id, path, dst):
    local = client.download_artifacts(run_id, path, str(dst))
    with open(local, "rb") as f:
        return f.read()


def read_local(client, run_id, path, dst):
    return client.download_artifacts(run_id, path, str(dst))


def steps(client, run_id, key):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def check_finished_run(client, run, argv, files, out, tmp_path, search_epochs, retrain_epochs):
    """Everything a FINISHED run must hold; `files` are the --gin files in order."""
    rid = run.info.run_id
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert rid in out  # the summary names the run

    # params: every gin binding, composed last-wins as gin does
    binds = bind_lines(argv)
    want = expected_bindings(files, binds)
    params = run.data.params
    missing = sorted(set(want) - set(params))
    assert not missing, f"bindings not logged as params: {missing}"
    wrong = {k: (params[k], v) for k, v in want.items() if params[k] != v}
    assert not wrong, f"param (logged, expected): {wrong}"

    # metric histories: one point per epoch, test error once
    for key in ("search/train_acc", "search/valid_acc", "search/train_loss"):
        assert steps(client, rid, key) == list(range(search_epochs)), key
    for key in ("retrain/test_acc", "retrain/train_acc"):
        assert steps(client, rid, key) == list(range(retrain_epochs)), key
    assert steps(client, rid, "test_error") == [0]
    test_error = client.get_metric_history(rid, "test_error")[0].value
    test_acc = client.get_metric_history(rid, "retrain/test_acc")[-1].value
    assert 0.0 <= test_error <= 100.0 and test_error == pytest.approx(100.0 - test_acc)
    assert f"final test accuracy: {test_acc:.2f} %" in out

    # artifacts
    paths = artifact_paths(client, rid)
    need = {f"config/{f.name}" for f in files} | {
        "config/operative.gin", "config/bindings.gin", "genotype.json", "genotype.txt",
        "selection/decisions.csv", "search/alphas.npz", "search/search.pt"}
    assert need <= paths, f"missing artifacts: {sorted(need - paths)}"
    dl = tmp_path / "download"
    for f in files:
        assert read_artifact(client, rid, f"config/{f.name}", dl) == f.read_bytes()
    assert read_artifact(client, rid, "config/bindings.gin", dl).decode().split("\n")[:-1] \
        == binds
    operative = read_artifact(client, rid, "config/operative.gin", dl).decode()
    assert f"search.epochs = {search_epochs}" in operative

    # genotype: JSON artifact == tag string == text artifact == what the CLI printed
    tag = run.data.tags["genotype"]
    geno = Genotype.from_json(read_artifact(client, rid, "genotype.json", dl).decode())
    assert geno == Genotype.parse(tag)
    assert read_artifact(client, rid, "genotype.txt", dl).decode() == tag + "\n"
    assert str(geno) == tag and f"genotype: {tag}" in out
    space = get_space(params["run.space"])
    assert len(geno.normal) == 8 and len(geno.reduce) == 8
    for cell, genes in (("normal", geno.normal), ("reduce", geno.reduce)):
        candidates = {op for ops in space.ops(cell) for op in ops}
        assert {op for op, _ in genes} <= candidates, cell
        # two genes per intermediate node i (0..3), inputs among the i + 2 earlier states
        assert all(0 <= j < k // 2 + 2 for k, (_, j) in enumerate(genes)), genes

    # alphas: [epochs, 2 cells, 14 edges, K ops]
    with np.load(read_local(client, rid, "search/alphas.npz", dl)) as z:
        assert z["alphas"].shape == (search_epochs, 2, 14, space.num_ops)
        assert z["cells"].tolist() == ["normal", "reduce"]
        assert np.isfinite(z["alphas"]).all()
    state = checkpoint.load(read_local(client, rid, "search/search.pt", dl))
    assert "net" in state and state["epoch"] == search_epochs

    # selection: one op decision per edge of each cell
    with open(read_local(client, rid, "selection/decisions.csv", dl), newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["kind"] for r in rows} <= {"op", "topology"}
    assert sum(r["kind"] == "op" for r in rows) == 2 * 14
    return params


# ---------------------------------------------------------------------- 1. gin parsing


def test_experiment_files_are_all_there():
    assert EXPECTED_EXPERIMENTS <= {p.stem for p in EXPERIMENTS}


@pytest.mark.parametrize("path", all_gin_files(), ids=rel)
def test_every_gin_file_parses(path, clean_gin):
    parse_config([str(path)], [])  # clears gin first; unknown names are errors
    assert gin.config_str()  # something was bound
    if path.parent == GIN_DIR:  # an experiment file: named after itself, complete
        assert gin.query_parameter("run.experiment_name") == path.stem
        for key in ("run.space", "run.method", "dataset.name", "select.criterion"):
            gin.query_parameter(key)  # raises if unbound
        # with tiny mode on top the small sizes win
        parse_config([str(path), str(TINY)], [])
        assert gin.query_parameter("supernet.C") == 4
        assert gin.query_parameter("search.epochs") == 1


def test_later_file_wins_at_parse_time(clean_gin):
    exp = GIN_DIR / "s2_svhn.gin"
    parse_config([str(exp), str(TINY)], [])
    assert gin.query_parameter("supernet.C") == 4
    parse_config([str(TINY), str(exp)], [])  # the experiment's includes now come last
    assert gin.query_parameter("supernet.C") == 16
    assert gin.query_parameter("retrain.epochs") == 600
    parse_config([str(TINY), str(exp)], ["supernet.C = 6"])
    assert gin.query_parameter("supernet.C") == 6


# --------------------------------------------------- 2. every experiment, tiny, tracked


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_and_is_tracked(exp, data_root, tracking, capsys, tmp_path, clean_gin):
    # PT scores each candidate on 4 images instead of FAST_BINDS' 8, and 8 images instead of 16
    # feed each step: this test checks the layout of what is tracked, and the 7-op DARTS-space
    # files spend most of their time in PT's scoring passes and tuning steps (a quarter less)
    argv = tiny_argv(exp, data_root, "Perturbation.subset = 4", "dataset.limit = 8")
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err

    name = expected_bindings([exp])["run.experiment_name"]
    assert name == exp.stem
    assert [e.name for e in tracking.search_experiments()
            if e.name != "Default"] == [name]
    mlflow_exp = tracking.get_experiment_by_name(name)
    runs = tracking.search_runs([mlflow_exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    tiny = expected_bindings([TINY])
    params = check_finished_run(tracking, run, argv, [exp, TINY], out, tmp_path,
                                int(tiny["search.epochs"]), int(tiny["retrain.epochs"]))
    assert params["search.epochs"] == "1" and params["supernet.C"] == "4"
    assert params["dataset.root"] == str(data_root)
    assert params["dataset.verify_md5"] == "False"

    tags = run.data.tags
    for key, value in expected_tags(exp, argv).items():
        assert tags.get(key) == value, key
    assert tags["git_commit"] == git_head()
    # the run name carries method and selector when the command (here tiny.gin, which tunes
    # between decisions) makes the selector other than the experiment file's own
    own = expected_selector(expected_bindings([exp]))
    middle = "" if own == tags["selector"] else f"-{tags['method']}-{tags['selector']}"
    assert run.info.run_name == f"{name}{middle}-seed{tags['seed']}"


# ------------------------------------------------------------------- 3. error cases


def _assert_one_line_error(rc, out, err, kind):
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"runner: error: {kind}: "), lines[0]
    assert "Traceback" not in err and out == ""
    return lines[0]


@pytest.mark.parametrize("exp,folder,files", [
    ("s1_cifar10", "cifar-10-batches-py",
     [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    ("s2_cifar100", "cifar-100-python", ["train", "test", "meta"]),
    ("s3_svhn", "svhn", ["train_32x32.mat", "test_32x32.mat"]),
])
def test_missing_data_folder(exp, folder, files, tracking, tmp_path, capsys, clean_gin):
    absent = tmp_path / "no-data-here"
    rc, out, err = run_cli(tiny_argv(GIN_DIR / f"{exp}.gin", absent), capsys)
    line = _assert_one_line_error(rc, out, err, "DataError")
    assert str(absent / folder) in line
    for f in files:
        assert f in line
    assert "dataset.download" in line
    assert all_runs(tracking) == []


@pytest.mark.parametrize("binding,culprit,kind", [
    ("serch.epochs = 1", "'serch'", "ValueError"),
    ("search.epoch = 1", "'epoch'", "ValueError"),
    ("Darts.arch_lrr = 0.1", "'arch_lrr'", "ValueError"),
])
def test_unknown_binding(binding, culprit, kind, data_root, tracking, capsys, clean_gin):
    rc, out, err = run_cli(tiny_argv(GIN_DIR / "s2_svhn.gin", data_root, binding), capsys)
    line = _assert_one_line_error(rc, out, err, kind)
    assert culprit in line
    if binding.startswith("search.epoch "):
        assert "'search'" in line
    assert all_runs(tracking) == []


def test_unknown_parameter_in_a_gin_file(tmp_path, data_root, tracking, capsys, clean_gin):
    bad = tmp_path / "bad.gin"
    bad.write_text("retrain.epochz = 3\n")
    argv = tiny_argv(GIN_DIR / "s2_svhn.gin", data_root, extra_gin=[bad])
    rc, out, err = run_cli(argv, capsys)
    line = _assert_one_line_error(rc, out, err, "ValueError")
    assert "'epochz'" in line and "bad.gin" in line
    assert all_runs(tracking) == []


def test_missing_gin_file(tmp_path, data_root, tracking, capsys, clean_gin):
    missing = tmp_path / "nope.gin"
    rc, out, err = run_cli(tiny_argv(missing, data_root), capsys)
    line = _assert_one_line_error(rc, out, err, "FileNotFoundError")
    assert str(missing) in line
    assert all_runs(tracking) == []


def test_no_gin_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("runner: error: ") and "--list" in err


# --------------------------------------------------- 4. failure during training: FAILED


# lr 1e30: the first weight step blows the weights up, the second step's loss is not finite.
# With tiny's dataset.limit (32 images, 16 for weights, batch 8) epoch 0 has those 2 steps.
DIVERGE = "search.lr = 1e30"


def test_diverging_search_raises_floating_point_error(data_root, tracking, capsys, clean_gin):
    with pytest.raises(FloatingPointError, match="non-finite search loss in epoch 0"):
        main(tiny_argv(GIN_DIR / "s1_cifar10.gin", data_root, DIVERGE, fast=False)
             + ["--traceback"])
    (run,) = all_runs(tracking)
    assert run.info.status == "FAILED" and run.info.end_time is not None


def test_failed_run_is_marked_failed(data_root, tracking, capsys, tmp_path, clean_gin):
    argv = tiny_argv(GIN_DIR / "s1_cifar10.gin", data_root, DIVERGE, fast=False)
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "runner: error: FloatingPointError: non-finite search loss in epoch 0"), err
    (run,) = all_runs(tracking)
    assert run.info.status == "FAILED" and run.info.end_time is not None
    assert run.data.params["search.lr"] == "1e+30"
    # the config is still there to see what failed
    paths = artifact_paths(tracking, run.info.run_id)
    assert {"config/operative.gin", "config/s1_cifar10.gin", "config/tiny.gin"} <= paths
    assert "genotype.json" not in paths and "test_error" not in run.data.metrics


def test_divergence_message_names_an_existing_checkpoint(data_root, tracking, capsys,
                                                         clean_gin):
    rc, out, err = run_cli(tiny_argv(GIN_DIR / "s2_svhn.gin", data_root, DIVERGE, fast=False),
                             capsys)
    assert rc == 2
    m = re.search(r"last good checkpoint: (\S+)", err)
    if m:
        assert os.path.isfile(m.group(1))
    else:  # diverged in the first epoch: nothing was saved, and the message says so
        assert "no checkpoint written yet" in err and "epoch 0" in err


# ---------------------------------------------------------------------- 5. --list, --help


def test_list_names_every_experiment_file(capsys):
    rc = main(["--list"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == len(experiment_files())
    for exp, line in zip(experiment_files(), lines):
        assert line.startswith(f"gin/{exp.name} ")
        header = exp.read_text().splitlines()[0].lstrip("# ").strip()
        assert header in line  # the header's first sentence, which may run on (test_progress)


def test_help_mentions_list(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--list" in out and "--gin" in out and "--bind" in out
    assert "MLFLOW_TRACKING_URI" in out


def test_module_entry_point_lists_experiments():
    """`python -m runner` is the same CLI (no heavy imports for --list)."""
    p = subprocess.run([sys.executable, "-m", "runner", "--list"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {line.split()[0] for line in p.stdout.splitlines()} == {
        f"gin/{e.name}" for e in experiment_files()}


# --------------------------------------------------------------------- 6. composition


def test_composition_later_file_and_binding_win(data_root, tracking, capsys, tmp_path,
                                                 clean_gin):
    """experiment < tiny < extra file < --bind: each later source overrides the earlier."""
    exp = GIN_DIR / "quickstart.gin"
    extra = tmp_path / "extra.gin"
    extra.write_text("search.epochs = 3\nsearch.batch_size = 4\nretrain.epochs = 2\n")
    argv = tiny_argv(exp, data_root, "search.epochs = 2", extra_gin=[extra])
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    (run,) = all_runs(tracking)
    params = check_finished_run(tracking, run, argv, [exp, TINY, extra], out, tmp_path,
                                search_epochs=2, retrain_epochs=2)
    assert params["search.epochs"] == "2"      # --bind beats extra.gin 3, tiny 1, quickstart 8
    assert params["search.batch_size"] == "4"  # extra.gin beats tiny's 8 and quickstart's 64
    assert params["retrain.epochs"] == "2"     # extra.gin beats tiny's 1 and quickstart's 10
    assert params["supernet.C"] == "4"         # tiny beats quickstart 8, methods/darts.gin 16
    assert params["retrain.C"] == "4"          # tiny beats quickstart's 12
    assert params["dataset.limit"] == "16"     # --bind beats tiny's 32
    assert params["search.lr"] == "0.025"      # from methods/darts.gin, never overridden
    assert params["retrain.lr"] == "0.05"      # from quickstart.gin, never overridden
    assert params["run.experiment_name"] == "quickstart"
    assert run.data.tags["dataset"] == "digits"


# ---------------------------------------------- a `data` folder on sys.path breaks includes


def test_data_folder_on_sys_path_does_not_break_includes(tmp_path):
    (tmp_path / "data").mkdir()  # where the default dataset.root = 'data' points
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
               OMP_NUM_THREADS="1")
    # an unknown dataset name stops the run right after parsing, fixed or not
    p = subprocess.run([sys.executable, "-m", "runner", "--gin", str(GIN_DIR / "quickstart.gin"),
                        "--gin", str(TINY), "--bind", "dataset.name = 'nosuch'"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "DataError: unknown dataset 'nosuch'" in p.stderr, p.stderr
