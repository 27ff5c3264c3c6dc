"""Retrain the selected genotype from scratch and report the final test error.

darts-pt's protocol: sota/cnn/train.py, run by exp_scripts/eval*.sh.
"""
import time

import gin
import numpy as np
import torch

from runner import distributed
from runner.training import checkpoint, rng
from runner.training.loops import Meter, evaluate, shuffled_batches, train_batch
from runner.training.precision import precision
from spaces.cell import count_params


def train_epoch(net, opt, data, gen, batch_size, grad_clip, aux_weight, cutout, mode):
    """One epoch over the train split in global batches of `batch_size`. Under torchrun every
    rank draws the same batches and augmentations (one generator, one seed) and trains on its
    share of each (distributed.share): the step is the global batch's step."""
    net.train()
    meter = Meter()
    idx = torch.arange(data.train_x.size(0), device=data.train_x.device)
    for bi in shuffled_batches(idx, batch_size, gen):
        n = bi.numel()
        x, y = train_batch(data, bi, mode, gen, cutout)
        with mode.autocast():
            logits, aux = net(x)
            loss = distributed.scaled_loss(logits, y, n)
            if aux is not None:  # aux loss in training only
                loss = loss + aux_weight * distributed.scaled_loss(aux, y, n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        meter.update(logits.detach(), y, distributed.local_mean(loss.detach(), n, y.numel()))
    return meter.result("train")


@gin.configurable(denylist=["genotype", "space", "data", "tracker", "gen", "device", "ckpt_path",
                            "resume"])
def retrain(genotype, space, data, tracker, gen, device, ckpt_path=None, resume=None, C=36,
            layers=20, epochs=600, batch_size=96, lr=0.025, momentum=0.9, weight_decay=3e-4,
            grad_clip=5.0, auxiliary_weight=0.4, drop_path_prob=0.2, cutout=16):
    """Train the space family's network for `genotype` on the full train split; the test split
    is only reported. auxiliary_weight 0: no auxiliary head; cutout 0: no cutout.

    A checkpoint is written every epoch, before that epoch's metrics are logged.
    """
    net = space.family.network(genotype, data.num_classes, data.in_channels, C=C, layers=layers,
                               auxiliary=auxiliary_weight > 0).to(device)
    net = distributed.global_batch_norm(net)  # torchrun: the global batch's BN statistics
    mode = precision(device)
    mode.model(net)
    trained = distributed.data_parallel(net)  # torchrun: gradients averaged over ranks
    tracker.tags(mode.tags())
    params = count_params(net)
    opt = torch.optim.SGD(net.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=0.0)  # to 0, as DARTS
    start, best, test = 0, 0.0, {"eval_acc": float("nan")}
    if resume is not None:
        with checkpoint.applying(resume, "retrain checkpoint"):
            net.load_state_dict(resume["net"])
            opt.load_state_dict(resume["opt"])
            sched.load_state_dict(resume["sched"])
            rng.restore(resume["rng"], gen)
            start, best, test = resume["epoch"], resume["best"], resume["test"]
        tracker.ensure_logged(resume["metrics"], step=start - 1)
    tracker.ensure_logged({"retrain/params_M": params / 1e6}, step=0)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        net.drop_path_prob = drop_path_prob * epoch / epochs  # linear ramp from 0, as darts-pt
        distributed.drop_path_stream(gen.initial_seed(), epoch)
        metrics = train_epoch(trained, opt, data, gen, batch_size, grad_clip, auxiliary_weight,
                              cutout, mode)
        if not np.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"non-finite retrain loss in epoch {epoch}; "
                                     f"{checkpoint.last_good(ckpt_path)}")
        metrics["lr"] = sched.get_last_lr()[0]
        sched.step()
        test = evaluate(net, data, data.test_x, data.test_y)
        best = max(best, test["eval_acc"])
        metrics.update(test_acc=test["eval_acc"], test_loss=test["eval_loss"],
                       best_test_acc=best, seconds=time.perf_counter() - t0)
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
    return {"test_acc": test["eval_acc"], "test_error": 100.0 - test["eval_acc"],
            "best_test_acc": best, "params": params}
