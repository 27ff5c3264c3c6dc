"""The reference's NAS-Bench-201 supernet (nasbench201/search_model_darts_proj.py), timed.

    python bench/reference_nb201.py REFERENCE_DIR C N BATCH STEPS EVAL_BATCHES THREADS

bench/perf.py runs it in a subprocess next to our NB201 supernet, as it runs
../shared/reference/bench_reference.py for the DARTS space. Two timings, on ready float
tensors:

  nb201_search_step  one first-order DARTS step of TinyNetworkDartsProj, as bench_reference.py
                     does for the DARTS space: alpha step (Adam) on a valid batch, then the
                     reference's own weight step (net.step: forward, backward, clip, SGD).
  nb201_pt_edge      the PT operation test of one undecided edge (edge 0, '1<-0'), as
                     nasbench201/projection.py's project(): for each of the 5 ops, the
                     projected weights with that op's weight multiplied by 0, then its
                     infer(eval=False, weights=...): BN train mode, no_grad, EVAL_BATCHES
                     batches, loss and top-1 accuracy (nasbench201/utils.py accuracy); every op
                     is computed, masked or not. projection.py itself imports nas_201_api at
                     module level, so its loop is restated here on the reference's network and
                     utils. Its infer's top-5 is left out: utils.accuracy's `.view` on a
                     non-contiguous slice raises for k > 1 on current torch.

Prints one JSON object: medians of STEPS calls after one warm-up (bench/ours.py's `timed`,
time.perf_counter: perf.py swaps in the CPU clock with --clock cpu before this script runs).
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn

sys.path.insert(0, sys.argv[1])
if not torch.cuda.is_available():  # the reference hard-codes .cuda(); a no-op on a CPU
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
import nasbench201.utils as ig_utils  # noqa: E402
from nasbench201.cell_operations import NAS_BENCH_201  # noqa: E402
from nasbench201.search_model_darts_proj import TinyNetworkDartsProj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run through runpy: not on the path
from ours import timed  # noqa: E402

EDGE = 0  # '1<-0', the edge our side scores


def main(C, N, batch, steps, eval_batches, threads):
    torch.set_num_threads(threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    args = SimpleNamespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4, grad_clip=5.0)
    crit = nn.CrossEntropyLoss()
    net = TinyNetworkDartsProj(C, N, 4, 10, crit, list(NAS_BENCH_201), args).to(dev)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999),
                                weight_decay=1e-3)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    valid = [(torch.randn(batch, 3, 32, 32, device=dev),
              torch.randint(0, 10, (batch,), device=dev)) for _ in range(eval_batches)]

    def search_step():
        net.train()
        arch_opt.zero_grad()
        net._loss(x, y).backward()          # alpha step on the valid batch (first order)
        arch_opt.step()
        net.optimizer.zero_grad()
        arch_opt.zero_grad()
        net.step(x, y, args)                # weight step on the train batch

    def infer(weights):  # the reference's infer(valid_queue, ..., eval=False, weights=weights)
        objs, top1 = ig_utils.AvgrageMeter(), ig_utils.AvgrageMeter()
        net.train()
        with torch.no_grad():
            for inp, tgt in valid:
                logits = net(inp, weights=weights)
                loss = crit(logits, tgt)
                (prec1,) = ig_utils.accuracy(logits, tgt, topk=(1,))  # top-5: see the docstring
                n = inp.size(0)
                objs.update(loss.data, n)
                top1.update(prec1.data, n)
        return top1.avg, objs.avg

    def pt_edge():  # the operation test on edge EDGE, criterion 'acc', on the reference net
        accs = []
        for k in range(net.num_op):
            w = net.get_projected_weights()
            w[EDGE] = w[EDGE] * (torch.arange(net.num_op, device=w.device) != k)  # op k masked
            accs.append(float(infer(w)[0]))
        return min(range(len(accs)), key=accs.__getitem__)  # lowest accuracy, first on ties

    out = {"nb201_search_step_s": timed(search_step, steps, dev),
           "nb201_pt_edge_s": timed(pt_edge, steps, dev)}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*map(int, sys.argv[2:8]))
