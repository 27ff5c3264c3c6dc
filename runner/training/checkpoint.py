"""Checkpoints written atomically and read without executing code."""
import os
import tempfile
from contextlib import contextmanager

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit."""


def save(state, path):
    """Write to a temporary file in the same folder, then rename: the old file stays valid."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path, map_location="cpu"):
    """torch.load with weights_only=True: a crafted file cannot run code."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the file's fault
        raise CheckpointError(f"checkpoint {path} unreadable: {str(e).splitlines()[0]}") from e


def last_good(path):
    """Words naming the checkpoint a failed run leaves behind."""
    if path and os.path.exists(path):
        return f"last good checkpoint: {path}"
    return "no checkpoint written yet"


def meta(net, method):
    """What a checkpoint was made for; checked before it is applied."""
    return {"space": net.space.name, "method": method.name}


@contextmanager
def applying(state, what, net=None, method=None):
    """Turn a checkpoint that does not fit (other space, method or shapes) into one clear line."""
    if net is not None and state.get("meta", meta(net, method)) != meta(net, method):
        raise CheckpointError(f"{what} was made for {state['meta']}, not for "
                              f"{meta(net, method)}")
    try:
        yield
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{what} does not fit this run: {first[:300]}") from e
