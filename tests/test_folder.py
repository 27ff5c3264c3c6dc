"""Your own images in, the trained model out: a folder dataset (ImageFolder layout, written
from scikit-learn's digits as PNG files of mixed sizes plus a greyscale JPEG) through search,
selection and retrain; the retrained network as an MLflow Model that loads without this
project, serves predictions and is registered."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

from folder_fixture import write_digits_folder
from helpers import ROOT, TINY, argv, experiment_runs, run_cli
from pg import free_port
from runner.data import folder
from runner.data.datasets import DataError, dataset


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return root, write_digits_folder(str(root), n_train=600, n_test=150)


def test_any_size_and_format_is_resized_and_the_statistics_are_the_train_splits(images):
    from PIL import Image

    root, written = images
    data = dataset("folder", root=str(root), image_size=16, workers=0)
    assert data.classes == [str(d) for d in range(10)] and data.num_classes == 10
    assert data.train_x.shape == (600, 3, 16, 16) and data.test_x.shape == (150, 3, 16, 16)
    assert sorted(data.train_y.tolist()) == sorted(written["train"][1])  # every file, once
    # the colour set stays RGB, its one greyscale JPEG included; image i is file i, resized
    files = folder.scan(str(root), DataError)["train"][1]
    jpeg = next(i for i, (path, _) in enumerate(files) if path.endswith(".jpg"))
    for i in (0, jpeg, 599):
        with Image.open(files[i][0]) as img:
            rgb = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
        assert torch.equal(data.train_x[i], folder.resize(rgb[None], 16)[0])
        assert data.train_y[i] == files[i][1]
    x = data.train_x.double() / 255
    assert torch.allclose(data.mean.flatten().double(), x.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(data.std.flatten().double(), x.std((0, 2, 3)), atol=1e-6)
    assert data.mean.flatten()[0] > data.mean.flatten()[2]  # orange digits: R over B


def test_a_grey_set_keeps_one_channel_and_a_val_folder_is_the_alpha_split(tmp_path):
    write_digits_folder(str(tmp_path), n_train=40, n_test=20, val=30, grey=True)
    data = dataset("folder", root=str(tmp_path), image_size=12, workers=0)
    assert data.in_channels == 1 and data.train_x.shape == (70, 1, 12, 12)
    weights, alphas = data.search_halves()
    assert weights.tolist() == list(range(40)) and alphas.tolist() == list(range(40, 70))


def bad_folder(tmp_path, kind):
    """A folder with one fault; returns (root, the text the error must name)."""
    root = tmp_path / "mine"
    if kind == "missing":
        return root, str(root)
    write_digits_folder(str(root), n_train=30, n_test=20)
    if kind == "no test split":
        os.rename(root / "test", root / "held_out")
        return root, f"{root} has no test/ folder"
    if kind == "empty class":
        for f in (root / "train" / "3").iterdir():
            f.unlink()
        return root, f"{root / 'train' / '3'} is empty"
    if kind == "unreadable file":
        bad = root / "test" / "5" / "broken.png"
        bad.write_bytes(b"not an image at all")
        return root, f"image {bad} unreadable"
    os.rename(root / "test" / "9", root / "test" / "nine")  # class lists that differ
    return root, "test/ and train/ hold different classes (in one only: 9, nine)"


@pytest.mark.parametrize("kind", ["missing", "no test split", "empty class", "unreadable file",
                                  "other classes"])
def test_a_bad_folder_is_one_line_naming_it_before_any_run(kind, tmp_path, tracking, capsys,
                                                           clean_gin):
    root, culprit = bad_folder(tmp_path, kind)
    rc, out, err = run_cli(argv("folder.gin", TINY, binds=[
        f"dataset.root = '{root}'", "dataset.workers = 0"]), capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("runner: error: DataError: "), err
    assert culprit in lines[0], lines[0]
    assert tracking.get_experiment_by_name("folder") is None  # no run was created


@pytest.mark.parametrize("selector", ["pt", "magnitude"])
def test_search_select_and_retrain_on_a_folder(selector, images, tracking, tmp_path, capsys,
                                               clean_gin):
    root, _ = images
    rc, out, err = run_cli(argv("folder.gin", TINY, f"selectors/{selector}.gin", binds=[
        f"dataset.root = '{root}'", "dataset.workers = 0", "dataset.limit = 16",
        "dataset.image_size = 16", "retrain.auxiliary_weight = 0.0",  # no room for it at 16
        "Perturbation.subset = 8"]), capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "folder")
    assert run.info.status == "FINISHED" and "test_error" in run.data.metrics
    assert run.data.tags["selector"] == {"pt": "pt", "magnitude": "magnitude"}[selector]
    logged = json.loads(open(tracking.download_artifacts(
        run.info.run_id, "data/dataset.json", str(tmp_path))).read())
    assert logged["classes"] == [str(d) for d in range(10)] and len(logged["mean"]) == 3
    assert logged["image_shape"] == [3, 16, 16] and not logged["streamed"]


def test_over_the_memory_budget_the_retrain_streams_and_a_search_is_refused(
        images, tracking, tmp_path, capsys, clean_gin):
    root, _ = images
    binds = [f"dataset.root = '{root}'", "dataset.workers = 0", "dataset.image_size = 16",
             "dataset.memory_budget = 1e-6", "retrain.cutout = 0"]
    rc, _, err = run_cli(argv("folder.gin", TINY, binds=binds), capsys)
    assert rc == 2 and "search and selection need it in memory" in err, err
    assert tracking.get_experiment_by_name("folder") is None
    rc, out, err = run_cli(argv("folder.gin", TINY, binds=binds + [
        "run.genotype = 'darts_pt_s2_1'", "retrain.auxiliary_weight = 0.0"]), capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "folder")
    assert run.data.metrics["retrain/train_acc"] > 0 and "test_error" in run.data.metrics
    logged = json.loads(open(tracking.download_artifacts(
        run.info.run_id, "data/dataset.json", str(tmp_path))).read())
    assert logged["streamed"] and logged["classes"] == [str(d) for d in range(10)]


# ------------------------------------------------------------------------- the MLflow Model

# in the loading process `runner`, `spaces` and `tracking` cannot be imported
BLOCKED = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("runner", "spaces", "tracking"):
            raise ImportError(name + " is not installed here")
sys.meta_path.insert(0, Block())
"""
PREDICT = BLOCKED + """
import json, os, numpy as np, mlflow.pyfunc
from PIL import Image
model = mlflow.pyfunc.load_model(sys.argv[1])
argmax = []
for c in sorted(os.listdir(sys.argv[2])):  # each raw image at its own size
    for f in sorted(os.listdir(os.path.join(sys.argv[2], c))):
        with Image.open(os.path.join(sys.argv[2], c, f)) as img:
            x = np.asarray(img.convert("RGB"))[None]
        argmax.append(int(model.predict(x).argmax(1)[0]))
try:
    import runner
except ImportError:
    print(json.dumps(argmax))
"""


def runner_predictions(out, run_id, genotype, data):
    """The runner's own argmax on the test split: its retrain checkpoint in its network."""
    from spaces.cell import get_space
    from spaces.darts.genotype import Genotype

    state = torch.load(os.path.join(out, run_id, "retrain.pt"), weights_only=True)
    net = get_space("darts").family.network(Genotype.parse(genotype), 10, 3, C=8, layers=5,
                                            auxiliary=False)
    net.load_state_dict(state["net"])
    with torch.no_grad():
        return net.eval()(data.prepare(data.test_x, train=False))[0].argmax(1)


def serve(model_uri, env, cwd):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status == 200:
                return proc, port
        except OSError:
            assert time.time() < deadline, "mlflow models serve did not start"
            time.sleep(0.5)


def test_the_retrained_network_is_an_mlflow_model_that_loads_serves_and_is_registered(
        images, tracking, tmp_path, capsys, clean_gin):
    root, _ = images
    rc, out, err = run_cli(argv("retrain/darts_cifar10.gin", "data/folder.gin", binds=[
        f"dataset.root = '{root}'", "dataset.workers = 0", "dataset.image_size = 16",
        "run.genotype = 'darts_pt_s2_1'", "retrain.C = 8", "retrain.layers = 5",
        "retrain.epochs = 6", "retrain.batch_size = 32", "retrain.auxiliary_weight = 0.0",
        "retrain.drop_path_prob = 0.0", "retrain.cutout = 0", "run.device = 'cpu'",
        "run.plots = False", "run.experiment_name = 'own'",
        "run.register_model = 'digits_folder'"]), capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "own")
    run_id, acc = run.info.run_id, run.data.metrics["test_acc"]
    assert acc > 30.0, acc  # a short retrain, well above chance (10 %)
    uri = f"runs:/{run_id}/model"
    assert f"mlflow.pyfunc.load_model('{uri}')" in out
    genotype = run.data.tags["genotype"]
    data = dataset("folder", root=str(root), image_size=16, workers=0)
    own = runner_predictions(tmp_path / "outputs", run_id, genotype, data)
    assert 100.0 * float((own == data.test_y).float().mean()) == pytest.approx(acc)

    env = dict(os.environ, PYTHONPATH="",  # not this checkout either; the serving command
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    # (uvicorn) is found on PATH, as in an activated environment
    done = subprocess.run([sys.executable, "-c", PREDICT, uri, str(root / "test")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == own.tolist()  # same argmax

    proc, port = serve(uri, env, tmp_path)
    try:
        batch = data.test_x.permute(0, 2, 3, 1).numpy()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", headers={"Content-Type": "application/json"},
            data=json.dumps({"inputs": batch.tolist()}).encode())
        served = json.loads(urllib.request.urlopen(request, timeout=120).read())["predictions"]
        assert np.asarray(served).argmax(1).tolist() == own.tolist()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)

    (version,) = tracking.search_model_versions("name = 'digits_folder'")
    assert version.run_id == run_id and str(version.version) == "1"
    assert run.data.tags["registered_model"] == "digits_folder/1"
    info = json.loads(open(tracking.download_artifacts(run_id, "model/info.json",
                                                       str(tmp_path / "m"))).read())
    assert info["classes"] == [str(d) for d in range(10)] and info["genotype"] == genotype


def test_every_retrain_logs_its_model_cifar10_with_the_class_names_of_its_files(
        data_root, tracking, tmp_path, capsys, clean_gin):
    import mlflow.pyfunc

    from fixtures import CIFAR10_LABELS

    rc, out, err = run_cli(argv("retrain/darts_cifar10.gin", TINY, binds=[
        f"dataset.root = '{data_root}'", "dataset.verify_md5 = False",
        "run.genotype = 'darts_pt_s2_1'", "run.log_model = True"]), capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "retrain_darts_cifar10")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert model.metadata.metadata["classes"] == CIFAR10_LABELS
    images = np.zeros((3, 40, 24, 3), np.uint8)  # any size: resized inside to 32 x 32
    assert model.predict(images).shape == (3, 10)
