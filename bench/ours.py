"""Our side of bench/perf.py: search step, PT scoring pass and retrain step, timed; the
NAS-Bench-201 supernet's search step and PT scoring of one edge.

Each runs this project's own code path (runner.training.search.train_step,
Perturbation.measure and measure_all, runner.training.retrain.train_epoch) on synthetic
CIFAR-sized uint8 images on the device, so our steps include the device-side augmentation of
their batches. Medians of n calls after the warm-up calls; `TIMING` holds the warm-up count and the clock (perf.py sets them).
"""
import resource
import statistics
import tempfile
import time

import torch

PT_GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
               "('dil_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 2), ('skip_connect', 0), "
               "('max_pool_3x3', 4)], reduce=[('sep_conv_3x3', 0), ('avg_pool_3x3', 1), "
               "('dil_conv_5x5', 1), ('dil_conv_3x3', 2), ('avg_pool_3x3', 0), ('max_pool_3x3', 2), "
               "('sep_conv_3x3', 2), ('skip_connect', 4)])")  # darts_pt_s5_0, paper Table 2

TIMING = {"warmup": 1, "clock": time.perf_counter}  # perf.main() sets them


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
    from runner.data.datasets import STATS, Dataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    mean, std, _ = STATS["cifar10"]
    view = (1, 3, 1, 1)
    return Dataset("bench", x, y, x[:0], y[:0], torch.tensor(mean, device=device).view(view),
                   torch.tensor(std, device=device).view(view), True, 4, 10)


def searching(net, a, device):
    """`net` set up as the search loop has it (precision, first-order DARTS, SGD on the
    weights, synthetic data on the device); returns (loop, one search step)."""
    from runner.methods.darts import Darts
    from runner.training.loops import Loop, Meter
    from runner.training.precision import precision
    from runner.training.search import train_step

    mode = precision(device)
    mode.model(net)
    method = Darts()
    method.setup(net)
    opt = torch.optim.SGD(net.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    data = images(2 * a.batch * max(a.eval_batches, 2), device)
    train_idx, valid_idx = data.search_halves()
    gen = torch.Generator(device).manual_seed(0)
    loop = Loop(net, data, gen, valid_idx, method, opt, a.batch, 5.0, mode)
    net.train()

    def step():
        ti = train_idx[torch.randperm(train_idx.numel(), device=device, generator=gen)[:a.batch]]
        train_step(loop, ti, Meter())

    return loop, step


def supernet(a, device, search_only=False):
    """Search step and PT scoring times of our supernet with the current gin bindings."""
    from runner.selection.criteria import Perturbation
    from spaces.cell import get_space
    from spaces.darts.supernet import DartsSupernet

    torch.manual_seed(0)
    net = DartsSupernet(get_space("darts"), C=a.C, layers=a.layers, num_classes=10).to(device)
    loop, step = searching(net, a, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = {"search_step_s": timed(step, a.steps, device)}
    if search_only:
        return out
    one = Perturbation(subset=a.batch * a.eval_batches, batch_size=a.batch)
    out["pt_batch_s"] = timed(lambda: one.measure(net, loop, [("normal", 0, 3)]), a.steps,
                              device) / a.eval_batches
    out["peak_mb"] = peak_mb(device)  # what the reference reports: search step + scoring
    K = net.space.num_ops
    many = Perturbation(subset=a.batch * a.eval_batches, batch_size=a.batch, masks_per_pass=K)
    masks = [[("normal", 0, k)] for k in range(K)]
    out["pt_grouped_s"] = timed(lambda: many.measure_all(net, loop, masks), a.steps,
                                device) / (K * a.eval_batches)
    return out


def nb201(a, device):
    """The NAS-Bench-201 supernet (C a.nb201_C, N a.nb201_layers): one search step as
    `supernet`'s, and the PT operation test of one undecided edge (edge 0, '1<-0'): its 5 ops
    masked in turn (`none` included), each scored on a.eval_batches batches, through
    Perturbation.op_scores, one mask per pass and `masks_per_pass = 5`."""
    from runner.selection.criteria import Perturbation
    from spaces.cell import get_space

    torch.manual_seed(0)
    space = get_space("nb201")
    net = space.family.supernet(space, 1e-3, C=a.nb201_C, layers=a.nb201_layers, num_classes=10,
                                in_channels=3).to(device)
    loop, step = searching(net, a, device)
    out = {"nb201_search_step_s": timed(step, a.steps, device)}
    K, subset = net.space.num_ops, a.batch * a.eval_batches
    for key, per_pass in (("nb201_pt_edge_s", 1), ("nb201_pt_edge_grouped_s", K)):
        pt = Perturbation(subset=subset, batch_size=a.batch, masks_per_pass=per_pass)
        out[key] = timed(lambda: pt.op_scores(net, "cell", 0, loop), a.steps, device)
    return out


def retrain(a, device):
    """One retrain step (forward with aux head, backward, clip, SGD) of the PT genotype."""
    from runner.training.precision import precision
    from runner.training.retrain import tensor_batches, train_epoch
    from spaces.darts.genotype import Genotype
    from spaces.darts.network import EvalNetwork

    torch.manual_seed(0)
    net = EvalNetwork(Genotype.parse(PT_GENOTYPE), a.retrain_C, a.retrain_layers, 10).to(device)
    mode = precision(device)
    mode.model(net)
    opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    data, gen = images(a.retrain_batch, device), torch.Generator(device).manual_seed(0)
    return timed(lambda: train_epoch(net, opt, tensor_batches(data, gen, a.retrain_batch, 16, mode),
                                     5.0, 0.4, mode),
                 a.steps, device)


def peak_mb(device):
    """Peak memory so far: the CUDA allocator's peak, else this process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def logging_s(n=20):
    """Median seconds of one epoch's metrics (one log_batch) into a fresh sqlite store; None
    where mlflow is not installed (a bare GPU image)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    from tracking.mlflow_tracker import Tracker

    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(f"sqlite:///{tmp}/bench.db")
        with tracker.run("bench"):
            keys = ["train_acc", "train_loss", "valid_acc", "valid_loss", "lr", "seconds",
                    "images_per_s", "alpha_entropy", "skip_count", "param_size_M"]
            step = iter(range(10 ** 6))
            return timed(lambda: tracker.metrics({f"search/{k}": 1.0 for k in keys}, next(step)),
                         n, torch.device("cpu"), time.perf_counter)  # wall: sqlite waits on I/O
