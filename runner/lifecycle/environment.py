"""What a run sets up before its MLflow run opens: device, seeds, determinism, output folder."""
import os
import random
import subprocess
import tempfile

import numpy as np
import torch

from runner.lifecycle.placement import auto_device


def pick_device(name):
    """(device, tags): 'auto' and 'cuda' mean this worker's GPU (runner/lifecycle/placement.py), or the
    CPU where there is none; a numbered device ('cuda:3', 'cpu') is taken as given."""
    if name in ("auto", "cuda"):
        device, tags = auto_device()
        if name == "cuda" and device.type != "cuda":
            raise RuntimeError("run.device = 'cuda' but torch sees no CUDA device")
        return device, tags
    return torch.device(name), {}


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def set_deterministic(on):
    """Deterministic kernels and no cudnn autotuning (darts-pt turns cudnn.benchmark on)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = not on
    torch.backends.cudnn.deterministic = on


def writable(folder):
    """Fail before training when checkpoints could not be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        # a probe of this process's own: processes started together share the folder
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as f:
            f.write(b"ok")
    except OSError as e:
        raise PermissionError(f"output folder {os.path.abspath(folder)} not writable "
                              f"({e.strerror}); set run.output_dir") from e
