"""Selection: PT's operation and topology tests on a hand-built toy, magnitude parity, seeds."""
import numpy as np
import pytest
import torch

from runner.selection.criteria import Magnitude, Perturbation
from runner.data.datasets import Dataset
from runner.methods.darts import Darts
from runner.training.search import search
from runner.selection.select import decision_epochs, genotype_from_decisions, select
from runner.training.loops import Loop
from spaces.cell import SearchSpace, magnitude_parse
from spaces.darts import DARTS
from spaces.darts.space import NUM_EDGES, TYPES as CELLS
from spaces.supernet import OPEN, Supernet
from memory_tracker import MemoryTracker

from fixtures import tiny_images, tiny_supernet

CLASSES, FEATURES = 10, 10


class ToyNet(Supernet):
    """logits = (sum over computed ops of w * usefulness) * onehot(label) + fixed noise.

    Each op's contribution to the class signal is known, so the op whose removal hurts most
    is known: the one with the largest w * usefulness. Decision state and masking are the real
    Supernet's.
    """

    def __init__(self, space, usefulness):
        super().__init__(space, alpha_init_std=0.0, usefulness=usefulness)

    def build(self, usefulness):
        self.u = usefulness  # [2, 14, K]

    def forward(self, x, weights=None, active=None):
        w = self.mixing_weights() if weights is None else weights
        active = self.active_ops() if active is None else active
        signal = sum(w[c, e, k] * self.u[c, e, k]
                     for c in range(2) for e in range(NUM_EDGES) for k in active[c][e])
        return signal * x[:, :CLASSES] + x[:, CLASSES:]


def toy_data(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = torch.cat([torch.nn.functional.one_hot(y, CLASSES).float(),
                   torch.randn(n, FEATURES, generator=g)], 1)
    # mean 0 and std 1/255 make Dataset.prepare return the features unchanged
    z = torch.zeros(1, 1)
    return Dataset("toy", x, y, x[:0], y[:0], z, z + 1 / 255, False, 0, CLASSES)


def ctx(data, seed=0):
    _, valid = data.search_halves()
    return Loop(None, data, torch.Generator().manual_seed(seed), valid)


def space(k):
    ops = tuple(["skip_connect", "sep_conv_3x3", "dil_conv_3x3", "max_pool_3x3"][:k])
    return SearchSpace("toy", DARTS, ((ops,) * NUM_EDGES, (ops,) * NUM_EDGES))


@pytest.mark.parametrize("crit", ["acc", "loss"])
def test_operation_test_keeps_the_op_whose_removal_hurts_most(crit):
    u = torch.zeros(2, NUM_EDGES, 3)
    u[0, 4] = torch.tensor([0.3, 0.5, 6.0])  # op 2 carries the signal on normal edge 4
    u[1, 7] = torch.tensor([5.0, 0.2, 0.4])  # op 0 on reduce edge 7
    net, data = ToyNet(space(3), u), toy_data()
    pt = Perturbation(crit=crit, batch_size=256)
    for cell, edge, expected in (("normal", 4, 2), ("reduce", 7, 0)):
        scores = pt.op_scores(net, cell, edge, ctx(data))
        accs = [s["acc"] for s in scores]
        assert pt.choose_op(net, cell, edge, scores) == expected
        assert np.argmin(accs) == expected and np.argmax([s["loss"] for s in scores]) == expected


def test_operation_test_masks_without_renormalising():
    net = ToyNet(space(3), torch.ones(2, NUM_EDGES, 3))
    data = toy_data(64)
    # all weights 1/3: masking one op must leave the others at 1/3, not renormalise them
    seen = []
    net.forward_orig = net.forward

    def spy(x, weights=None, active=None):
        seen.append((weights.clone(), [list(map(list, a)) for a in active]))
        return net.forward_orig(x, weights, active)

    net.forward = spy
    Perturbation(batch_size=64).measure(net, ctx(data), [("normal", 3, 1)])
    w, active = seen[0]
    assert torch.allclose(w[0, 3], torch.tensor([1 / 3, 0.0, 1 / 3]))
    assert torch.allclose(w[0, 2], torch.full((3,), 1 / 3))
    assert active[0][3] == [0, 2] and active[0][2] == [0, 1, 2]


def test_operation_test_ties_go_to_the_lowest_index():
    pt = Perturbation()
    scores = [{"acc": 50.0, "loss": 1.0}, {"acc": 40.0, "loss": 2.0}, {"acc": 40.0, "loss": 2.0}]
    assert pt.choose_op(None, "normal", 0, scores) == 1
    assert Perturbation(crit="loss").choose_op(None, "normal", 0, scores) == 1


@pytest.mark.parametrize("crit", ["acc", "loss"])
def test_topology_test_keeps_the_two_edges_whose_removal_hurts_most(crit):
    u = torch.zeros(2, NUM_EDGES, 1)
    u[0, 9:14, 0] = torch.tensor([0.05, 1.0, 0.1, 0.7, 0.15])  # node 5 <- edges 9..13
    net, data = ToyNet(space(1), u), toy_data()
    for e in range(NUM_EDGES):
        net.fix_edge("normal", e, 0)
    kept, rounds = Perturbation(crit=crit, batch_size=256).keep_edges(
        net, "normal", list(range(9, 14)), ctx(data))
    assert sorted(kept) == [10, 12]
    assert [len(r["scores"]) for r in rounds] == [5, 4, 3]  # 12 evaluations (darts-pt project_edge)


def test_topology_ties_drop_the_later_edge():
    u = torch.zeros(2, NUM_EDGES, 1)
    u[0, 2:5, 0] = 0.5  # three equal edges into node 3 (edges 2, 3, 4)
    net = ToyNet(space(1), u)
    for e in range(NUM_EDGES):
        net.fix_edge("normal", e, 0)
    kept, _ = Perturbation(batch_size=2000).keep_edges(net, "normal", [2, 3, 4], ctx(toy_data()))
    assert kept == [2, 3]


def run_select(net, method, data, seed, criterion, tune_epochs):
    gen = torch.Generator().manual_seed(seed)
    return select(net, method, data, MemoryTracker(), gen, seed, criterion=criterion,
                  tune_epochs=tune_epochs, batch_size=8)


def test_magnitude_with_no_tuning_is_the_classic_parse():
    for name in ("darts", "s1", "s3"):
        net = tiny_supernet(name)
        with torch.no_grad():
            net.alphas.normal_()  # far from uniform, distinct strengths
        w = torch.softmax(net.alphas, -1).tolist()
        expected = magnitude_parse(w, net.space)
        method = Darts()
        method.setup(net)
        genotype, records = run_select(net, method, tiny_images(), 0, Magnitude(), 0)
        assert genotype == expected
        assert [r["kind"] for r in records].count("op") == 28
        assert [r["kind"] for r in records].count("topology") == 6


def test_fix_alpha_leaves_alpha_bit_identical_through_search_and_selection():
    net, data = tiny_supernet("s2"), tiny_images()
    before = net.alphas.detach().clone()
    method = Darts(update_alphas=False)
    gen = torch.Generator().manual_seed(0)
    search(net, method, data, MemoryTracker(), gen, None, epochs=2, batch_size=8)
    run_select(net, method, data, 0, Perturbation(subset=8, batch_size=8), 1)
    assert torch.equal(net.alphas.detach(), before)


def test_darts_method_does_train_alpha():
    net, data = tiny_supernet("s2"), tiny_images()
    before = net.alphas.detach().clone()
    search(net, Darts(), data, MemoryTracker(), torch.Generator().manual_seed(0), None,
           epochs=1, batch_size=8)
    assert not torch.equal(net.alphas.detach(), before)


def decision_trace(seed, edge_order_seed=None):
    net, data = tiny_supernet("s2"), tiny_images()
    method = Darts()
    method.setup(net)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g, recs = select(net, method, data, MemoryTracker(), gen, seed,
                     criterion=Perturbation(subset=8, batch_size=8), tune_epochs=0,
                     batch_size=8, edge_order_seed=edge_order_seed)
    return g, [(r["cell"], r["kind"], r["where"], str(r["chosen"])) for r in recs]


def test_same_seed_same_order_and_decisions_other_seed_other_order():
    g1, t1 = decision_trace(3)
    g2, t2 = decision_trace(3)
    _, t3 = decision_trace(4)
    assert g1 == g2 and t1 == t2
    assert [x[:3] for x in t1] != [x[:3] for x in t3]


def test_output_after_each_decision_equals_independent_masked_forward():
    net, data = tiny_supernet("s3"), tiny_images()
    net.eval()
    x = data.prepare(data.train_x[:4], train=False)
    rng = np.random.RandomState(0)
    for step in range(6):
        cell, e = CELLS[step % 2], int(rng.randint(NUM_EDGES))
        if step < 4:
            net.fix_edge(cell, e, int(rng.randint(3)))
        else:
            net.prune_edge(cell, e)
        w = torch.softmax(net.alphas.detach(), -1).clone()
        for c in range(2):
            for j, d in enumerate(net.decisions()[c]):
                if d >= 0:
                    w[c, j] = torch.nn.functional.one_hot(torch.tensor(d), 3).float()
                elif d == -2:
                    w[c, j] = 0.0
        every_op = [[list(range(3))] * NUM_EDGES] * 2  # computing zero-weight ops adds 0
        with torch.no_grad():
            assert torch.allclose(net(x), net(x, w, every_op), atol=1e-6, rtol=1e-5)


def test_genotype_comes_from_the_decision_state():
    net = tiny_supernet("s2")
    for c in CELLS:
        for e in range(NUM_EDGES):
            net.fix_edge(c, e, e % 2)
        for e in (4, 5, 6, 9, 10, 11):
            net.prune_edge(c, e)
    g = genotype_from_decisions(net)
    assert g.normal == (("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0),
                        ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("skip_connect", 3),
                        ("skip_connect", 3), ("sep_conv_3x3", 4))
    assert g == net.genotype()  # the parse of one-hot rows agrees


def test_decision_epochs_follow_the_reference_schedules():
    # darts-pt sota: 17 rounds on the DARTS cell, 5 apart, one tuning epoch after the last
    starts, total = decision_epochs(17, 5, "sota")
    assert starts == list(range(0, 81, 5)) and total == 81
    # darts-pt nasbench201/projection.py: the last gap is 4 epochs
    assert decision_epochs(6, 5, "nb201") == ([0, 5, 10, 15, 20, 24], 25)
    assert decision_epochs(6, 0, "nb201") == ([0] * 6, 0)
    assert decision_epochs(1, 5, "nb201") == ([0], 1)
    with pytest.raises(ValueError, match="select.schedule"):
        decision_epochs(6, 5, "nb-201")


class CountingDarts(Darts):
    """Records, at each tuning epoch, how many edges of the first cell type are decided."""

    def begin_epoch(self, net, epoch, total, phase):
        if phase == "tune":
            self.seen.append((epoch, total, sum(d != OPEN for d in net.decisions()[0])))
        super().begin_epoch(net, epoch, total, phase)


@pytest.mark.parametrize("schedule", ["sota", "nb201"])
def test_selection_tunes_the_scheduled_epochs_between_decisions(schedule):
    net, data = tiny_supernet("s2"), tiny_images(n=16)
    method = CountingDarts()
    method.setup(net)
    method.seen = []
    run_select_with = dict(criterion=Magnitude(), tune_epochs=2, batch_size=8, schedule=schedule)
    select(net, method, data, MemoryTracker(), torch.Generator().manual_seed(0), 0,
           **run_select_with)
    starts, total = decision_epochs(17, 2, schedule)
    assert [s[0] for s in method.seen] == list(range(total))
    assert {s[1] for s in method.seen} == {total}
    # edges decided so far at each epoch: one more per round until all 14 are fixed
    decided = [min(14, 1 + sum(ep >= s for s in starts[1:])) for ep in range(total)]
    assert [s[2] for s in method.seen] == decided
