"""Runner processes started at the same moment on a fresh sqlite store: the store is created
once, under a lock beside it, and every process finishes with its run in the one store."""
import os
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from helpers import argv

ARGS = argv("quickstart.gin", "overrides/tiny.gin",
            binds=["run.do_select = False", "search.epochs = 0"])
# imports first (seconds), then wait at the barrier, then the command: the store is touched
# by all of them within milliseconds
WAIT_THEN_RUN = """
import os, sys, time
from runner.cli import main
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


def test_processes_released_together_on_a_fresh_store_all_finish(tmp_path):
    for attempt in range(2):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        barrier, uri = folder / "go", f"sqlite:///{folder}/mlflow.db"
        env = dict(os.environ, MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1",
                   RUNNER_PROGRESS="0")
        procs = [subprocess.Popen([sys.executable, "-c", WAIT_THEN_RUN, str(barrier), *ARGS,
                                   "--bind", f"run.seed = {k}"],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for k in range(4)]
        time.sleep(8)  # every process imported and waiting
        barrier.touch()
        for p in procs:
            assert p.wait(timeout=300) == 0, p.stderr.read()[-3000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("quickstart")
        runs = client.search_runs([exp.experiment_id])
        assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1", "2", "3"]
        assert all(r.info.status == "FINISHED" for r in runs)
