"""IS-DARTS (runner/methods/is_darts.py, runner/selection/information.py): the information
measure against a hand computation, the pruning schedule and counts of both spaces, a toy
whose pruned op is known, and the method and the criterion end to end."""
import math

import pytest
import torch

from fixtures import tiny_images
from helpers import TINY, argv, check_report, experiment_runs, method_records, run_cli
from runner.methods.is_darts import prune_epochs, prune_per_edge, prune_per_node
from runner.selection.information import information


def test_the_measure_against_a_hand_computation_with_a_constant_position():
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, 2.0]], [[5.0, 2.0]]]])  # B1 C3 H1 W2
    # position 0: channels 1, 3, 5: mean 3, unbiased std 2; position 1: all 2, std 0 -> inf
    hand0 = sum(3 * (v - 3.0) ** 2 / 2.0 ** 6 for v in (1.0, 3.0, 5.0)) / 3
    assert information(x[..., :1]).item() == pytest.approx(hand0)
    assert math.isinf(information(x).item())  # 0/0 counts as infinity
    y = torch.randn(4, 8, 3, 3)
    per = information(y)
    assert per.shape == (4,)
    z = (y - y.mean(1, keepdim=True)) ** 2 * 3 / y.std(1, keepdim=True) ** 6
    assert torch.allclose(per, z.mean((1, 2, 3)))


def test_the_schedules_of_both_spaces():
    assert prune_epochs(30, 4, 2) == [22, 24, 26, 28]  # NB201: starts of these epochs
    assert prune_epochs(50, 7, 3) == [29, 32, 35, 38, 41, 44, 47]  # DARTS space
    # DARTS space, 7 ops, nodes with 2..5 inputs: pruned per step until 2 candidates remain
    for inputs, counts in ((2, [2, 2, 2, 2, 2, 1, 1]), (3, [3, 3, 3, 3, 2, 3, 2])):
        mask, got = torch.ones(inputs, 7), []
        for step in range(7):
            got.append(len(prune_per_node(mask, torch.rand(inputs, 7), [list(range(inputs))],
                                          7 - step)))
        assert got == [math.ceil((inputs * 7 - 2 - sum(got[:i])) / (7 - i)) for i in range(7)]
        assert int(mask.sum()) == 2
    mask = torch.ones(6, 5)
    for _ in range(4):  # NB201: one op per edge per step, one left after 4
        prune_per_edge(mask, torch.rand(6, 5))
    assert mask.sum(1).tolist() == [1.0] * 6


def test_the_op_of_highest_measure_is_pruned_first():
    values = torch.tensor([[0.5, 9.0, 1.0], [2.0, 2.0, 0.1]])
    mask = torch.ones(2, 3)
    assert prune_per_edge(mask, values) == [(0, 1), (1, 0)]  # a tie prunes the first
    mask = torch.ones(2, 3)
    assert prune_per_node(mask, values, [[0, 1]], steps_left=2) == [(0, 1), (1, 0)]


def test_the_method_prunes_the_toy_supernet_to_its_decisions():
    from fixtures import tiny_supernet
    from runner.methods.is_darts import IsDarts
    from runner.training.loops import Loop

    net, data = tiny_supernet("s3"), tiny_images(32)
    m = IsDarts(steps=2, interval=1, measure_batches=1, batch_size=8)
    m.setup(net)
    loop = Loop(net, data, torch.Generator().manual_seed(0), data.search_halves()[1], m)
    assert torch.equal(net.alphas.detach(), torch.zeros_like(net.alphas))  # uniform mixing
    for epoch in range(3):
        m.begin_epoch(net, epoch, 3, "search")
        m.arch_epoch(net, loop, epoch)
        if epoch == 1:  # after the first step: pruned ops weigh 0, the others still 1/K
            w = net.mixing_weights()
            assert torch.all((w == 0) | torch.isclose(w, torch.tensor(1 / net.space.num_ops)))
            assert net.active_ops()[0][0] == [k for k in range(3) if m.mask[0, 0, k]]
    assert m.done == 2 and [r["step"] for r in m.records][:4] == [0, 0, 1, 1]
    for t, cell in enumerate(net.space.cell.types):
        for edges in net.space.cell.node_edges():  # two inputs survive, one op each
            assert int(m.mask[t, edges].sum()) == 2 and int(m.mask[t, edges].amax(1).sum()) == 2
            for e in edges:  # and become the decisions
                alive = m.mask[t, e].nonzero().flatten().tolist()
                d = net.decisions()[t][e]
                assert (d == alive[0]) if len(alive) == 1 else (d == -2 if not alive else d == -1)
        assert all(net.space.ops(cell)[e][k] != "none" for e in range(m.mask.size(1))
                   for k in range(3) if m.mask[t, e, k])  # `none` measures inf: pruned first


def test_two_survivors_on_one_input_keep_the_better_and_revive_another_input():
    """A DARTS node keeps two distinct inputs: when both survivors sit on one edge, that edge
    keeps its op of lower measure and the best non-`none` op of another input comes back."""
    from fixtures import tiny_supernet
    from runner.methods.is_darts import IsDarts

    net = tiny_supernet("s3")  # ops: none, skip_connect, sep_conv_3x3
    m = IsDarts(steps=1)
    m.setup(net)
    m.done = 1
    m.mask.zero_()
    for t in range(2):  # node 0 (edges 0, 1): skip and sep on edge 0, nothing on edge 1
        m.mask[t, 0, 1:] = 1
        for edges in net.space.cell.node_edges()[1:]:  # the other nodes: distinct inputs
            m.mask[t, edges[0], 2] = m.mask[t, edges[1], 1] = 1
    values = torch.arange(2 * 14 * 3, dtype=torch.float64).reshape(2, 14, 3)
    values[0, 0] = torch.tensor([0.0, 5.0, 4.0])  # normal: edge 0 keeps sep (4 < 5)
    values[0, 1] = torch.tensor([-1.0, 7.0, 3.0])  # `none` never revives: sep (3) does
    values[1, 0] = torch.tensor([0.0, 1.0, 2.0])  # reduce: edge 0 keeps skip
    values[1, 1] = torch.tensor([0.0, 2.0, 8.0])  # and skip of edge 1 comes back
    m.decide(net, values)
    normal, reduce = net.decisions()
    assert normal[:2] == [2, 2] and reduce[:2] == [1, 1]
    assert normal[2:5] == [2, 1, -2] and reduce[5:9] == [2, 1, -2, -2]  # the others unchanged
    assert m.records == [
        {"step": 0, "cell": "normal", "revived": [1, "sep_conv_3x3"], "kept": [0, "sep_conv_3x3"]},
        {"step": 0, "cell": "reduce", "revived": [1, "skip_connect"], "kept": [0, "skip_connect"]}]
    assert [int(m.mask[t, :2].sum()) for t in range(2)] == [2, 2]


def test_a_checkpoint_between_steps_continues_to_the_same_pruning():
    import copy

    from fixtures import tiny_supernet
    from runner.methods.is_darts import IsDarts
    from runner.training import rng
    from runner.training.loops import Loop

    data, gen = tiny_images(32), torch.Generator().manual_seed(0)

    def method_and_loop(net):
        m = IsDarts(steps=2, interval=1, measure_batches=1, batch_size=8)
        m.setup(net)
        m.begin_epoch(net, 0, 3, "search")
        return m, Loop(net, data, gen, data.search_halves()[1], m)
    net = tiny_supernet("darts")
    m, loop = method_and_loop(net)
    m.arch_epoch(net, loop, 1)
    saved = copy.deepcopy(net.state_dict()), copy.deepcopy(m.state_dict()), rng.capture(gen)
    m.arch_epoch(net, loop, 2)
    other = tiny_supernet("darts")
    other.load_state_dict(saved[0])
    m2, loop2 = method_and_loop(other)
    m2.load_state_dict(saved[1])
    rng.restore(saved[2], gen)
    m2.arch_epoch(other, loop2, 2)
    assert torch.equal(m2.mask, m.mask) and m2.records == m.records
    assert other.decisions() == net.decisions()


@pytest.mark.parametrize("files", [["methods/is_darts.gin", "selectors/magnitude.gin"],
                                   ["selectors/information.gin"]], ids=["method", "criterion"])
def test_is_darts_end_to_end_in_tiny_mode(files, tracking, tmp_path, capsys, clean_gin):
    rc, out, err = run_cli(argv("quickstart.gin", *files, TINY, binds=[
        "dataset.limit = 16", "run.experiment_name = 'isd'", "select.tune_epochs = 0"]),
        capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "isd")
    key = "method" if files[0].startswith("methods") else "selector"
    assert run.data.tags[key] == {"method": "is_darts", "selector": "information"}[key]
    assert "genotype: Genotype(normal=" in out
    check_report(tmp_path, capsys, "isd", run.data.tags["method"], run.data.tags["selector"])


@pytest.mark.parametrize("exp", ["is_darts_cifar10", "is_darts_nb201_cifar10"])
def test_the_experiment_files_end_to_end_in_tiny_mode(exp, data_root, nb201_table, tracking,
                                                      tmp_path, capsys, clean_gin):
    from helpers import GIN_DIR, tiny_argv

    rc, out, err = run_cli(tiny_argv(GIN_DIR / f"{exp}.gin", data_root, "supernet.layers = 1"
                                     if "nb201" in exp else "dataset.limit = 16",
                                     f"lookup.table = '{nb201_table}'"), capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, exp)
    assert run.data.tags["method"] == "is_darts" and run.info.status == "FINISHED"
    assert ("bench/test_acc" in run.data.metrics) == ("nb201" in exp)
    assert ("test_error" in run.data.metrics) != ("nb201" in exp)  # DARTS space: retrained
    steps = method_records(tracking, run.info.run_id, tmp_path)
    cells = {"cell"} if "nb201" in exp else {"normal", "reduce"}
    assert {r["cell"] for r in steps if "pruned" in r} == cells  # each cell type, step 0
