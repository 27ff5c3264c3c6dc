"""Bad input: one line naming the culprit, exit code 2, run FAILED when one was opened, and
every checkpoint already written kept."""
import errno
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from runner.training import checkpoint
from helpers import ROOT, TINY as TINY_GIN, argv, command, run_cli

TINY = argv("quickstart.gin", "selectors/pt.gin", "spaces/s2.gin", "overrides/tiny.gin",
            binds=["dataset.limit = 16", "Perturbation.subset = 8"])


def runner(tmp, *extra, uri=None):
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri or f"sqlite:///{tmp}/mlflow.db",
               OMP_NUM_THREADS="1")
    p = subprocess.run(command(*TINY, *extra), cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("runner:")]
    return p.returncode, lines, p.stderr


def runner_here(capsys, *extra):
    """The same command through runner.cli.main in this process, for errors raised before any
    training (with the `tracking` fixture: the store and working folder are tmp_path's)."""
    rc, _, err = run_cli(TINY + list(extra), capsys)
    return rc, [ln for ln in err.splitlines() if ln.startswith("runner:")], err


def the_run(tmp):
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return client, runs


@pytest.mark.parametrize("binding,culprit", [
    ("search.epochs = 'ten'", "search.epochs = 'ten'"),
    ("search.lr = '0.1'", "search.lr = '0.1'"),
    ("run.space = 's9'", "unknown search space 's9'"),
    ("run.method = @Dart", "@Dart"),
    ("Perturbation.crit = 'accuracy'", "Perturbation.crit must be 'acc' or 'loss'"),
])
def test_bad_values_and_names_are_one_line_errors(tmp_path, tracking, capsys, clean_gin,
                                                  binding, culprit):
    rc, lines, err = runner_here(capsys, "--bind", binding)
    assert rc == 2 and len(lines) == 1 and culprit in lines[0], err
    assert "Traceback" not in err
    _, runs = the_run(tmp_path)
    assert all(r.info.status == "FAILED" for r in runs)  # none, or marked FAILED


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    rc, lines, err = runner(tmp_path, uri="http://127.0.0.1:9")
    assert rc == 2 and len(lines) == 1
    assert "tracking server http://127.0.0.1:9 unreachable" in lines[0]
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_output_folder_that_cannot_be_written(tmp_path, tracking, capsys, clean_gin):
    (tmp_path / "a_file").write_text("not a folder")
    rc, lines, err = runner_here(capsys, "--bind", f"run.output_dir = '{tmp_path}/a_file/out'")
    assert rc == 2 and len(lines) == 1 and "a_file/out not writable" in lines[0], err


def finished_then_crashed(tmp, *extra):
    """A finished tiny run, set back to KILLED as if it had crashed: --resume will reopen it."""
    rc, _, err = runner(tmp, *extra)
    assert rc == 0, err
    client, (run,) = the_run(tmp)
    client.set_terminated(run.info.run_id, "KILLED")
    return client, run.info.run_id, tmp / "outputs" / run.info.run_id


def test_corrupt_checkpoint_is_refused_and_the_others_are_kept(tmp_path):
    client, run_id, out = finished_then_crashed(tmp_path)
    (out / "retrain.pt").unlink()
    sel = out / "select.pt"
    sel.write_bytes(sel.read_bytes()[:1000])  # truncated by a crash mid-copy
    search_bytes = (out / "search.pt").read_bytes()
    rc, lines, err = runner(tmp_path, "--resume")
    assert rc == 2 and len(lines) == 1, err
    assert "CheckpointError" in lines[0] and "select.pt unreadable" in lines[0]
    assert client.get_run(run_id).info.status == "FAILED"
    assert (out / "search.pt").read_bytes() == search_bytes and sel.exists()


def test_checkpoint_of_another_space_is_refused(tmp_path):
    search_only = ("--bind", "run.do_select = False", "--bind", "run.do_retrain = False")
    client, run_id, out = finished_then_crashed(tmp_path, *search_only)
    assert sorted(p.name for p in out.glob("*.pt")) == ["search.pt"]
    other = tmp_path / "other"
    other.mkdir()
    rc, _, err = runner(other, "--gin", str(ROOT / "gin/spaces/s4.gin"), "--gin", str(TINY_GIN),
                        *search_only)  # tiny.gin again: spaces/s4.gin sets a C16/L8 supernet
    assert rc == 0, err
    (other_ckpt,) = (other / "outputs").glob("*/search.pt")
    shutil.copy(other_ckpt, out / "search.pt")
    rc, lines, err = runner(tmp_path, "--resume", *search_only)
    assert rc == 2 and len(lines) == 1, err
    assert "search checkpoint was made for {'space': 's4'" in lines[0]
    assert client.get_run(run_id).info.status == "FAILED"


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/darts-pt-checkpoint-ran-code")


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"net": Payload()}, f)
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt unreadable"):
        checkpoint.load(str(path))
    assert not MARKER.exists()


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "search.pt"
    checkpoint.save({"epoch": 1, "w": torch.ones(3)}, str(path))

    def disk_full(obj, f):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # the disk is the boundary being faked
    with pytest.raises(OSError):
        checkpoint.save({"epoch": 2, "w": torch.zeros(3)}, str(path))
    monkeypatch.undo()
    state = checkpoint.load(str(path))
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["search.pt"]  # no temporary file left


def test_unknown_op_name_is_named():
    from spaces.ops import make_op

    with pytest.raises(ValueError, match="unknown op 'conv_9x9'; known ops: none, noise"):
        make_op("conv_9x9", 8, 1, search=True)


@pytest.mark.parametrize("n", ["0", "-2"])
def test_workers_below_one_is_refused_before_any_run(n, tmp_path, tracking, capsys, clean_gin):
    rc, lines, err = runner_here(capsys, "--workers", n)
    assert rc == 2 and lines == [f"runner: error: ValueError: --workers must be at least 1, "
                                 f"not {n}"], err
    _, runs = the_run(tmp_path)
    assert runs == [] and not (tmp_path / "outputs").exists()
