"""Runner calls in the background: a queue of `runner` argument lists run by worker processes
while the rest of a test module goes on (the suite has 2 cores and pytest-xdist 2 workers).

Each worker claims job files from the queue folder (an atomic rename, so no job runs twice),
runs each as one in-process `runner` call into its own sqlite MLflow store, and writes
`<job>.result` with the exit code, the end of stderr and the store's URI.
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def worker_main(queue):
    """A worker process: runs the queue's jobs until none is left."""
    import torch

    from runner.cli import main

    torch.set_num_threads(1)
    for path in sorted(Path(queue).glob("*.json")):
        mine = path.with_suffix(f".{os.getpid()}")
        try:
            os.rename(path, mine)  # the other worker took it if this fails
        except FileNotFoundError:
            continue
        name, argv = json.loads(mine.read_text())
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(argv)
        result = {"rc": rc, "err": err.getvalue()[-3000:], "uri": os.environ["MLFLOW_TRACKING_URI"]}
        mine.with_suffix(".result").write_text(json.dumps([name, result]))
        print(name, rc, file=sys.stderr, flush=True)


class JobPool:
    """`jobs`: [(name, argv)] in the order to start them (put the longest first)."""

    def __init__(self, root, jobs, mlflow_template, workers=2, timeout=900):
        self.queue, self.timeout, self.cache = root / "queue", timeout, {}
        self.queue.mkdir()
        for i, job in enumerate(jobs):
            (self.queue / f"{i:03d}.json").write_text(json.dumps(list(job)))
        self.workers = [self._start(root, mlflow_template, i) for i in range(workers)]

    def _start(self, root, template, i):
        folder = root / f"worker{i}"
        folder.mkdir()
        shutil.copy(template, folder / "mlflow.db")
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder}/mlflow.db",
                   OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
                       [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        code = "import sys, job_pool; job_pool.worker_main(sys.argv[1])"
        with open(folder / "stderr.txt", "w") as log:
            proc = subprocess.Popen([sys.executable, "-c", code, str(self.queue)], cwd=folder,
                                    env=env, stdout=subprocess.DEVNULL, stderr=log)
        return proc, folder / "stderr.txt"

    def results(self):
        """name -> (exit code, stderr tail, tracking URI), once every job has run."""
        if not self.cache:
            for proc, log in self.workers:
                assert proc.wait(timeout=self.timeout) == 0, log.read_text()[-3000:]
            for path in self.queue.glob("*.result"):
                name, result = json.loads(path.read_text())
                self.cache[name] = (result["rc"], result["err"], result["uri"])
        return self.cache

    def close(self):
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
