"""Zero-Cost-PT's selection rules on the real supernets: which op wins, which edge is dropped,
the edge orders, the settings' errors, and that nothing is trained."""
import math

import pytest
import torch

from fixtures import tiny_images, tiny_supernet
from memory_tracker import MemoryTracker
from runner.methods.darts import Darts
from runner.selection.select import select
from runner.selection.zero_cost import ZeroCost


def run(net, order="random", seed=0, **crit):
    method = Darts()
    method.setup(net)
    gen = torch.Generator().manual_seed(seed)
    return select(net, method, tiny_images(32), MemoryTracker(), gen, seed,
                  criterion=ZeroCost(batch_size=8, **crit), tune_epochs=0, edge_order=order)


def test_the_op_whose_removal_scores_lowest_wins_and_nan_never_does():
    crit = ZeroCost()
    scores = [{"score": s} for s in (3.0, math.nan, 1.0, 1.0, 2.0)]
    assert crit.choose_op(None, 0, 0, scores) == 2  # the first of equal minima
    assert crit.choose_op(None, 0, 0, [{"score": math.nan}, None, {"score": 5.0}]) == 2


def test_selection_trains_nothing_and_logs_a_score_per_candidate_op():
    net = tiny_supernet("s2")
    before = {k: v.clone() for k, v in net.state_dict().items() if k != "decision"}
    genotype, records = run(net)
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    ops = [r for r in records if r["kind"] == "op"]
    assert len(ops) == 2 * 14 and all(len(r["scores"]) == 2 for r in ops)
    for r in ops:
        k = r["candidates"].index(r["chosen"])
        assert r["scores"][k]["score"] == min(s["score"] for s in r["scores"])
    assert str(genotype) == records[-1]["genotype"]


def test_topology_drops_the_edge_whose_removal_scores_highest():
    _, records = run(tiny_supernet("s2"))
    for r in (r for r in records if r["kind"] == "topology"):
        for rnd in r["scores"]:
            scores = {int(e): s["score"] for e, s in rnd["scores"].items()}
            worst = max(scores.values())
            assert rnd["dropped"] == max(e for e, s in scores.items() if s == worst)
        assert len(r["chosen"]) == 2


def test_edge_orders():
    def order(how):
        _, records = run(tiny_supernet("s2"), how)
        return [r["where"] for r in records if r["kind"] == "op" and r["cell"] == "normal"]

    assert order("reverse") == list(range(13, -1, -1))
    assert order("fixed") == list(range(14))
    assert sorted(order("random")) == list(range(14)) and order("random") != list(range(14))


class Table:
    """Known op scores per edge, in the shape a criterion returns them."""

    def __init__(self, table):
        self.table = table

    def op_scores(self, net, cell, edge, loop):
        return [{"score": s} for s in self.table[edge]]

    rank = ZeroCost.rank


@pytest.mark.parametrize("order, edge", [("global_op_greedy", 1), ("global_edge_greedy", 2)])
def test_global_orders_pick_the_edge_of_best_op_or_best_mean(order, edge):
    from runner.selection.select import next_edge

    table = Table({0: [5.0, 4.0], 1: [1.0, 9.0], 2: [2.0, 2.5], 3: [1.0, 9.5]})
    e, scores = next_edge(None, 0, [0, 1, 2, 3], table, None, None, order)
    assert e == edge and scores == table.op_scores(None, 0, edge, None)


def test_the_same_seed_gives_the_same_decisions():
    a = [r["chosen"] for r in run(tiny_supernet("s2"), seed=4)[1]]
    b = [r["chosen"] for r in run(tiny_supernet("s2"), seed=4)[1]]
    assert a == b


@pytest.mark.parametrize("kw, match", [
    ({"proxy": "acc"}, "unknown zero-cost proxy 'acc'"),
    ({"zeroed_ops": "drop"}, "ZeroCost.zeroed_ops must be one of"),
    ({"batch_per": "epoch"}, "ZeroCost.batch_per must be 'round' or 'decision'"),
    ({"relu_match": "all"}, "ZeroCost.relu_match must be one of")])
def test_bad_settings_are_one_line_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        ZeroCost(**kw)
