"""The reference's retrain step (sota/cnn/model.py, genotype darts_pt_s5_0), timed.

    python bench/reference_retrain.py REFERENCE_DIR C LAYERS BATCH STEPS THREADS

bench/perf.py runs it in a subprocess next to our retrain step. One step is what the
reference's train loop does per batch: forward with the auxiliary head (weight 0.4), backward,
gradient clipping at 5, SGD. Prints one JSON object: the median of STEPS steps after one
warm-up (bench/ours.py's `timed`, time.perf_counter: perf.py swaps in the CPU clock with
--clock cpu before this script runs).
"""
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, sys.argv[1])
if not torch.cuda.is_available():  # the reference hard-codes .cuda(); a no-op on a CPU
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
from sota.cnn.genotypes import darts_pt_s5_0  # noqa: E402
from sota.cnn.model import Network  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run through runpy: not on the path
from ours import timed  # noqa: E402


def main(C, layers, batch, steps, threads):
    torch.set_num_threads(threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    net = Network(C, 10, layers, True, darts_pt_s5_0).to(dev)
    net.drop_path_prob = 0.0
    opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def step():
        net.train()
        logits, aux = net(x)
        loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    print(json.dumps({"retrain_step_s": timed(step, steps, dev)}))


if __name__ == "__main__":
    main(*map(int, sys.argv[2:7]))
