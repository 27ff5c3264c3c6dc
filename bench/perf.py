"""Speed and memory next to the reference (issue 8): search step, PT scoring pass, retrain step.

Times the reference with the same settings and torch threads, then this project's own code
paths, back to back in one run: ../shared/reference/bench_reference.py (search step, one
BN-train forward pass) and the reference's retrain network (sota/cnn/model.py), each in a
subprocess; ours through runner.search.train_step, Perturbation.measure / measure_all and
runner.retrain.train_epoch on synthetic CIFAR-sized uint8 data. Without ../shared/reference
only our numbers are printed. Prints one markdown table.

    python bench/perf.py [--tiny] [--device auto|cpu|cuda] [--C 16 --layers 8 --batch 64 --steps 3]

Medians over --steps timed calls after one warm-up. Our steps include the device-side
augmentation of their batches; the reference's use ready float tensors.
"""
import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REF = REPO.parent / "shared" / "reference"
SEARCH_IMAGES = 25_000  # CIFAR-10 train half per search split (spec §3.1)
PT_GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
               "('dil_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 2), ('skip_connect', 0), "
               "('max_pool_3x3', 4)], reduce=[('sep_conv_3x3', 0), ('avg_pool_3x3', 1), "
               "('dil_conv_5x5', 1), ('dil_conv_3x3', 2), ('avg_pool_3x3', 0), ('max_pool_3x3', 2), "
               "('sep_conv_3x3', 2), ('skip_connect', 4)])")  # darts_pt_s5_0, paper Table 2


TIMING = {"warmup": 1, "clock": time.perf_counter}  # main() sets them from the arguments
CLOCK = {"wall": "time.perf_counter", "cpu": "time.process_time"}
# runs a reference script with its clock swapped: time.perf_counter -> the --clock function
WITH_CLOCK = "import runpy, sys, time; time.perf_counter = {}; sys.argv = sys.argv[1:]; " \
             "runpy.run_path(sys.argv[0], run_name='__main__')"


def timed(fn, n, device, clock=None):
    """Median seconds of n calls after the warm-up calls."""
    clock = clock or TIMING["clock"]
    for _ in range(TIMING["warmup"]):
        fn()
    times = []
    for _ in range(n):
        sync(device)
        t = clock()
        fn()
        sync(device)
        times.append(clock() - t)
    return statistics.median(times)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images(n, device, seed=0):
    """A CIFAR-10-shaped Dataset of random uint8 images, on `device`."""
    from runner.data import STATS, Dataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    mean, std, _ = STATS["cifar10"]
    view = (1, 3, 1, 1)
    return Dataset("bench", x, y, x[:0], y[:0], torch.tensor(mean, device=device).view(view),
                   torch.tensor(std, device=device).view(view), True, 4, 10)


def ours_supernet(a, device, search_only=False):
    """Search step and PT scoring times of our supernet with the current gin bindings."""
    from runner.criteria import Perturbation
    from runner.loops import Meter
    from runner.methods import Darts
    from runner.precision import precision
    from runner.search import train_step
    from spaces.darts import get_space
    from spaces.supernet import Supernet

    torch.manual_seed(0)
    net = Supernet(get_space("darts"), a.C, a.layers, 10).to(device)
    mode = precision(device)
    mode.model(net)
    method = Darts()
    method.setup(net)
    opt = torch.optim.SGD(net.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    data = images(2 * a.batch * max(a.eval_batches, 2), device)
    train_idx, valid_idx = data.search_halves()
    gen = torch.Generator(device).manual_seed(0)
    net.train()

    def step():
        ti = train_idx[torch.randperm(train_idx.numel(), device=device, generator=gen)[:a.batch]]
        train_step(net, method, opt, data, gen, ti, valid_idx, a.batch, 5.0, Meter(), mode)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = {"search_step_s": timed(step, a.steps, device)}
    if search_only:
        return out
    ctx = {"data": data, "gen": gen, "valid_idx": valid_idx}
    one = Perturbation(subset=a.batch * a.eval_batches, batch_size=a.batch)
    out["pt_batch_s"] = timed(lambda: one.measure(net, ctx, [("normal", 0, 3)]), a.steps,
                              device) / a.eval_batches
    out["peak_mb"] = peak_mb(device)  # what the reference reports: search step + scoring
    K = net.space.num_ops
    many = Perturbation(subset=a.batch * a.eval_batches, batch_size=a.batch, masks_per_pass=K)
    masks = [[("normal", 0, k)] for k in range(K)]
    out["pt_grouped_s"] = timed(lambda: many.measure_all(net, ctx, masks), a.steps,
                                device) / (K * a.eval_batches)
    return out


def ours_retrain(a, device):
    """One retrain step (forward with aux head, backward, clip, SGD) of the PT genotype."""
    from runner.precision import precision
    from runner.retrain import train_epoch
    from spaces.genotype import Genotype
    from spaces.network import EvalNetwork

    torch.manual_seed(0)
    net = EvalNetwork(Genotype.parse(PT_GENOTYPE), a.retrain_C, a.retrain_layers, 10).to(device)
    mode = precision(device)
    mode.model(net)
    opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    data, gen = images(a.retrain_batch, device), torch.Generator(device).manual_seed(0)
    return timed(lambda: train_epoch(net, opt, data, gen, a.retrain_batch, 5.0, 0.4, 16, mode),
                 a.steps, device)


def peak_mb(device):
    """Peak memory so far: the CUDA allocator's peak, else this process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def logging_s(n=20):
    """Median seconds of one epoch's metrics (one log_batch) into a fresh sqlite store."""
    from tracking.mlflow_tracker import Tracker

    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(f"sqlite:///{tmp}/bench.db")
        with tracker.run("bench"):
            keys = ["train_acc", "train_loss", "valid_acc", "valid_loss", "lr", "seconds",
                    "images_per_s", "alpha_entropy", "skip_count", "param_size_M"]
            step = iter(range(10 ** 6))
            return timed(lambda: tracker.metrics({f"search/{k}": 1.0 for k in keys}, next(step)),
                         n, torch.device("cpu"), time.perf_counter)  # wall: sqlite waits on I/O


RETRAIN_REF = """
import json, statistics, sys, time, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
if not torch.cuda.is_available():
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
from sota.cnn.model import Network
from sota.cnn.genotypes import darts_pt_s5_0
C, L, B, n, threads = map(int, sys.argv[2:7])
torch.set_num_threads(threads)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
net = Network(C, 10, L, True, darts_pt_s5_0).to(dev)
net.drop_path_prob = 0.0
opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
x, y = torch.randn(B, 3, 32, 32, device=dev), torch.randint(0, 10, (B,), device=dev)
def step():
    net.train()
    logits, aux = net(x)
    loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
ts = []
for i in range(n + 1):
    if dev.type == "cuda": torch.cuda.synchronize()
    t = time.perf_counter(); step()
    if dev.type == "cuda": torch.cuda.synchronize()
    ts.append(time.perf_counter() - t)
print(json.dumps({"retrain_step_s": statistics.median(ts[1:])}))
"""


def reference(a, device):
    """The reference's numbers with the same settings, or None without ../shared/reference."""
    script = REF / "bench_reference.py"
    if a.no_reference or not script.exists():
        return None
    env = dict(os.environ)
    if device.type != "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the reference picks CUDA whenever it sees one
    def run(*argv):
        cmd = [sys.executable, "-c", WITH_CLOCK.format(CLOCK[a.clock]), *map(str, argv)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    ref = run(script, "--space", "s5", "--C", a.C, "--layers", a.layers, "--batch", a.batch,
              "--steps", a.steps, "--eval-batches", a.eval_batches, "--threads", a.threads)
    ref["rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(RETRAIN_REF)
        f.flush()
        ref.update(run(f.name, REF / "darts-pt", a.retrain_C, a.retrain_layers, a.retrain_batch,
                       a.steps, a.threads))
    return ref


def hours(step_s, pass_batch_s, batch):
    """DARTS-space search (50 ep) + PT (81 tune epochs, 240 scoring passes) on CIFAR-10, hours.

    Per epoch: ceil(25k/batch) steps plus one eval-mode pass over the alpha half, taken as
    ceil(25k/batch) scoring batches (spec §3.1, §4.3, §4.5).
    """
    nb = math.ceil(SEARCH_IMAGES / batch)
    epochs = 50 + 81
    return (epochs * nb * (step_s + pass_batch_s) + 240 * nb * pass_batch_s) / 3600


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "CPU"
    return f"{model}, {os.cpu_count()} cores"


def table(a, device, ours, alt, ref):
    gpu = device.type == "cuda"
    target = "≤ 0.33" if gpu else "≤ 0.67"
    rows = []

    def row(name, mine, theirs, goal=target, fmt="{:.3f}"):
        ratio = f"{mine / theirs:.2f}" if theirs else "n/a"
        rows.append(f"| {name} | {fmt.format(mine)} | "
                    f"{fmt.format(theirs) if theirs else 'n/a'} | {ratio} | {goal} |")

    r = ref or {}
    alt_name = "float32 NCHW" if gpu else "`precision.channels_last = 'on'`"
    row("search step, s", ours["search_step_s"], r.get("search_step_s"))
    row(f"search step with {alt_name}, s", alt["search_step_s"], r.get("search_step_s"), "")
    ref_batch = r["pt_eval_s"] / a.eval_batches if ref else None
    row("PT scoring, s per batch (one mask per pass)", ours["pt_batch_s"], ref_batch)
    row(f"PT scoring, s per mask·batch (`masks_per_pass = {7}`)", ours["pt_grouped_s"],
        ref_batch)
    row(f"retrain step C{a.retrain_C}/L{a.retrain_layers}/batch {a.retrain_batch}, s",
        ours["retrain_step_s"], r.get("retrain_step_s"), "")
    mem = "peak GPU memory (search step + scoring)" if gpu else "max RSS of the process"
    row(f"{mem}, MB", ours["peak_mb"], r.get("peak_mem_mb" if gpu else "rss_mb"),
        "≤ 1.0" if gpu else "", "{:.0f}")
    epoch_s = math.ceil(SEARCH_IMAGES / a.batch) * ours["search_step_s"]
    rows.append(f"| MLflow logging / search epoch time | {100 * ours['log_s'] / epoch_s:.2g} % "
                f"| | | < 1 % |")
    if gpu:
        best = min(ours["pt_batch_s"], ours["pt_grouped_s"])
        row("search 50 ep + PT (81 tune ep, 240 passes), CIFAR-10, hours (extrapolated)",
            hours(ours["search_step_s"], best, a.batch),
            hours(r["search_step_s"], ref_batch, a.batch) if ref else None, "≤ 1.5 h", "{:.2f}")
    head = (f"{datetime.date.today()} · {device_name(device)} · torch {torch.__version__} · "
            f"{a.threads} threads · DARTS space, C{a.C}/L{a.layers}, batch {a.batch}, "
            f"median of {a.steps} after {TIMING['warmup']} warm-up, {a.clock} clock, "
            f"scoring {a.eval_batches} batches"
            + ("" if ref else " · reference not found: our numbers only"))
    return "\n".join([head, "", "| measure | ours | reference | ours / reference | target |",
                      "| --- | --- | --- | --- | --- |"] + rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny settings: checks that it runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--eval-batches", type=int, default=2)
    p.add_argument("--retrain-C", type=int, default=36)
    p.add_argument("--retrain-layers", type=int, default=20)
    p.add_argument("--retrain-batch", type=int, default=96)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads on both sides (default: torch's, 1 with --tiny)")
    p.add_argument("--clock", choices=list(CLOCK), default=None,
                   help="wall, or cpu: process CPU time, steady on a shared machine (needs "
                        "--device cpu --threads 1; the default there)")
    p.add_argument("--no-reference", action="store_true")
    a = p.parse_args(argv)
    if a.tiny:
        a.C, a.layers, a.batch, a.steps, a.eval_batches = 4, 3, 8, 1, 1
        a.retrain_C, a.retrain_layers, a.retrain_batch = 4, 3, 8
        TIMING["warmup"] = 0
    if a.threads is None:
        a.threads = 1 if a.tiny else torch.get_num_threads()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if a.device == "auto" else a.device)
    cpu1 = device.type == "cpu" and a.threads == 1
    a.clock = a.clock or ("cpu" if cpu1 else "wall")
    if a.clock == "cpu" and not cpu1:
        p.error("--clock cpu needs a CPU device and --threads 1")
    TIMING["clock"] = time.process_time if a.clock == "cpu" else time.perf_counter
    import gin

    torch.set_num_threads(a.threads)
    ref = reference(a, device)  # first: a child forked from a big parent reports its RSS
    ours = ours_supernet(a, device)
    ours["retrain_step_s"] = ours_retrain(a, device)
    other = ["precision.autocast = 'off'", "precision.channels_last = 'off'"] \
        if device.type == "cuda" else ["precision.channels_last = 'on'"]
    gin.parse_config(other)
    alt = ours_supernet(a, device, search_only=True)
    gin.clear_config()
    ours["log_s"] = logging_s()
    print(table(a, device, ours, alt, ref))


if __name__ == "__main__":
    main()
