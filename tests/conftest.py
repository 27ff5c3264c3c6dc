"""Shared fixtures: tiny on-disk datasets, an isolated MLflow sqlite store per test."""
import shutil

import pytest
import torch

import fixtures

# Two OpenMP threads on a 2-core machine that also runs other processes spin against each
# other: a tiny supernet step then takes seconds instead of tens of milliseconds. One thread
# changes speed only, not results.
torch.set_num_threads(1)

ROOT = fixtures.GIN_DIR.parent
LEFT_BEHIND = ("outputs", "mlflow.db", "mlruns", "mlflow.db.lock")  # what a run writes


def _written():
    return {name: sorted(p.name for p in (ROOT / name).iterdir()) if (ROOT / name).is_dir()
            else (ROOT / name).exists() for name in LEFT_BEHIND}


def pytest_sessionstart(session):
    session.config._checkout_before = _written()


def pytest_sessionfinish(session, exitstatus):
    """The suite fails when it wrote run folders or a store into the checkout."""
    before, after = getattr(session.config, "_checkout_before", None), _written()
    changed = [name for name in LEFT_BEHIND if before is not None and before[name] != after[name]]
    if changed:
        print(f"\ntests wrote into the checkout {ROOT}: "
              + ", ".join(f"{name} ({before[name]} -> {after[name]})" for name in changed))
        session.exitstatus = 1


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory):
    """CIFAR-10, CIFAR-100 and SVHN in their official formats under one folder.

    Returns (root, written) where written[name][split] = (images NCHW uint8, labels).
    The folder is not called `data`: see test_e2e.test_data_folder_on_sys_path_* for why.
    """
    root = tmp_path_factory.mktemp("datasets")
    return root, fixtures.write_all(str(root))


@pytest.fixture(scope="session")
def data_root(tiny_datasets):
    return tiny_datasets[0]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An initialised (empty) MLflow sqlite database: creating the schema takes seconds,
    copying the file takes milliseconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, mlflow_template):
    """Run in tmp_path with its own sqlite tracking store; returns an MlflowClient on it."""
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return MlflowClient(tracking_uri=uri)


@pytest.fixture
def clean_gin():
    """Leave no parsed gin config behind for other tests (gin state is process-global)."""
    import gin

    yield
    gin.clear_config()


@pytest.fixture(autouse=True, scope="session")
def in_a_session_folder(tmp_path_factory):
    """Module and session fixtures (which start before a test's own folder is entered) run in
    a temporary folder too, as do the processes they start."""
    import os

    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


@pytest.fixture(autouse=True)
def in_a_temporary_folder(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: a run it starts writes its `outputs/` (and
    an embedded `mlflow.db`) there, never into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_gin_bindings_from_earlier_tests():
    """Bindings parsed by an in-process runner call would otherwise reach configurables that a
    later test constructs directly (e.g. `Perturbation.subset` from tiny.gin)."""
    import gin

    gin.clear_config()
    yield


@pytest.fixture(scope="session")
def nb201_table(tmp_path_factory):
    """A converted NAS-Bench-201 table of the full size (all 15,625 cells, random accuracies):
    every cell a tiny run can reach is in it."""
    import nb201_fixture
    from spaces.nb201.table import write_table

    path = tmp_path_factory.mktemp("nb201") / "nb201_table.parquet"
    write_table(nb201_fixture.synthetic_frame(), path)
    return path


@pytest.fixture
def torchrun_alone():
    """This test's torchrun jobs run while no other test's do (helpers.torchrun_alone)."""
    from helpers import torchrun_alone as alone

    with alone():
        yield
