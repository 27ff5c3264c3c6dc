"""Shapley values of operations (runner/selection/shapley.py) and Shapley-NAS's alpha step
(runner/methods/shapley_nas.py): the estimate against exact enumeration, efficiency,
truncation, the update against a hand computation, and the criterion and method end to end."""
import itertools
import math

import numpy as np
import pytest
import torch

from fixtures import tiny_images
from helpers import TINY, argv, check_report, experiment_runs, run_cli
from runner.methods.shapley_nas import momentum_step, normalised
from runner.selection.shapley import accuracy, contributions, estimate, score


def exact_shapley(value, n):
    """Shapley values by enumerating coalitions: v(S) is the value with only S present,
    i.e. value(removed = the others)."""
    def v(present):
        return value(tuple(i for i in range(n) if i not in present))

    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi[i] += w * (v(set(s) | {i}) - v(set(s)))
    return phi


def toy_game(removed):
    """A non-additive game of 3 players: synergy between 0 and 1, 2 alone is redundant with 0."""
    present = {0, 1, 2} - set(removed)
    return 10.0 * (0 in present) + 20.0 * (1 in present) + 30.0 * ({0, 1} <= present) \
        + 5.0 * (2 in present and 0 not in present)


def test_all_orders_give_the_exact_shapley_values_of_a_game():
    orders = list(itertools.permutations(range(3)))
    table = estimate(lambda j: toy_game, orders)
    assert table.shape == (3, 6)
    assert np.allclose(table.mean(1), exact_shapley(toy_game, 3))


def test_one_order_sums_to_the_full_value_minus_the_empty_one():
    for order in itertools.permutations(range(3)):
        drops, full = contributions(toy_game, list(order))
        assert full == toy_game(()) and drops.sum() == pytest.approx(full - toy_game((0, 1, 2)))


def test_an_order_is_cut_where_the_value_falls_below_the_threshold():
    values = {(): 100.0, (2,): 90.0, (2, 0): 40.0, (2, 0, 1): 0.0}
    drops, _ = contributions(lambda removed: values[removed], [2, 0, 1], threshold=0.5)
    assert drops.tolist() == [50.0, 0.0, 10.0]  # 0 crosses 50 and keeps its drop; 1 is cut
    drops, _ = contributions(lambda removed: values[removed], [2, 0, 1], threshold=None)
    assert drops.tolist() == [50.0, 40.0, 10.0]


def test_the_score_is_mean_minus_std_over_orders():
    table = np.array([[1.0, 3.0], [2.0, 2.0]])
    assert score(table).tolist() == [2.0 - 1.0, 2.0]


def test_on_a_real_supernet_edge_the_estimate_equals_enumeration():
    """Three ops of one DARTS-space edge as the players, the supernet's accuracy on one fixed
    batch as the game (BN on batch statistics, as the criterion scores; labels the full
    supernet gets right, so removals cost)."""
    from spaces.cell import get_space

    torch.manual_seed(0)
    space = get_space("darts")
    net = space.family.supernet(space, 1e-3, C=4, layers=3, num_classes=10, in_channels=3)
    data = tiny_images(64, seed=1)
    x = data.prepare(data.train_x, train=False)
    with torch.no_grad():
        y = net.train()(x).argmax(1)
    cell = net.space.cell.types[0]
    players = [(cell, 0, k) for k in (3, 4, 5)]
    game = {r: accuracy(net, x, y, [players[i] for i in r])
            for n in range(4) for r in itertools.permutations(range(3), n)}

    def value(removed):
        return game[removed]
    orders = list(itertools.permutations(range(3)))
    table = estimate(lambda j: value, orders)
    assert np.allclose(table.mean(1), exact_shapley(value, 3))
    assert game[()] == 100.0 and game[(0, 1, 2)] < 100.0  # the removals cost accuracy
    # a node whose every input is removed outputs zeros instead of failing
    assert 0.0 <= accuracy(net, x, y, [(cell, 0, None), (cell, 1, None)]) < 100.0


def test_the_alpha_step_against_a_hand_computation():
    values = torch.tensor([[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [1.0, 3.0]]],
                          dtype=torch.float64)
    buffer = torch.full_like(values, 0.5)
    alphas = torch.zeros_like(values)
    new = momentum_step(alphas, buffer, values, momentum=0.8, step_size=0.1)
    v0 = values[0]
    hand0 = (v0 - 3.0) / math.sqrt(((v0 - 3.0) ** 2).sum() / 3)  # z-score, ddof 1
    assert torch.allclose(new[0], 0.8 * 0.5 + 0.2 * hand0)
    assert torch.allclose(alphas, 0.1 * new)
    assert torch.allclose(normalised(values[1]).std(), torch.tensor(1.0, dtype=torch.float64))


def test_scores_all_equal_add_no_step_of_their_own_and_no_nan():
    values = torch.stack([torch.zeros(2, 2), torch.full((2, 2), 0.25)]).double()
    buffer, alphas = torch.full_like(values, 0.5), torch.zeros_like(values)
    new = momentum_step(alphas, buffer, values, momentum=0.8, step_size=0.1)
    assert torch.equal(new, torch.full_like(values, 0.4))  # the momentum only
    assert torch.isfinite(alphas).all() and torch.allclose(alphas, 0.1 * new)


def test_the_method_steps_alpha_only_after_the_warmup_and_resumes_the_same_step():
    import copy

    from fixtures import tiny_supernet
    from runner.methods.shapley_nas import ShapleyNas
    from runner.training.loops import Loop
    from runner.training import rng

    net, data = tiny_supernet("s2"), tiny_images(32)
    gen = torch.Generator().manual_seed(0)

    def method_and_loop(net):
        m = ShapleyNas(warmup_epochs=1, samples=2, batch_size=8)
        m.setup(net)
        return m, Loop(net, data, gen, data.search_halves()[1], m, batch_size=8)
    m, loop = method_and_loop(net)
    before = net.alphas.detach().clone()
    m.arch_epoch(net, loop, 0)  # warm-up: weights only
    assert torch.equal(net.alphas.detach(), before) and m.buffer is None
    m.arch_epoch(net, loop, 1)
    assert torch.allclose((net.alphas.detach() - before).double(), 0.1 * m.buffer, atol=1e-6)
    # a checkpoint (supernet, method state, generator) continues with the same step
    saved_net, saved_state, saved_rng = copy.deepcopy(net), copy.deepcopy(m.state_dict()), \
        rng.capture(gen)
    m.arch_epoch(net, loop, 2)
    m2, loop2 = method_and_loop(saved_net)
    m2.load_state_dict(saved_state)
    rng.restore(saved_rng, gen)
    m2.arch_epoch(saved_net, loop2, 2)
    assert torch.equal(saved_net.alphas.detach(), net.alphas.detach())


@pytest.mark.parametrize("files", [["selectors/shapley.gin"],
                                   ["methods/shapley.gin", "selectors/magnitude.gin"]],
                         ids=["criterion", "method"])
def test_shapley_end_to_end_in_tiny_mode(files, tracking, tmp_path, capsys, clean_gin):
    rc, out, err = run_cli(argv("quickstart.gin", *files, TINY, binds=[
        "dataset.limit = 16", "run.experiment_name = 'shap'", "select.tune_epochs = 0"]),
        capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "shap")
    tags = run.data.tags
    if files[0].startswith("selectors"):
        assert tags["selector"] == "shapley"
        import pandas as pd

        table = pd.read_csv(tracking.download_artifacts(run.info.run_id,
                                                        "selection/decisions.csv", str(tmp_path)))
        assert "masked_shapley" in table.columns and (table.kind == "op").sum() == 28
    else:
        assert tags["method"] == "shapley_nas"
    check_report(tmp_path, capsys, "shap", tags["method"], tags["selector"])


def test_the_nb201_experiment_file_end_to_end_in_tiny_mode(data_root, nb201_table, tracking,
                                                          capsys, clean_gin):
    from helpers import GIN_DIR, tiny_argv

    rc, out, err = run_cli(tiny_argv(GIN_DIR / "shapley_nas_nb201_cifar10.gin", data_root,
                                     "supernet.layers = 1", f"lookup.table = '{nb201_table}'"),
                           capsys)
    assert rc == 0, err
    (run,) = experiment_runs(tracking, "shapley_nas_nb201_cifar10")
    assert run.data.tags["method"] == "shapley_nas" and "bench/test_acc" in run.data.metrics
