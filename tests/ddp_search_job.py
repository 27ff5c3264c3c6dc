"""A supernet search and a selection (none with run.do_select = False), alone or under
torchrun, with the runner's own search(), select() and methods (tests/test_ddp_search.py).
Every rank saves what it ends with (alphas after the search and after selection, weights,
genotype, decisions) to <out>/rank<r>.pt, so a test can compare the ranks with each other and
with one process.

    python tests/ddp_search_job.py OUT GIN_FILE... -- BINDING...
"""
import os
import sys

import torch

import runner.config.configurables  # noqa: F401  (registers the configurables with gin)
from runner.training import distributed
from runner.config import parse_config
from runner.data.datasets import dataset
from runner.lifecycle.environment import seed_everything
from runner.lifecycle.phases import supernet
from runner.lifecycle.settings import RunSettings
from runner.selection.select import select
from runner.training.search import search
from spaces.cell import get_space
from tracking.silent import SilentTracker

SEED = 2


def main(out, files, binds):
    with distributed.session() as ranks:
        parse_config(files, binds)
        settings = RunSettings()
        space, method = get_space(settings.space), settings.method()
        data = dataset(device="cpu")
        seed_everything(SEED)
        gen = torch.Generator().manual_seed(SEED)
        net = supernet(space, data.num_classes, data.in_channels)
        tracker = SilentTracker()
        search(net, method, data, tracker, gen, None)
        searched = net.alphas.detach().clone()
        genotype, records = net.genotype(), []
        if settings.do_select:
            seed_everything(SEED)  # as runner.lifecycle.phases.reseed before selection
            gen.manual_seed(SEED)
            genotype, records = select(net, method, data, tracker, gen, SEED)
        torch.save({"searched": searched, "alphas": net.alphas.detach().clone(),
                    "weights": {k: v.clone() for k, v in net.state_dict().items()},
                    "genotype": str(genotype), "world": ranks.world,
                    "decisions": [{k: r[k] for k in ("kind", "cell", "where", "chosen", "scores")}
                                  for r in records]},
                   os.path.join(out, f"rank{ranks.rank}.pt"))
        distributed.finish()


if __name__ == "__main__":
    args = sys.argv[1:]
    cut = args.index("--") if "--" in args else len(args)
    main(args[0], args[1:cut], args[cut + 1:])
