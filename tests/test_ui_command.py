"""The `mlflow ui` command printed after every run works as printed: pasted into a shell whose
PATH lacks the virtual environment, it starts the UI on the run's store."""
import os
import signal
import socket
import subprocess
import time
import urllib.request

from tracking.mlflow_tracker import Tracker


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_printed_ui_command_starts_the_ui_without_the_venv_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    hint = Tracker().ui_hint("any run")  # a local store: the command, whatever the run
    printed = hint.split("open the UI with:  ", 1)[1]
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no virtual environment on PATH
    proc = subprocess.Popen(["/bin/sh", "-c", f"{printed} --host 127.0.0.1 --port {port}"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and status != 200:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
