"""Zero-Cost-PT against the authors' code (../shared/reference/zerocost-pt, skipped when absent):
the same weights and batch give the same NASWOT score of every masked supernet, the same chosen
op and dropped edges, on the NAS-Bench-201 cell and the DARTS cell; and the same
post-validation score of a candidate network."""
import sys
import types
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from runner.selection.pool import validation_score
from runner.selection.proxies import naswot
from runner.selection.zero_cost import ZeroCost
from spaces.cell import get_space
from spaces.darts.supernet import DartsSupernet
from spaces.nb201.genotype import Structure
from spaces.nb201.network import Network as Nb201Network
from spaces.nb201.supernet import Nb201Supernet

REF = Path(__file__).resolve().parents[1].parent / "shared/reference/zerocost-pt"
pytestmark = pytest.mark.skipif(not REF.exists(), reason="reference code not beside the repo")
PACKAGES = ("nasbench201", "sota", "Scorers", "Layers", "pycls", "op_score")


def _purge():
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES:
            del sys.modules[name]


@pytest.fixture
def ref(monkeypatch):
    """The reference importable, its `.cuda()` calls a no-op (CPU here); other reference trees
    (darts-pt has packages of the same names) out of the module cache before and after."""
    _purge()
    monkeypatch.syspath_prepend(str(REF))
    monkeypatch.syspath_prepend(str(REF / "nasbench201"))  # their `from op_score import ...`
    # foresight (not on the package index) is imported at the top only: a stand-in module
    stand_in = types.ModuleType("foresight")
    stand_in.pruners = types.ModuleType("foresight.pruners")
    monkeypatch.setitem(sys.modules, "foresight", stand_in)
    monkeypatch.setitem(sys.modules, "foresight.pruners", stand_in.pruners)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
    yield
    _purge()


def copy_weights(src, dst):
    """Parameters copied in registration order (both build the same modules in the same order;
    fresh BN statistics are equal already)."""
    ours = [p for n, p in src.named_parameters() if n != "alphas"]
    theirs = list(dst.parameters())
    assert [p.shape for p in ours] == [p.shape for p in theirs]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.copy_(a)


def batch(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def args(**kw):
    return Namespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4, nesterov=False,
                     dataset="cifar10", proj_crit="jacob", **kw)


def nb201_pair(seed=0):
    from nasbench201.cell_operations import SearchSpaceNames
    from nasbench201.search_model_darts_proj import TinyNetworkDartsProj

    torch.manual_seed(seed)
    ours = Nb201Supernet(get_space("nb201"), C=4, layers=1, num_classes=10)
    theirs = TinyNetworkDartsProj(C=4, N=1, max_nodes=4, num_classes=10,
                                  criterion=nn.CrossEntropyLoss(),
                                  search_space=SearchSpaceNames["nas-bench-201"], args=args())
    copy_weights(ours, theirs)
    theirs._arch_parameters.data.copy_(ours.alphas.data[0])
    return ours, theirs


def test_nb201_masked_scores_and_choices_equal_the_authors(ref):
    from nasbench201.op_score import Jocab_Score

    ours, theirs = nb201_pair()
    x, y = batch()
    crit = ZeroCost()
    for e in range(6):  # fixed order, one batch: the authors' pt_project with 'order'
        mine = [crit.score(ours, x, y, [(0, e, k)]) for k in range(5)]
        their = []
        for k in range(5):
            w = theirs.get_projected_weights()
            w[e] = w[e] * (torch.arange(5) != k)
            their.append(Jocab_Score(theirs, x, y, weights=w))
        np.testing.assert_allclose(mine, their, rtol=1e-5)
        k = crit.choose_op(ours, 0, e, [{"score": s} for s in mine])
        assert k == int(np.nanargmin(their))
        ours.fix_edge(0, e, k)
        theirs.project_op(e, k)
    assert str(ours.genotype()) == theirs.genotype().tostr()


def test_nb201_selection_equals_the_authors_pt_project(ref):
    from nasbench201.init_projection import pt_project

    ours, theirs = nb201_pair(seed=3)
    x, y = batch(seed=3)
    pt_project([(x, y)], theirs, args(edge_decision="order"))
    crit = ZeroCost()
    crit.fix_batch(x, y)
    for e in range(6):
        k = crit.choose_op(ours, 0, e, crit.op_scores(ours, 0, e, None))
        ours.fix_edge(0, e, k)
    assert str(ours.genotype()) == theirs.genotype().tostr()


def darts_pair(seed=0):
    from sota.cnn.model_search_darts_proj import DartsNetworkProj
    from sota.cnn.spaces import spaces_dict

    torch.manual_seed(seed)
    ours = DartsSupernet(get_space("darts"), C=4, layers=3, num_classes=10)
    theirs = DartsNetworkProj(4, 10, 3, nn.CrossEntropyLoss(), spaces_dict["s5"], args())
    copy_weights(ours, theirs)
    theirs.alphas_normal.data.copy_(ours.alphas.data[0])
    theirs.alphas_reduce.data.copy_(ours.alphas.data[1])
    return ours, theirs


def test_darts_cell_op_and_topology_tests_equal_the_authors(ref):
    from sota.cnn import init_projection as zc

    ours, theirs = darts_pair()
    x, y = batch(n=6, size=8)
    crit = ZeroCost()
    crit.fix_batch(x, y)
    a = args(edge_decision="order", proj_crit_normal="jacob", proj_crit_reduce="jacob")
    a.proj_crit = {"normal": "jacob", "reduce": "jacob"}
    for e in (2, 13):  # edges of each cell type, decided in turn
        for t, cell in enumerate(("normal", "reduce")):
            mine = [s["score"] for s in crit.op_scores(ours, cell, e, None)]
            their = []
            for k in range(len(mine)):
                w = theirs.get_projected_weights(cell)
                w[e] = w[e] * (torch.arange(len(mine)) != k)
                with torch.no_grad():
                    their.append(zc.Jocab_Score(theirs, cell, x, y, weights=w))
            np.testing.assert_allclose(mine, their, rtol=1e-5)
            _, k = zc.project_op(theirs, x, y, a, cell, selected_eid=e)
            assert crit.choose_op(ours, cell, e, [{"score": s} for s in mine]) == k
            ours.fix_edge(cell, e, k)
            theirs.project_op(e, k, cell)
    a.edge_decision = "reverse"  # their topology test on the last node
    for cell in ("normal", "reduce"):
        nid, kept = zc.project_edge(theirs, x, y, a, cell)
        mine, _ = crit.keep_edges(ours, cell, ours.space.cell.node_edges()[nid + 1], None)
        assert sorted(mine) == sorted(kept)


def test_nb201_post_validation_score_equals_the_authors(ref):
    from nasbench201.cell_infers.tiny_network import TinyNetwork
    from nasbench201.genotypes import Structure as TheirStructure
    from Scorers.scorer import Jocab_Scorer

    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    torch.manual_seed(0)
    ours = Nb201Network(Structure.parse(arch), C=4, N=1, num_classes=10)
    theirs = TinyNetwork(4, 1, TheirStructure.str2structure(arch), 10)
    copy_weights(ours, theirs)
    batches = [batch(seed=s) for s in range(3)]
    scorer = Jocab_Scorer(0)
    theirs.to = lambda *a, **k: theirs  # its move to a GPU: a no-op here
    scorer.setup_hooks(theirs, 8)
    their = sum(scorer.score(theirs, x, y) for x, y in batches)
    assert validation_score(ours, batches, naswot) == pytest.approx(their, rel=1e-5)
