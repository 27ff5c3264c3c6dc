"""Installed, not only checked out: a non-editable install (what the Docker image does) into a
temporary target lists and runs the shipped experiment files from an unrelated folder."""
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """What the Dockerfile copies, installed with `pip install .` into a temporary target."""
    src, target = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("site")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("runner", "spaces", "tracking", "gin"):
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-compile", "--target", str(target),
                          str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return target


def runner(installed, cwd, *args, **env):
    env = dict(os.environ, PYTHONPATH=str(installed), **env)
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_installed_package_ships_its_gin_files(installed):
    gin_dir = installed / "runner" / "gin"
    assert gin_dir.is_dir() and not gin_dir.is_symlink()
    shipped = {str(p.relative_to(gin_dir)) for p in gin_dir.rglob("*.gin")}
    in_repo = {str(p.relative_to(ROOT / "gin")) for p in (ROOT / "gin").rglob("*.gin")}
    assert shipped == in_repo


def test_list_and_a_tiny_run_from_an_unrelated_folder(installed, tmp_path, mlflow_template):
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = runner(installed, work, "--list")
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0] for line in out.stdout.splitlines()}
    assert {"gin/quickstart.gin", "gin/s3_svhn.gin"} <= listed
    probe = subprocess.run([sys.executable, "-c", "import runner; print(runner.__file__)"],
                           cwd=work, env=dict(os.environ, PYTHONPATH=str(installed)),
                           capture_output=True, text=True)
    assert probe.stdout.strip().startswith(str(installed))  # not the checkout
    shutil.copy(mlflow_template, work / "mlflow.db")
    out = runner(installed, work, "--gin", "gin/quickstart.gin", "--gin", "gin/overrides/tiny.gin",
                 "--bind", "run.do_retrain = False", "--bind", "dataset.limit = 16",
                 "--bind", "select.tune_epochs = 0")  # the install is under test, not PT-Mag
    assert out.returncode == 0, out.stderr[-3000:]
    assert "genotype: Genotype(normal=" in out.stdout
    assert (work / "mlflow.db").stat().st_size > 0 and (work / "outputs").is_dir()
