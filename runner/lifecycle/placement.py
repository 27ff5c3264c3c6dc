"""Which device a worker process trains on: one worker per GPU, round robin.

A process learns its place from RUNNER_WORKER ("index/count"), which `--workers N` sets for
the processes it starts (the first one is 0/N), or from torchrun's LOCAL_RANK/LOCAL_WORLD_SIZE.
"""
import os

import torch

WORKER_ENV = "RUNNER_WORKER"


def visible_gpus(env=None):
    """The GPUs this process may use, by the names CUDA_VISIBLE_DEVICES gives them (or
    0..n-1), in the order torch numbers them cuda:0, cuda:1, ..."""
    env = os.environ if env is None else env
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = env.get("CUDA_VISIBLE_DEVICES")
    if named is not None and named.strip():
        return [g.strip() for g in named.split(",") if g.strip()][:n] if n else []
    return [str(i) for i in range(n)]


def place(worker, workers, gpus):
    """(torch device, physical GPU name or None) of worker `worker` of `workers` when `gpus`
    (names, in torch's order) are visible: worker i on GPU i mod len(gpus); none: the CPU."""
    if not 0 <= worker < max(workers, 1):
        raise ValueError(f"worker {worker} of {workers}")
    if not gpus:
        return "cpu", None
    k = worker % len(gpus)
    return f"cuda:{k}", gpus[k]


def this_worker(env=None):
    """(index, count) of this process among the workers of its command; (0, 1) alone."""
    env = os.environ if env is None else env
    if WORKER_ENV in env:
        index, _, count = env[WORKER_ENV].partition("/")
        return int(index), int(count)
    if "LOCAL_RANK" in env:
        return int(env["LOCAL_RANK"]), int(env.get("LOCAL_WORLD_SIZE", 1))
    return 0, 1


def worker_env(index, count):
    """The environment of worker `index` of `count`, started by this process."""
    return dict(os.environ, **{WORKER_ENV: f"{index}/{count}"})


def cpu_threads(workers, cores=None):
    """Threads per process when `workers` processes share the CPU: they would otherwise each
    take every core and slow each other down many times over (OpenMP oversubscription)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


def auto_device():
    """This worker's device for run.device = 'auto', and a tag naming the physical GPU."""
    index, count = this_worker()
    device, gpu = place(index, count, visible_gpus())
    if device == "cpu" and count > 1:
        torch.set_num_threads(cpu_threads(count))
    return torch.device(device), ({"gpu": gpu} if gpu is not None else {})
