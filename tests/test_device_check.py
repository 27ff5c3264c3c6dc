"""bench/device_check.sh, the first GPU machine's one command, in its CPU dry-run mode: every
step runs (search + PT + retrain tracked to sqlite, perf.py, a 2-process data-parallel
retrain on gloo) and the report names each step's exit status and figures."""
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from helpers import ROOT


def test_dry_run_runs_every_step_and_writes_one_report(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--dry-run"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "device_report.md").read_text()
    assert "(dry run, CPU)" in report
    for step in ("smoke", "perf", "ddp"):
        assert f"| {step} | 0 |" in report, report
    assert report.count("final test accuracy") == 2  # the smoke run and the DDP retrain
    assert "| search step, s |" in report
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for name in ("device_check", "device_ddp"):
        runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        assert [r.info.status for r in runs] == ["FINISHED"]
    ddp = client.search_runs([client.get_experiment_by_name("device_ddp").experiment_id])[0]
    assert ddp.data.tags["world_size"] == "2"
