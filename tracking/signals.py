"""A stop signal (SIGTERM, torchrun's stop) that arrives during a tracking-store call takes
effect when the call returns. Raised inside the call, it can leave a sqlite transaction open,
and marking the run KILLED then fails with "database is locked"."""
from contextlib import contextmanager

_depth = 0
_pending = None


def defer(exc):
    """From a signal handler: True when `exc` is kept until the store call in progress ends."""
    global _pending
    if _depth:
        _pending = exc
        return True
    return False


@contextmanager
def store_call():
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth and _pending is not None:
        exc, _pending = _pending, None
        raise exc


class DeferringClient:
    """An MlflowClient whose every call runs inside `store_call`."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with store_call():
                return attr(*args, **kwargs)

        return call
