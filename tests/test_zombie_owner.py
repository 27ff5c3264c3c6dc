"""A worker that ended but was not reaped yet (a zombie) is dead to the setup: the study's
setup it owned is taken over within seconds, and its parent still reads its exit status."""
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import optuna

from runner.sweeps.setup import dead, once, zombie


def test_a_zombie_child_owning_the_setup_is_taken_over(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    deadline = time.time() + 30
    while not zombie(child.pid):  # ended, not reaped: signal 0 still reaches it
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(child.pid, 0)
    owner = f"{socket.gethostname()}:{child.pid}"
    assert dead(owner)
    study.set_user_attr("setup_owner", owner)
    got = []
    me = f"{socket.gethostname()}:{os.getpid()}"
    t = threading.Thread(target=lambda: got.append(
        once(study, "value", lambda: 42, me, contextlib.nullcontext)), daemon=True)
    t0 = time.time()
    t.start()
    t.join(timeout=20)
    assert got == [42] and time.time() - t0 < 20
    assert study.user_attrs["setup_owner"] == me
    assert child.wait(timeout=10) == 3  # the exit status is still its parent's to read


def test_a_live_process_is_not_dead():
    assert not zombie(os.getpid())
    assert not dead(f"{socket.gethostname()}:{os.getpid()}")
