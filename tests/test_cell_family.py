"""A second cell family needs only its description and one module: a toy family defined here
(one cell type, 3 edges, 2 ops, fixed topology) runs search -> PT -> genotype through the real
supernet, select(), criteria, plots and the runner's CLI, with no change to them."""
import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from runner.methods.darts import Darts
from runner.selection.criteria import Magnitude, Perturbation
from runner.selection.select import genotype_from_decisions, num_rounds, select
from runner.training.search import search
from spaces.cell import CellSpec, Family, SearchSpace, count_params, register, unregister
from spaces.ops import make_op
from spaces.supernet import MixedOp, Supernet
from tracking import plots

from fixtures import tiny_images
from helpers import GIN_DIR, run_cli, tiny_argv
from memory_tracker import MemoryTracker

# node 1 <- state 0; node 2 <- states 0 and 1
TOY_CELL = CellSpec(types=("cell",), edges=((1, 0), (2, 0), (2, 1)), keep=None)
OPS = ("skip_connect", "relu_conv_1x1")  # the second is the toy family's own op


def toy_op(name, C, stride, search):
    """The family's op library: one op of its own, the rest from the shared one."""
    if name == "relu_conv_1x1":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 1, bias=False),
                             nn.BatchNorm2d(C, affine=not search))
    return make_op(name, C, stride, search)


@dataclass(frozen=True)
class ToyGenotype:
    edges: tuple  # ((op, input), ...) per edge, node by node

    def __str__(self):
        return "+".join(f"{op}~{j}" for op, j in self.edges)

    def to_json(self):
        return json.dumps([list(g) for g in self.edges])

    def count(self, op):
        return sum(name == op for name, _ in self.edges)


class ToySupernet(Supernet):
    """stem -> one toy cell -> global pool -> linear."""

    def build(self, C=4, layers=1, num_classes=10, in_channels=3):
        del layers  # one cell
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C))
        self.edges = nn.ModuleList(MixedOp(self.space.ops(0)[e], C, 1, 0, e, make=toy_op)
                                   for e in range(TOY_CELL.num_edges))
        self.classifier = nn.Linear(C, num_classes)

    def forward(self, x, weights=None, active=None):
        w = (self.mixing_weights() if weights is None else weights)[0]
        active = (self.active_ops() if active is None else active)[0]
        states = [self.stem(x)]
        for eids in TOY_CELL.node_edges():
            states.append(sum(self.edges[e](states[TOY_CELL.edges[e][1]], w[e], active[e])
                              for e in eids))
        return self.classifier(states[-1].mean(dim=(2, 3)))


def toy_network(genotype, num_classes, in_channels, **_):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.Flatten(),
                         nn.LazyLinear(num_classes))


TOY = Family(name="toy", cell=TOY_CELL, supernet=ToySupernet,
             genotype=lambda space, genes: ToyGenotype(tuple(g for node in genes[0]
                                                             for g in node)),
             parse_genotype=None, param_size=lambda g, n: 100.0 * len(g.edges),
             param_size_label="toy", network=toy_network)
TOY_SPACE = SearchSpace("toy3", TOY, ((OPS,) * 3,))


def test_description_drives_the_shapes_and_rounds():
    torch.manual_seed(0)
    net = ToySupernet(TOY_SPACE)
    assert net.alphas.shape == (1, 3, 2) and net.decision.shape == (1, 3)
    assert [m.where for m in net.mixed_ops()] == [(0, 0), (0, 1), (0, 2)]
    assert TOY_CELL.node_edges() == [[0], [1, 2]] and TOY_CELL.topology_nodes() == []
    assert num_rounds(net) == 3  # one op decision per edge, no topology rounds
    assert count_params(net) > 0


@pytest.mark.parametrize("criterion", [Perturbation(subset=8, batch_size=8), Magnitude(),
                                       Perturbation(subset=8, batch_size=8, masks_per_pass=2)],
                         ids=["pt", "magnitude", "pt-grouped"])
def test_search_then_select_through_the_real_code(criterion):
    torch.manual_seed(0)
    net, data, tracker = ToySupernet(TOY_SPACE), tiny_images(32), MemoryTracker()
    method = Darts()
    gen = torch.Generator().manual_seed(0)
    alphas = search(net, method, data, tracker, gen, None, epochs=1, batch_size=8)
    assert alphas.shape == (1, 1, 3, 2)
    geno, records = select(net, method, data, tracker, gen, 0, criterion=criterion,
                           tune_epochs=1, batch_size=8)
    assert [r["kind"] for r in records] == ["op"] * 3
    assert sorted(r["where"] for r in records) == [0, 1, 2]
    assert all(d >= 0 for d in net.decisions()[0])  # every edge fixed, none pruned
    assert geno == genotype_from_decisions(net)
    assert [j for _, j in geno.edges] == [0, 0, 1]  # the fixed topology's inputs, in order
    assert [op for op, _ in geno.edges] == [OPS[k] for k in net.decisions()[0]]
    assert net.genotype() == geno  # the magnitude parse of one-hot rows agrees
    steps = [s for s, m in tracker.logged_metrics if "select/cell_type" in m]
    assert steps == [0, 1, 2]


def test_plots_read_the_description(tmp_path):
    a = torch.randn(3, 1, 3, 2).cumsum(0).numpy()
    assert plots.alpha_history(a, TOY_SPACE, tmp_path / "a.png").exists()
    recs = [{"kind": "op", "cell": "cell", "where": e, "candidates": list(OPS),
             "scores": [{"weight": 0.4}, {"weight": 0.6}], "chosen": OPS[1]} for e in range(3)]
    assert plots.decision_timeline(recs, tmp_path / "d.png", ("cell",)).exists()


@pytest.fixture
def toy_registered():
    register(TOY_SPACE)
    yield
    unregister("toy3")  # other test files in this process see only the real spaces


def test_the_runner_runs_the_toy_family_end_to_end(toy_registered, data_root, tracking, capsys,
                                                   clean_gin):
    argv = tiny_argv(GIN_DIR / "s2_cifar10.gin", data_root, "run.space = 'toy3'",
                     "run.do_retrain = False", "supernet.C = 4", "run.plots = True")
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    (run,) = tracking.search_runs([tracking.get_experiment_by_name("s2_cifar10").experiment_id])
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["space"] == "toy3" and run.info.status == "FINISHED"
    assert tags["genotype"].count("~") == 3 and f"genotype: {tags['genotype']}" in out
    assert metrics["genotype/param_size_M"] == pytest.approx(300e-6)
    history = tracking.get_metric_history(run.info.run_id, "select/cell_type")
    assert sorted(m.step for m in history) == [0, 1, 2]
    paths = {f.path for f in tracking.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/alpha_history.png", "plots/decisions.png"} <= paths


def test_sgas_refuses_a_fixed_topology(toy_registered, data_root, tracking, capsys, clean_gin):
    argv = tiny_argv(GIN_DIR / "sgas_pt_cifar10.gin", data_root, "run.space = 'toy3'")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2
    assert err.strip() == ("runner: error: ValueError: SGAS decides which inputs each node "
                           "keeps; space 'toy3' has a fixed topology")
