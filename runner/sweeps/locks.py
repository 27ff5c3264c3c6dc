"""The setup lock of a study, across the processes and machines that share its storage.

Creating a study, enqueueing its slots and taking over a dead owner's setup each read the
storage and then write it; two workers doing that at the same moment both see an empty study
and both fill it (every seed ran twice). Optuna has no lock of its own for that, so the
storage's server or file gives one.
"""
import contextlib
import fcntl
import hashlib
import logging
import os

from runner.sweeps.urls import unreachable

log = logging.getLogger(__name__)


def lock_key(name):
    """A signed 64-bit key for a database advisory lock, stable across machines."""
    digest = hashlib.blake2b(f"darts-pt-setup:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def setup_lock(url, name):
    """The lock every worker of study `name` takes to create it, fill its slots or take over
    its setup: an advisory lock of the PostgreSQL (or MySQL) server, which the server drops
    when a killed worker's connection closes; an flock beside a journal or sqlite file."""
    if url.startswith("journal:"):
        return lambda: file_lock(url[len("journal:"):] + ".setup.lock")
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    if dialect in ("postgresql", "mysql"):
        return lambda: database_lock(url, dialect, name)
    if dialect == "sqlite":
        return lambda: file_lock(url.split(":///", 1)[-1] + ".setup.lock")
    log.warning("no cross-machine setup lock for %s storages: workers should not start at "
                "the same moment", dialect)
    return contextlib.nullcontext


@contextlib.contextmanager
def file_lock(path):
    """An exclusive flock, dropped by the kernel when its holder dies."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def database_lock(url, dialect, name):
    """A session advisory lock on its own connection, dropped by the server when that
    connection ends (a killed worker holds nothing)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    take, give = {"postgresql": ("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"),
                  "mysql": ("SELECT GET_LOCK(:k, -1)", "SELECT RELEASE_LOCK(:k)")}[dialect]
    key = lock_key(name) if dialect == "postgresql" else f"darts-pt-setup:{name}"[:64]
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)  # closing it drops the lock
    try:
        try:
            conn = engine.connect()
        except Exception as e:  # noqa: BLE001 - sqlalchemy/driver errors are long and nested
            raise unreachable(url, e) from e
        with conn:
            conn.execute(sqlalchemy.text(take), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text(give), {"k": key})
    finally:
        engine.dispose()
