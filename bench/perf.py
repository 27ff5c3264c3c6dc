"""Speed and memory next to the reference: search step, PT scoring pass, retrain step; and
the NAS-Bench-201 supernet's search step and PT scoring of one edge.

Runs the reference first, each part in a subprocess with the same settings and torch threads:
../shared/reference/bench_reference.py (search step, one BN-train forward pass),
bench/reference_retrain.py (the reference's retrain network) and bench/reference_nb201.py
(the reference's NAS-Bench-201 supernet, nasbench201/search_model_darts_proj.py); then ours
(bench/ours.py) in this process. Without ../shared/reference (or --reference DIR) only our
numbers are printed. Prints one markdown table with the ratios, the device and the settings.

    python bench/perf.py [--tiny] [--device auto|cpu|cuda] [--C 16 --layers 8 --batch 64 --steps 3]
                         [--nb201-C 16 --nb201-layers 5]

The NAS-Bench-201 rows use the same --batch, --steps and --eval-batches: the search step as
the DARTS space's (first-order alpha step + weight step), and the PT operation test of one
undecided edge (its 5 ops masked in turn, each scored on --eval-batches batches).

Needs torch and gin-config only: without mlflow the logging row says so.

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
import subprocess
import sys
import time
from pathlib import Path

import torch

import ours

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # the project's packages, for ours.py
REF = BENCH.parents[1] / "shared" / "reference"
SEARCH_IMAGES = 25_000  # CIFAR-10 train half per search split
CLOCK = {"wall": "time.perf_counter", "cpu": "time.process_time"}
# runs a reference script with its clock swapped: time.perf_counter -> the --clock function
WITH_CLOCK = "import runpy, sys, time; time.perf_counter = {}; sys.argv = sys.argv[1:]; " \
             "runpy.run_path(sys.argv[0], run_name='__main__')"


def reference(a, device):
    """The reference's numbers with the same settings, or None without its folder
    (--reference, default ../shared/reference)."""
    script = a.reference / "bench_reference.py"
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
    ref.update(run(BENCH / "reference_retrain.py", a.reference / "darts-pt", a.retrain_C,
                   a.retrain_layers, a.retrain_batch, a.steps, a.threads))
    ref.update(run(BENCH / "reference_nb201.py", a.reference / "darts-pt", a.nb201_C,
                   a.nb201_layers, a.batch, a.steps, a.eval_batches, a.threads))
    return ref


def hours(step_s, pass_batch_s, batch):
    """DARTS-space search (50 ep) + PT (81 tune epochs, 240 scoring passes) on CIFAR-10, hours.

    Per epoch: ceil(25k/batch) steps plus one eval-mode pass over the alpha half, taken as
    ceil(25k/batch) scoring batches.
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


def table(a, device, mine, alt, ref):
    gpu = device.type == "cuda"
    target = "≤ 0.33" if gpu else "≤ 0.67"
    rows = []

    def row(name, ours_s, theirs, goal=target, fmt="{:.3f}"):
        ratio = f"{ours_s / theirs:.2f}" if theirs else "n/a"
        rows.append(f"| {name} | {fmt.format(ours_s)} | "
                    f"{fmt.format(theirs) if theirs else 'n/a'} | {ratio} | {goal} |")

    r = ref or {}
    alt_name = "float32 NCHW (the reference's layout and precision)"
    row("search step, s", mine["search_step_s"], r.get("search_step_s"))
    row(f"search step with {alt_name}, s", alt["search_step_s"], r.get("search_step_s"), "")
    ref_batch = r["pt_eval_s"] / a.eval_batches if ref else None
    row("PT scoring, s per batch (one mask per pass)", mine["pt_batch_s"], ref_batch)
    row(f"PT scoring, s per mask·batch (`masks_per_pass = {7}`)", mine["pt_grouped_s"],
        ref_batch)
    row(f"retrain step C{a.retrain_C}/L{a.retrain_layers}/batch {a.retrain_batch}, s",
        mine["retrain_step_s"], r.get("retrain_step_s"), "")
    nb = f"NAS-Bench-201 C{a.nb201_C}/N{a.nb201_layers}"
    row(f"{nb} search step, s", mine["nb201_search_step_s"], r.get("nb201_search_step_s"), "")
    edge = f"{nb} PT scoring of one edge (5 masks × {a.eval_batches} batches)"
    row(f"{edge}, one mask per pass, s", mine["nb201_pt_edge_s"], r.get("nb201_pt_edge_s"), "")
    row(f"{edge}, `masks_per_pass = 5`, s", mine["nb201_pt_edge_grouped_s"],
        r.get("nb201_pt_edge_s"), "")
    mem = "peak GPU memory (search step + scoring)" if gpu else "max RSS of the process"
    row(f"{mem}, MB", mine["peak_mb"], r.get("peak_mem_mb" if gpu else "rss_mb"),
        "≤ 1.0" if gpu else "", "{:.0f}")
    epoch_s = math.ceil(SEARCH_IMAGES / a.batch) * mine["search_step_s"]
    log = f"{100 * mine['log_s'] / epoch_s:.2g} %" if mine["log_s"] else "n/a (no mlflow)"
    rows.append(f"| MLflow logging / search epoch time | {log} | | | < 1 % |")
    if gpu:
        best = min(mine["pt_batch_s"], mine["pt_grouped_s"])
        row("search 50 ep + PT (81 tune ep, 240 passes), CIFAR-10, hours (extrapolated)",
            hours(mine["search_step_s"], best, a.batch),
            hours(r["search_step_s"], ref_batch, a.batch) if ref else None, "≤ 1.5 h", "{:.2f}")
    head = (f"{datetime.date.today()} · {device_name(device)} · torch {torch.__version__} · "
            f"{a.threads} threads · DARTS space, C{a.C}/L{a.layers}, "
            f"NAS-Bench-201 C{a.nb201_C}/N{a.nb201_layers}, batch {a.batch}, "
            f"median of {a.steps} after {ours.TIMING['warmup']} warm-up, {a.clock} clock, "
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
    p.add_argument("--nb201-C", type=int, default=16)
    p.add_argument("--nb201-layers", type=int, default=5, help="NAS-Bench-201 cells per stage")
    p.add_argument("--retrain-C", type=int, default=36)
    p.add_argument("--retrain-layers", type=int, default=20)
    p.add_argument("--retrain-batch", type=int, default=96)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads on both sides (default: torch's, 1 with --tiny)")
    p.add_argument("--clock", choices=list(CLOCK), default=None,
                   help="wall, or cpu: process CPU time, steady on a shared machine (needs "
                        "--device cpu --threads 1; the default there)")
    p.add_argument("--reference", type=Path, default=REF,
                   help="the reference's folder (default: ../shared/reference)")
    p.add_argument("--no-reference", action="store_true")
    a = p.parse_args(argv)
    if a.tiny:
        a.C, a.layers, a.batch, a.steps, a.eval_batches = 4, 3, 8, 1, 1
        a.retrain_C, a.retrain_layers, a.retrain_batch = 4, 3, 8
        a.nb201_C, a.nb201_layers = 4, 1
        ours.TIMING["warmup"] = 0
    if a.threads is None:
        a.threads = 1 if a.tiny else torch.get_num_threads()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if a.device == "auto" else a.device)
    cpu1 = device.type == "cpu" and a.threads == 1
    a.clock = a.clock or ("cpu" if cpu1 else "wall")
    if a.clock == "cpu" and not cpu1:
        p.error("--clock cpu needs a CPU device and --threads 1")
    ours.TIMING["clock"] = time.process_time if a.clock == "cpu" else time.perf_counter
    import gin

    torch.set_num_threads(a.threads)
    ref = reference(a, device)  # first: a child forked from a big parent reports its RSS
    mine = ours.supernet(a, device)
    mine["retrain_step_s"] = ours.retrain(a, device)
    mine.update(ours.nb201(a, device))
    gin.parse_config(["precision.autocast = 'off'", "precision.channels_last = 'off'"])
    alt = ours.supernet(a, device, search_only=True)
    gin.clear_config()
    mine["log_s"] = ours.logging_s()
    print(table(a, device, mine, alt, ref))


if __name__ == "__main__":
    main()
