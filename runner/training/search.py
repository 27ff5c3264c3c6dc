"""Supernet search loop (darts-pt sota/cnn/train_search.py).

Cosine SGD on weights, the method's alpha step, per-epoch logs.
"""
import os
import shutil
import time

import gin
import numpy as np
import torch

from runner.training import checkpoint, distributed, progress, rng
from runner.training.loops import (Loop, Meter, evaluate, sample_batch, shuffled_batches,
                                   train_batch)
from runner.training.precision import device_of, precision


def alpha_entropy(net):
    """Mean entropy of softmax(alpha) over edges: falls as the supernet commits to ops."""
    p = torch.softmax(net.alphas.detach(), dim=-1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())


def skip_conv_gap(net):
    """mean over edges of softmax(alpha)[skip_connect] - max over its conv ops (paper Figure 3,
    where S2 has one conv per edge), over the edges that have both; None when none has."""
    p = torch.softmax(net.alphas.detach(), dim=-1).cpu()
    gaps = []
    for t in range(len(net.space.cell.types)):
        for e, names in enumerate(net.space.ops(t)):
            convs = [k for k, n in enumerate(names) if "conv" in n]
            if "skip_connect" in names and convs:
                gaps.append(float(p[t, e, names.index("skip_connect")] - p[t, e, convs].max()))
    return sum(gaps) / len(gaps) if gaps else None


def train_step(loop, ti, meter):
    """One method step on train indices `ti` and a fresh random valid batch of
    `loop.batch_size` images (darts-pt sota/cnn/train_search.py, train())."""
    mode = loop.precision(loop.net)
    data, gen = loop.data, loop.gen
    vi = sample_batch(loop.valid_idx, loop.batch_size, gen)
    train, valid = train_batch(data, ti, mode, gen), train_batch(data, vi, mode, gen)
    with mode.autocast():
        logits, loss = loop.method.step(loop.net, loop.opt, train, valid, loop.grad_clip)
    meter.update(logits, train[1], distributed.local_mean(loss, ti.numel(), train[1].numel()))


def epoch_metrics(net, data, valid_idx, meter, lr, seconds, images, eval_valid, mode):
    geno = net.genotype()
    out = meter.result("train")
    if eval_valid:  # eval-mode accuracy on the alpha half; the test split is never touched
        v = evaluate(net, data, data.train_x[valid_idx], data.train_y[valid_idx], mode=mode)
        out.update(valid_acc=v["eval_acc"], valid_loss=v["eval_loss"])
    out.update(lr=lr, seconds=seconds, images_per_s=images / max(seconds, 1e-9),
               alpha_entropy=alpha_entropy(net), skip_count=geno.count("skip_connect"),
               param_size_M=net.space.family.param_size(geno, data.num_classes) / 1e6)
    gap = skip_conv_gap(net)
    if gap is not None:
        out["alpha_skip_minus_conv"] = gap
    return out, geno


def resume_from(state, net, w_opt, sched, method, gen, tracker):
    """Load a search checkpoint; re-log its epoch's metrics if the kill came before they were."""
    with checkpoint.applying(state, "search checkpoint", net, method):
        net.load_state_dict(state["net"])
        w_opt.load_state_dict(state["w_opt"])
        sched.load_state_dict(state["sched"])
        method.load_state_dict(state["method"])
        rng.restore(state["rng"], gen)
    tracker.ensure_logged(state["metrics"], step=state["epoch"] - 1)
    return state["epoch"], list(state["alphas"].numpy())


@gin.configurable("search")
class Search:
    """The supernet search settings, bound as `search.*`; calling it trains the supernet.

    epochs = 0 trains nothing: selection then starts from the initial supernet. keep_every
    k > 0 also keeps a copy of the checkpoint after epochs k, 2k, ... (`search_epoch<k>.pt`
    beside it), for selection from mid-search supernets.
    """

    def __init__(self, epochs=50, batch_size=64, lr=0.025, lr_min=0.001, momentum=0.9,
                 weight_decay=3e-4, grad_clip=5.0, sample_with_replacement=True, eval_valid=True,
                 keep_every=0):
        self.epochs, self.batch_size, self.lr, self.lr_min = epochs, batch_size, lr, lr_min
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.sample_with_replacement, self.eval_valid = sample_with_replacement, eval_valid
        self.keep_every = keep_every

    def snapshot_epochs(self):
        """The epochs after which a copy of the supernet is kept (`keep_every`)."""
        return list(range(self.keep_every, self.epochs + 1, self.keep_every)) \
            if self.keep_every else []

    def __call__(self, net, method, data, tracker, gen, ckpt_path, resume=None, mode=None):
        """Train the supernet for `epochs`; returns the per-epoch alphas [epochs, types, edges,
        K]. A checkpoint is written at every epoch boundary, before that epoch's metrics are
        logged; `resume` is such a checkpoint to continue from. mode: the run's precision
        switches (None: resolved for the net's device)."""
        return _search(net, method, data, tracker, gen, ckpt_path, resume, mode, self)


def search(net, method, data, tracker, gen, ckpt_path, resume=None, mode=None, **settings):
    """`Search(**settings)` run once (settings left out come from the `search.*` bindings)."""
    return Search(**settings)(net, method, data, tracker, gen, ckpt_path, resume, mode)


def _search(net, method, data, tracker, gen, ckpt_path, resume, mode, cfg):
    epochs, batch_size, keep_every = cfg.epochs, cfg.batch_size, cfg.keep_every
    mode = mode or precision(device_of(net))
    mode.model(net)  # channels_last before the optimiser sees the parameters
    distributed.global_batch_norm(net)  # torchrun: BN over the global batch, as one process
    tracker.tags(mode.tags())
    w_opt = torch.optim.SGD(net.weights(), cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    # cosine to lr_min over `epochs`, stepped after each epoch: epoch 0 runs at lr, as darts-pt
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, epochs, eta_min=cfg.lr_min)
    method.setup(net)
    train_idx, valid_idx = data.search_halves()
    loop = Loop(net, data, gen, valid_idx, method, w_opt, batch_size, cfg.grad_clip, mode)
    start, alphas = 0, []
    if resume is not None:
        start, alphas = resume_from(resume, net, w_opt, sched, method, gen, tracker)
    for epoch in range(start, epochs):
        t0, meter, cur_lr = time.perf_counter(), Meter(), sched.get_last_lr()[0]
        bs = loop.batch_size = method.batch_size(epoch, batch_size)  # SGAS grows it
        method.begin_epoch(net, epoch, epochs, "search")
        method.arch_epoch(net, loop, epoch)
        net.train()
        order = None if cfg.sample_with_replacement else shuffled_batches(train_idx, bs, gen)
        steps = -(-train_idx.numel() // bs)  # len(train_loader) steps
        with progress.bar(steps, f"search {epoch + 1}/{epochs}", distributed.is_main()) as bar:
            for s in range(steps):
                # darts-pt's train() draws each step's batch from a new iterator: with
                # replacement
                ti = sample_batch(train_idx, bs, gen) if order is None else order[s]
                train_step(loop, ti, meter)
                bar.update(1)
        sched.step()
        if not np.isfinite(float(meter.loss)):
            raise FloatingPointError(f"non-finite search loss in epoch {epoch}; "
                                     f"{checkpoint.last_good(ckpt_path)}")
        method.end_epoch(net, epoch, "search")
        metrics, geno = epoch_metrics(net, data, valid_idx, meter, cur_lr,
                                      time.perf_counter() - t0,
                                      distributed.all_sum([meter.n])[0], cfg.eval_valid, mode)
        metrics = {f"search/{k}": v for k, v in metrics.items()}
        alphas.append(net.alphas.detach().cpu().numpy().copy())
        if ckpt_path and distributed.is_main():  # the other ranks hold the same state
            checkpoint.save({"epoch": epoch + 1, "meta": checkpoint.meta(net, method),
                             "net": net.state_dict(),
                             "w_opt": w_opt.state_dict(), "sched": sched.state_dict(),
                             "method": method.state_dict(), "rng": rng.capture(gen),
                             "alphas": torch.from_numpy(np.stack(alphas)), "metrics": metrics},
                            ckpt_path)
            if keep_every and (epoch + 1) % keep_every == 0:
                shutil.copyfile(ckpt_path, os.path.join(os.path.dirname(ckpt_path),
                                                        f"search_epoch{epoch + 1}.pt"))
        tracker.metrics(metrics, step=epoch)
        if distributed.is_main():
            print(f"search {epoch + 1}/{epochs}  train_acc {metrics['search/train_acc']:.2f}  "
                  f"valid_acc {metrics.get('search/valid_acc', float('nan')):.2f}  "
                  f"{metrics['search/seconds']:.1f}s  {geno}", flush=True)
    if getattr(method, "records", None):  # SGAS's decisions, IS-DARTS's pruning steps
        tracker.json(method.records, "search/method_decisions.json")
    return np.stack(alphas) if alphas else np.zeros((0,) + tuple(net.alphas.shape))
