"""bench/device_check.sh, the first GPU machine's one command, in its CPU dry-run mode: every
step runs (search + PT + retrain tracked to sqlite, perf.py, a 2-process data-parallel
retrain on gloo) and the report names each step's exit status and figures; and
bench/ddp_scaling.py's table from one and two gloo processes."""
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from helpers import ROOT


def test_dry_run_runs_every_step_and_writes_one_report(tmp_path, torchrun_alone):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--dry-run"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "device_report.md").read_text()
    assert "(dry run, CPU)" in report
    for step in ("smoke", "perf", "ddp", "input"):
        assert f"| {step} | 0 |" in report, report
    assert report.count("final test accuracy") == 2  # the smoke run and the DDP retrain
    assert "| search step, s |" in report
    assert "| workers | batch | images | seconds | images/s |" in report
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for name in ("device_check", "device_ddp"):
        runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        assert [r.info.status for r in runs] == ["FINISHED"]
    ddp = client.search_runs([client.get_experiment_by_name("device_ddp").experiment_id])[0]
    assert ddp.data.tags["world_size"] == "2"
    assert len(list((tmp_path / "outputs").iterdir())) == 2  # run folders under $OUT


def test_scaling_benchmark_runs_one_and_two_processes_and_prints_its_table(tmp_path,
                                                                           torchrun_alone):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ddp_scaling.py"), "--cpu",
                           "--nproc", "1", "2", "--phases", "retrain", "--epochs", "1",
                           "--train", "32"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()
            if line.startswith("| search") or line.startswith("| retrain")]
    # the retrain phase alone keeps this cheap; the search phase is the same launch code
    assert [(r[0].strip(), int(r[1]), int(r[2])) for r in rows] == [
        ("retrain", 1, 8), ("retrain", 2, 16)]
    for r in rows:
        assert float(r[3]) > 0 and float(r[4]) > 0  # seconds per epoch, images/s
    assert float(rows[0][5]) == 1.0  # speedups are against 1 process
