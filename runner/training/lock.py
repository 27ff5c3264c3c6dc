"""One process per run: an exclusive lock file in the run's output folder.

The lock is an flock(2) on `<run folder>/.lock`, so the kernel releases it on every exit path,
SIGKILL included: a dead holder's lock is free for the next process, with no liveness guess.
The file holds the holder's 'host:pid' for the message of a process that is refused.
"""
import fcntl
import os
import socket
from contextlib import contextmanager

LOCK = ".lock"


class RunLocked(RuntimeError):
    """Another live process holds the run."""


def holder(path):
    try:
        with open(path) as f:
            return f.read().strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def held(folder, what):
    """Hold `folder`'s lock for the body; `what` names the run in the refusal."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLocked(f"{what} is being run by process {holder(path)} (lock {path}); "
                        "wait for it or stop it first") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()}:{os.getpid()}".encode())
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
