"""The fast paths compute what the straightforward ones compute (CPU, float32).

NHWC pools and the one-sided backwards (alpha step into alpha only, weight step into weights
only) are bit-identical; skipped ops equal ops computed with weight 0; device augmentation
equals torchvision's on the same parameters; batched PT scoring equals one pass per mask to
float32 rounding; with both precision switches off the CPU computes float32 NCHW untouched,
and the default channels_last stays within float32 rounding of it.
"""
import copy
import os
import subprocess
import sys

import gin
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from runner.data import augment
from runner.selection import pt_batched
from runner.selection.criteria import Perturbation
from runner.data.datasets import Dataset, HostImages, dataset
from runner.training.loops import Loop, Meter, evaluate
from runner.methods.darts import Darts
from runner.training.precision import precision
from runner.training.search import train_step
from spaces import ops

from fixtures import tiny_images, tiny_supernet
from helpers import ROOT


def same_state(a, b, exact=True, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if exact:
            assert torch.equal(sa[k], sb[k]), k
        else:
            torch.testing.assert_close(sa[k].float(), sb[k].float(), rtol=1e-4, atol=atol, msg=k)


# ------------------------------------------------------------------------ supernet fast paths

@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("ties", [True, False])
def test_nhwc_cpu_pools_are_bit_identical_values_and_gradients(stride, ties):
    g = torch.Generator().manual_seed(stride + 2 * ties)
    x = (torch.randint(-2, 3, (4, 6, 12, 12), generator=g).float() if ties
         else torch.randn(4, 6, 12, 12, generator=g))
    pairs = [(ops.MaxPool2d(3, stride, 1), nn.MaxPool2d(3, stride, 1)),
             (ops.AvgPool2d(3, stride, 1, count_include_pad=False),
              nn.AvgPool2d(3, stride, 1, count_include_pad=False))]
    for fast, plain in pairs:
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fast(xa), plain(xb)
        assert ya.is_contiguous() and torch.equal(ya, yb)
        go = torch.randn(ya.shape, generator=g)
        ga = torch.autograd.grad(ya, xa, go)[0]
        assert torch.equal(ga, torch.autograd.grad(yb, xb, go)[0])
        assert ga.is_contiguous()  # handed back NCHW: no mixed-layout accumulation upstream


class FullBackwardDarts(Darts):
    """The reference's step: the alpha step backpropagates into every weight (grads zeroed
    afterwards) and the weight step into alpha too (zeroed by the next alpha step)."""

    def arch_step(self, net, w_opt, train, valid):
        self.arch_opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(valid[0]), valid[1]).backward()
        self.arch_opt.step()

    def mixing(self, net, train):
        return net.mixing_weights()


def test_one_sided_backwards_are_bit_identical_to_the_full_backwards():
    nets, data = [tiny_supernet("darts") for _ in range(2)], tiny_images(16)
    x = data.prepare(data.train_x, False)
    for net, method in zip(nets, (Darts(), FullBackwardDarts())):
        method.setup(net)
        opt = torch.optim.SGD(net.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
        net.train()
        for s in range(2):
            method.step(net, opt, (x[:8], data.train_y[:8]), (x[8:], data.train_y[8:]), 5.0)
    same_state(*nets)


def decided_net(family="darts"):
    if family == "nb201":  # one cell type; `none` decides an edge away, nothing is pruned
        from spaces.cell import get_space

        torch.manual_seed(0)
        space = get_space("nb201")
        net = space.family.supernet(space, 1e-3, C=4, layers=1, num_classes=10).eval()
        net.fix_edge("cell", 0, 3)
        net.fix_edge("cell", 4, 0)
        return net, ("cell", 5, 2)
    net = tiny_supernet("darts").eval()
    net.fix_edge("normal", 0, 3)
    net.fix_edge("reduce", 5, 2)
    net.prune_edge("normal", 4)
    net.prune_edge("reduce", 11)
    return net, ("normal", 7, 2)


@pytest.mark.parametrize("family", ["darts", "nb201"])
@pytest.mark.parametrize("train", [False, True])
def test_skipping_decided_and_masked_ops_equals_computing_them_with_weight_0(train, family):
    (net, mask), x = decided_net(family), torch.randn(4, 3, 16, 16)
    net.train(train)
    spec = net.space.cell
    everything = [[list(range(net.space.num_ops))] * spec.num_edges for _ in spec.types]
    w = net.mixing_weights().detach().clone()
    w[spec.type_index(mask[0]), mask[1], mask[2]] = 0.0  # a PT mask on an open edge
    with torch.no_grad():
        skipped = copy.deepcopy(net)(x, w, net.active_ops([mask]))
        computed = copy.deepcopy(net)(x, w, everything)
        assert torch.equal(skipped, computed)
        assert torch.equal(copy.deepcopy(net)(x), copy.deepcopy(net)(x, None, everything))


@pytest.mark.parametrize("family", ["darts", "nb201"])
def test_supernet_forward_reads_no_tensor_value_on_the_host(family):
    """On the meta device any host read (`if w != 0`, .item(), .tolist()) raises: the forward,
    masked or not, decides what to compute from the host-side decision state alone."""
    net, mask = decided_net(family)
    net.decisions()  # the host copy, read once after the last decision
    net = net.to("meta").train()
    x = torch.empty(2, 3, 16, 16, device="meta")
    w = net.mixing_weights().detach().clone()
    w[net.space.cell.type_index(mask[0]), mask[1], mask[2]] = 0.0
    assert net(x).shape == (2, 10)
    assert net(x, w, net.active_ops([mask])).device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):
        bool(w[0, 0, 0] != 0)  # what the reference's mixed op does per op


# ------------------------------------------------------------------------ augmentation

def test_device_augmentation_equals_torchvision_on_the_same_parameters():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    p = augment.draw(imgs.shape, "cpu", pad=4, flip=True, cutout_length=16, gen=g)
    out = augment.apply(imgs, mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1), p, 4, 16)
    (i, j), flip, (cy, cx) = p["crop"], p["flip"], p["cutout"]
    for b in range(imgs.size(0)):
        t = TF.crop(TF.pad(imgs[b].float() / 255, [4]), int(i[b]), int(j[b]), 32, 32)
        t = TF.normalize(TF.hflip(t) if flip[b] else t, mean.tolist(), std.tolist())
        y0, x0 = int(cy[b]), int(cx[b])
        t[:, max(y0 - 8, 0):max(y0 + 8, 0), max(x0 - 8, 0):max(x0 + 8, 0)] = 0.0
        torch.testing.assert_close(out[b], t, rtol=0, atol=1e-6)
    assert flip.any() and not flip.all()


def test_prepare_is_draw_then_apply_with_the_same_generator_stream():
    imgs = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    m = torch.full((1, 3, 1, 1), 0.5)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    a = augment.prepare(imgs, m, m, 2, True, 8, g1)
    b = augment.apply(imgs, m, m, augment.draw(imgs.shape, "cpu", 2, True, 8, g2), 2, 8)
    assert torch.equal(a, b) and torch.equal(g1.get_state(), g2.get_state())


# ------------------------------------------------------------------------ batched PT scoring

def pt_ctx(net, data, seed=5):
    return Loop(net, data, torch.Generator().manual_seed(seed), data.search_halves()[1])


def scored(net, data, masks_per_pass, topology, channels_last="off"):
    net = copy.deepcopy(net).train()
    ctx = pt_ctx(net, data)
    if channels_last == "on":  # the loops' conversion; measure() converts the inputs
        gin.bind_parameter("precision.channels_last", "on")
        net = net.to(memory_format=torch.channels_last)
    pt = Perturbation(batch_size=8, subset=16, masks_per_pass=masks_per_pass)
    if topology:
        kept, rounds = pt.keep_edges(net, "normal", [9, 10, 11, 12, 13], ctx)
        return kept, [r["scores"] for r in rounds], net, ctx.gen
    scores = pt.op_scores(net, "normal", 6, ctx)
    return pt.choose_op(net, "normal", 6, scores), scores, net, ctx.gen


def same_scores(a, b):
    if isinstance(a, dict) and "acc" in a:
        assert a["acc"] == b["acc"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same_scores(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            same_scores(u, v)
    else:
        assert a == b


@pytest.mark.parametrize("space,masks_per_pass,topology,channels_last",
                         [("darts", 7, False, "off"), ("darts", 3, False, "off"),
                          ("darts", 4, True, "off"), ("s3", 3, False, "off"),
                          ("darts", 7, False, "on")])
def test_batched_scoring_equals_one_pass_per_mask(space, masks_per_pass, topology, channels_last):
    net, data = tiny_supernet(space), tiny_images(48)
    net.fix_edge("normal", 1, 0)
    net.prune_edge("reduce", 3)
    one = scored(net, data, 1, topology, channels_last)
    many = scored(net, data, masks_per_pass, topology, channels_last)
    assert one[0] == many[0]  # the same decision
    same_scores(one[1], many[1])  # the same accuracies; losses to float32 rounding
    same_state(one[2], many[2], exact=False)  # BN running stats, batch counters
    assert torch.equal(one[3].get_state(), many[3].get_state())  # the same data draws


def test_noise_spaces_score_one_pass_per_mask(monkeypatch):
    def refuse(*args):
        raise AssertionError("grouped path used for a space with `noise`")

    monkeypatch.setattr(pt_batched, "measure_grouped", refuse)
    scores = Perturbation(batch_size=8, subset=8, masks_per_pass=2).op_scores(
        tiny_supernet("s4"), "normal", 0, pt_ctx(None, tiny_images(32)))
    assert len(scores) == 2 and all(s is not None for s in scores)


def test_masks_per_pass_must_be_positive():
    with pytest.raises(ValueError, match="masks_per_pass"):
        Perturbation(masks_per_pass=0)


# ------------------------------------------------------------------------ precision switches

def test_auto_precision_is_float32_on_cpu_bf16_on_cuda_and_channels_last_on_both():
    cpu, cuda = precision("cpu"), precision("cuda")
    assert (cpu.dtype, cpu.channels_last) == (None, True)
    assert (cuda.dtype, cuda.channels_last) == ("bfloat16", True)
    assert cpu.tags() == {"autocast": "off", "channels_last": True}
    x = torch.randn(2, 3, 4, 4)
    assert cpu.input(x).is_contiguous(memory_format=torch.channels_last)
    assert precision("cpu", channels_last="off").input(x) is x
    features = torch.randn(2, 3)  # not an image batch: as it is
    assert cpu.input(features) is features
    for bad in ({"autocast": "fp8"}, {"channels_last": True}):
        with pytest.raises(ValueError, match="precision."):
            precision("cpu", **bad)


def search_steps(mode, steps=2):
    """Two search steps through train_step (with `mode`) or the plain method step (None)."""
    net, data = tiny_supernet("darts"), tiny_images(32)
    method, gen = Darts(), torch.Generator().manual_seed(0)
    method.setup(net)
    opt = torch.optim.SGD(net.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    train_idx, valid_idx = data.search_halves()
    net.train()
    if mode is not None:
        mode.model(net)
    for s in range(steps):
        ti = train_idx[s * 8:(s + 1) * 8]
        if mode is not None:
            train_step(Loop(net, data, gen, valid_idx, method, opt, 8, 5.0, mode), ti, Meter())
        else:  # the loop as it was before the precision switches
            vi = valid_idx[torch.randperm(valid_idx.numel(), generator=gen)[:8]]
            train = data.prepare(data.train_x[ti], True, gen=gen), data.train_y[ti]
            valid = data.prepare(data.train_x[vi], True, gen=gen), data.train_y[vi]
            method.step(net, opt, train, valid, 5.0)
    return net


def test_nchw_precision_leaves_the_float32_path_bit_identical():
    same_state(search_steps(None), search_steps(precision("cpu", channels_last="off")))


def test_channels_last_and_bf16_autocast_run_on_cpu_and_stay_close():
    plain = search_steps(None)
    same_state(plain, search_steps(precision("cpu", channels_last="on")), exact=False, atol=1e-5)
    bf16 = search_steps(precision("cpu", autocast="bfloat16"))
    assert all(torch.isfinite(v.float()).all() for v in bf16.state_dict().values())
    torch.testing.assert_close(bf16.alphas, plain.alphas, rtol=0, atol=1e-3)


# ------------------------------------------------------------------------ data placement

def on_host(data):
    return Dataset(data.name, HostImages(data.train_x, "cpu"), data.train_y,
                   HostImages(data.test_x, "cpu"), data.test_y, data.mean, data.std, data.flip,
                   data.pad, data.num_classes)


def test_host_placement_gives_the_same_batches_and_numbers():
    data = tiny_images(32)
    host = on_host(data)
    assert host.train_x.shape == data.train_x.shape and host.in_channels == 3
    idx = torch.tensor([5, 1, 30])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(data.prepare(data.train_x[idx], True, gen=g1),
                       host.prepare(host.train_x[idx], True, gen=g2))
    net = tiny_supernet("s2")
    assert evaluate(net, data, data.train_x[idx], data.train_y[idx], batch_size=2) == \
        evaluate(net, host, host.train_x[idx], host.train_y[idx], batch_size=2)


def test_dataset_placement_setting():
    assert isinstance(dataset("digits", placement="host").train_x, HostImages)
    assert isinstance(dataset("digits").train_x, torch.Tensor)  # 'auto' on a CPU: device
    with pytest.raises(ValueError, match="dataset.placement"):
        dataset("digits", placement="gpu")


# ------------------------------------------------------------------------ benchmark command

def bench_tiny(*args, env=None):
    """`bench/perf.py --tiny` in a subprocess; its stdout, after checking it exited 0."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "perf.py"), "--tiny", *args],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_bench_perf_runs_in_tiny_mode():
    stdout = bench_tiny()
    for row in ("search step, s", "PT scoring, s per batch", "masks_per_pass", "retrain step",
                "MLflow logging", "| NAS-Bench-201 C4/N1 search step, s |",
                "| NAS-Bench-201 C4/N1 PT scoring of one edge (5 masks × 1 batches), one mask",
                "| NAS-Bench-201 C4/N1 PT scoring of one edge (5 masks × 1 batches), `masks_per"):
        assert row in stdout


def test_bench_perf_runs_without_mlflow_and_without_the_reference(tmp_path):
    """A bare GPU image has torch and gin only: the logging row says so, the rest runs."""
    blocker = tmp_path / "mlflow.py"  # shadows the installed package: `import mlflow` fails
    blocker.write_text("raise ImportError('mlflow is not installed here')\n")
    stdout = bench_tiny("--reference", str(tmp_path / "none"),
                        env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert "reference not found: our numbers only" in stdout
    assert "| MLflow logging / search epoch time | n/a (no mlflow) |" in stdout


@pytest.mark.parametrize("grad", [True, False])
def test_nb201_computes_only_the_open_and_chosen_ops(grad):
    """The reference's NB201 edges compute all 5 ops whatever their weight; ours run the chosen
    op of a decided edge (`none` included, a multiply by 0) and every op of an open one; with
    no gradient (scoring) an open edge's `none` is left out too, since it adds zeros."""
    net, _ = decided_net("nb201")
    calls = {}
    for m in net.mixed_ops():
        for k, op in enumerate(m.ops):
            op.register_forward_hook(lambda mod, i, o, key=(m.where[1], k):
                                     calls.__setitem__(key, calls.get(key, 0) + 1))
    with torch.set_grad_enabled(grad):
        net(torch.randn(2, 3, 16, 16))
    cells = 3  # one search cell per stage
    assert {k for k in calls if k[0] == 0} == {(0, 3)} and calls[(0, 3)] == cells
    assert {k for k in calls if k[0] == 4} == {(4, 0)}
    first = 0 if grad else 1  # `none` is op 0
    for e in (1, 2, 3, 5):
        assert {k for k in calls if k[0] == e} == {(e, j) for j in range(first, 5)}


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_the_no_grad_mixing_equals_the_autograd_one(space):
    """Scoring's in-place multiply-add (and `none` left out) gives the training path's output."""
    net, _ = decided_net(space)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        fast = net(x)
    slow = net(x).detach()
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6)
