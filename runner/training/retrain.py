"""Retrain the selected genotype from scratch and report the final test error.

darts-pt's protocol: sota/cnn/train.py, run by exp_scripts/eval*.sh.
"""
import time

import gin
import numpy as np
import torch

from runner.training import checkpoint, distributed, progress, rng
from runner.training.loops import Meter, shuffled_batches, test_metrics, train_batch
from runner.training.precision import precision
from spaces.cell import count_params
from spaces.madds import multiply_adds


def train_epoch(net, opt, batches, grad_clip, aux_weight, mode, smoothing=0.0, top5=False,
                bar=None):
    """One epoch of steps on `batches`: (input, label, global batch size) of this rank; `bar`
    (runner/training/progress.py) counts them."""
    net.train()
    meter = Meter(top5)
    for x, y, n in batches:
        if bar is not None:
            bar.update(1)
        with mode.autocast():
            logits, aux = net(x)
            loss = distributed.scaled_loss(logits, y, n, smoothing)
            if aux is not None:  # aux loss in training only
                loss = loss + aux_weight * distributed.scaled_loss(aux, y, n, smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        meter.update(logits.detach(), y, distributed.local_mean(loss.detach(), n, y.numel()))
    return meter.result("train")


def tensor_batches(data, gen, batch_size, cutout, mode):
    """An epoch over in-memory data in global batches of `batch_size`. Under torchrun every
    rank draws the same batches and augmentations (one generator, one seed) and trains on its
    share of each (distributed.share): the step is the global batch's step."""
    idx = torch.arange(data.train_x.size(0), device=data.train_x.device)
    for bi in shuffled_batches(idx, batch_size, gen):
        x, y = train_batch(data, bi, mode, gen, cutout)
        yield x, y, bi.numel()


def epoch_batches(data, gen, batch_size, cutout, mode, epoch):
    if getattr(data, "streamed", False):  # ImageNet: DataLoader workers, sharded per rank
        return data.train_batches(batch_size, epoch, gen.initial_seed(), mode)
    return tensor_batches(data, gen, batch_size, cutout, mode)


def scheduler(opt, kind, epochs, gamma):
    """'cosine': to 0 over the epochs (DARTS' CIFAR recipe); 'step': times `gamma` after every
    epoch (the ImageNet recipe, StepLR(1, 0.97))."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=0.0)
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, 1, gamma=gamma)
    raise ValueError(f"retrain.lr_schedule must be 'cosine' or 'step', not {kind!r}")


def size_of(build, data, max_multiply_adds):
    """Multiply-adds of the network at the data's image size; over the limit (the mobile
    setting's 600 M) is an error before any training."""
    madds = multiply_adds(build, data.image_shape)
    if max_multiply_adds is not None and madds > max_multiply_adds:
        size = "x".join(map(str, data.image_shape[1:]))
        raise ValueError(f"the network has {madds / 1e6:.1f} M multiply-adds at {size}, over "
                         f"retrain.max_multiply_adds = {max_multiply_adds / 1e6:g} M")
    return madds


@gin.configurable(denylist=["genotype", "space", "data", "tracker", "gen", "device", "ckpt_path",
                            "resume", "mode"])
def retrain(genotype, space, data, tracker, gen, device, ckpt_path=None, resume=None, mode=None,
            C=36, layers=20, epochs=600, batch_size=96, lr=0.025, momentum=0.9, weight_decay=3e-4,
            grad_clip=5.0, auxiliary_weight=0.4, drop_path_prob=0.2, cutout=16, network="cifar",
            lr_schedule="cosine", lr_gamma=0.97, label_smoothing=0.0, top5=False,
            max_multiply_adds=None):
    """Train the space family's network for `genotype` on the full train split; the test split
    is only reported. auxiliary_weight 0: no auxiliary head; cutout 0: no cutout.
    network: 'cifar' or 'imagenet' (the mobile setting's stems). batch_size: the global
    batch (under torchrun each rank trains on its share). max_multiply_adds: fail before
    training above this many (the mobile setting: 600e6); None: no limit.

    A checkpoint is written every epoch, before that epoch's metrics are logged.
    Returns (results, the trained network).
    """
    if cutout and getattr(data, "streamed", False):
        raise ValueError("retrain.cutout: no cutout on streamed ImageNet data (bind it to 0)")

    def build(auxiliary=auxiliary_weight > 0):
        return space.family.network(genotype, data.num_classes, data.in_channels, C=C,
                                    layers=layers, auxiliary=auxiliary, kind=network)

    madds = size_of(lambda: build(False), data, max_multiply_adds)
    net = build().to(device)
    net = distributed.global_batch_norm(net)  # torchrun: the global batch's BN statistics
    mode = mode or precision(device)
    mode.model(net)
    trained = distributed.data_parallel(net)  # torchrun: gradients averaged over ranks
    tracker.tags(mode.tags())
    params = count_params(net)
    opt = torch.optim.SGD(net.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
    sched = scheduler(opt, lr_schedule, epochs, lr_gamma)
    start, best, test = 0, 0.0, {"eval_acc": float("nan")}
    if resume is not None:
        with checkpoint.applying(resume, "retrain checkpoint"):
            net.load_state_dict(resume["net"])
            opt.load_state_dict(resume["opt"])
            sched.load_state_dict(resume["sched"])
            rng.restore(resume["rng"], gen)
            start, best, test = resume["epoch"], resume["best"], resume["test"]
        tracker.ensure_logged(resume["metrics"], step=start - 1)
    tracker.ensure_logged({"retrain/params_M": params / 1e6,
                           "retrain/multiply_adds_M": madds / 1e6}, step=0)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        net.drop_path_prob = drop_path_prob * epoch / epochs  # linear ramp from 0, as darts-pt
        distributed.drop_path_stream(gen.initial_seed(), epoch)
        steps = -(-len(data.train_y) // batch_size) if hasattr(data, "train_y") else None
        with progress.bar(steps, f"retrain {epoch + 1}/{epochs}", distributed.is_main()) as bar:
            metrics = train_epoch(trained, opt, epoch_batches(data, gen, batch_size, cutout,
                                                              mode, epoch),
                                  grad_clip, auxiliary_weight, mode, label_smoothing, top5, bar)
        if not np.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"non-finite retrain loss in epoch {epoch}; "
                                     f"{checkpoint.last_good(ckpt_path)}")
        metrics["lr"] = sched.get_last_lr()[0]
        sched.step()
        test = test_metrics(net, data, mode, top5)
        best = max(best, test["eval_acc"])
        metrics.update(test_acc=test["eval_acc"], test_loss=test["eval_loss"],
                       best_test_acc=best, seconds=time.perf_counter() - t0)
        if top5:  # ImageNet reports errors: top-1 and top-5, every epoch
            metrics.update(test_top5_acc=test["eval_top5_acc"],
                           test_error=100.0 - test["eval_acc"],
                           test_top5_error=100.0 - test["eval_top5_acc"])
        metrics = {f"retrain/{k}": v for k, v in metrics.items()}
        if ckpt_path and distributed.is_main():  # the other ranks hold the same state
            checkpoint.save({"epoch": epoch + 1, "net": net.state_dict(), "opt": opt.state_dict(),
                             "sched": sched.state_dict(), "rng": rng.capture(gen), "best": best,
                             "test": test, "metrics": metrics}, ckpt_path)
        tracker.metrics(metrics, step=epoch)
        if distributed.is_main():
            print(f"retrain {epoch + 1}/{epochs}  train_acc {metrics['retrain/train_acc']:.2f}  "
                  f"test_acc {test['eval_acc']:.2f}  {metrics['retrain/seconds']:.1f}s", flush=True)
    # the headline is the final-epoch test error, never the best epoch (DARTS' convention)
    out = {"test_acc": test["eval_acc"], "test_error": 100.0 - test["eval_acc"],
           "best_test_acc": best, "params": params, "multiply_adds": madds}
    if top5:
        out["test_top5_error"] = 100.0 - test.get("eval_top5_acc", float("nan"))
    return out, net
