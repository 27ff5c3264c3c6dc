"""Paths and command lines shared by every test file: one ROOT, one argv builder."""
import contextlib
import fcntl
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIN_DIR = ROOT / "gin"
TINY = GIN_DIR / "overrides" / "tiny.gin"  # last of the gin files: spaces/s1-s4.gin and
# spaces/darts.gin bind the paper's C16/L8 supernet and 50 search epochs, which it undoes

# On top of tiny.gin: PT selection scores every op of every edge with extra supernet passes, which
# tiny.gin alone leaves at ~1 min for darts_cifar10 on a CPU; these project knobs halve that.
FAST_BINDS = ("Perturbation.subset = 8", "dataset.limit = 16")


def argv(*gin_files, binds=()):
    """`runner` arguments: each gin file in order (a path, or a path under gin/), then each
    binding."""
    out = []
    for g in gin_files:
        out += ["--gin", str(g if Path(g).is_absolute() else GIN_DIR / g)]
    for b in binds:
        out += ["--bind", b]
    return out


def command(*args):
    """The `runner` command line for a subprocess."""
    return [sys.executable, "-m", "runner", *args]


@contextlib.contextmanager
def torchrun_alone():
    """Holds a machine-wide lock while a torchrun job runs. Once in a full suite run, with the two
    pytest workers each in a torchrun test, a rank aborted in gloo at start-up; the suspected
    cause (not proven) is a port one job chose and closed and the other then bound."""
    with open(Path(tempfile.gettempdir()) / "darts-pt-tests-torchrun.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def launch(nproc, *args):
    """`python ARGS...` alone (nproc 1) or under torchrun with nproc processes on this machine."""
    if nproc == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            str(nproc), *args]


def tiny_argv(exp, root, *binds, extra_gin=(), fast=True):
    """`runner` arguments for experiment file `exp` in tiny mode on the tiny datasets at `root`."""
    data = (f"dataset.root = '{root}'", "dataset.verify_md5 = False")
    return argv(exp, TINY, *extra_gin, binds=data + (FAST_BINDS if fast else ()) + tuple(binds))


def run_cli(argv, capsys):
    """The runner's main() in this process; returns (exit code, stdout, stderr)."""
    from runner.cli import main

    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def experiment_runs(client, experiment):
    """The runs of an MLflow experiment, oldest first."""
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def analysis_table(client, run_id, name, tmp_path):
    """Rows of the CSV table `analysis/<name>.csv` a run logged."""
    import csv

    path = client.download_artifacts(run_id, f"analysis/{name}.csv", str(tmp_path / run_id))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def method_records(client, run_id, tmp_path):
    """The method's `records` a search logged (`search/method_decisions.json`): SGAS's
    decisions, IS-DARTS's pruning steps."""
    import json

    path = client.download_artifacts(run_id, "search/method_decisions.json",
                                     str(tmp_path / run_id))
    return json.loads(Path(path).read_text())


def gin_statements(path):
    """('include', file) and ('bind', key, value text) in file order, comments dropped (a value
    that spans lines keeps its first line: the keys are what the readers need)."""
    out = []
    for line in open(path).read().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"include\s+'([^']+)'", line)
        if m:
            out.append(("include", m.group(1)))
            continue
        if "=" not in line or line[0] in "'\"{[(":  # inside a value that spans lines
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        out.append(("bind", key, value))
    return out


def check_report(tmp_path, capsys, experiment, method, selector):
    """`runner report` lists the run in the protocol table under its method and selector."""
    import pandas as pd

    rc, _, err = run_cli(["report", "--experiment", experiment, "--out", str(tmp_path / "rep"),
                          "--no-log"], capsys)
    assert rc == 0, err
    table = pd.read_csv(tmp_path / "rep" / "protocol.csv")
    assert [(r.method, r.selector) for r in table.itertuples()] == [(method, selector)]
