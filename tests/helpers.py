"""Paths and command lines shared by every test file: one ROOT, one argv builder."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIN_DIR = ROOT / "gin"
TINY = GIN_DIR / "overrides" / "tiny.gin"

# On top of tiny.gin: PT selection scores every op of every edge with extra supernet passes, which
# tiny.gin alone leaves at ~1 min for darts_cifar10 on a CPU; these project knobs halve that.
FAST_BINDS = ("Perturbation.subset = 8", "dataset.limit = 16")


def tiny_argv(exp, root, *binds, extra_gin=(), fast=True):
    """`runner` arguments for experiment file `exp` in tiny mode on the tiny datasets at `root`."""
    argv = ["--gin", str(exp), "--gin", str(TINY)]
    for g in extra_gin:
        argv += ["--gin", str(g)]
    argv += ["--bind", f"dataset.root = '{root}'", "--bind", "dataset.verify_md5 = False"]
    for b in (FAST_BINDS if fast else ()) + tuple(binds):
        argv += ["--bind", b]
    return argv


def run_cli(argv, capsys):
    """The runner's main() in this process; returns (exit code, stdout, stderr)."""
    from runner.cli import main

    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err
