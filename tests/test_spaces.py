"""Search spaces, evaluation network and supernet: shapes, parameter counts, mixing weights.

Parity tests compare against the paper's public code (darts-pt), which lives read-only next to
the repository at ../shared/reference/darts-pt; they are skipped when that folder is absent.
"""
import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spaces.cell import SearchSpace, get_space, spaces
from spaces.darts.space import DARTS_OPS, NUM_EDGES, STEPS, edge_inputs, node_edges
from spaces.darts.genotype import Genotype
from spaces.cell import count_params
from spaces.darts.network import EvalNetwork, param_size
from spaces.darts.supernet import DartsSupernet as Supernet
from spaces.supernet import OPEN, PRUNED
from helpers import ROOT

REF_DIR = ROOT.parent / "shared/reference/darts-pt"

SPACE_NAMES = ("darts", "s1", "s2", "s3", "s4")
REF_SPACE = {"darts": "s5", "s1": "s1", "s2": "s2", "s3": "s3", "s4": "s4"}

# Published genotypes from the reference genotypes file: DARTS space (s5) and S1-S4,
# searched on CIFAR-10, CIFAR-100 and SVHN.
REF_GENOTYPES = (
    "darts_pt_s5_0", "darts_pt_s5_1", "darts_pt_s5_2", "darts_pt_s5_3", "blank_pt_s5_0",
    "darts_pt_s1_1", "blank_pt_s1_1", "darts_pt_s2_1", "darts_pt_s2_svhn_1",
    "darts_pt_s3_1", "darts_pt_s3_c100_1", "darts_pt_s4_2",
)

SEP = ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)
ALL_SEP = Genotype(SEP * 4, SEP * 4)


def _millions(n):
    return round(n / 1e6, 3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny CPU convolutions: intra-op threading only adds overhead (and stalls badly when the
    machine is shared), so run this module single-threaded and restore the setting after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# reference import
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ref():
    """The reference's sota.cnn modules; sys.path is restored after the import."""
    if not (REF_DIR / "sota" / "cnn" / "model_search.py").is_file():
        pytest.skip(f"reference darts-pt not found at {REF_DIR}")
    saved = list(sys.path)
    sys.path.insert(0, str(REF_DIR))
    try:
        mods = {name: importlib.import_module(f"sota.cnn.{name}")
                for name in ("genotypes", "spaces", "model", "model_search")}
    finally:
        sys.path[:] = saved
    # never the project's own `spaces` package
    assert Path(mods["spaces"].__file__).resolve().is_relative_to(REF_DIR.resolve())
    return types.SimpleNamespace(**mods)


@pytest.fixture
def cpu_ref(monkeypatch):
    """Make the reference's hard-coded `.cuda()` a no-op and undo its global side effects."""
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
    # model_search.Network assigns nn.Module.PRIMITIVES; monkeypatch removes it afterwards
    monkeypatch.setattr(nn.Module, "PRIMITIVES", None, raising=False)


def _ref_genotype(ref, name):
    g = getattr(ref.genotypes, name)
    return Genotype(tuple(g.normal), tuple(g.reduce))


def _ref_supernet(ref, space_name, C=16, layers=8, num_classes=10):
    args = types.SimpleNamespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4)
    prims = ref.spaces.spaces_dict[REF_SPACE[space_name]]
    return ref.model_search.Network(C, num_classes, layers, nn.CrossEntropyLoss(), prims, args)


# --------------------------------------------------------------------------------------------
# 6. the imported packages are this repository's (PyPI has unrelated runner/spaces/tracking)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["runner", "spaces", "tracking", "spaces.darts.network",
                                  "spaces.supernet", "spaces.darts.genotype"])
def test_modules_come_from_this_repo(name):
    mod = importlib.import_module(name)
    path = Path(mod.__file__).resolve()
    assert path.is_relative_to(ROOT), f"{name} imported from {path}, not from {ROOT}"
    assert path.relative_to(ROOT).parts[0] == name.split(".")[0]


# --------------------------------------------------------------------------------------------
# 1. op lists
# --------------------------------------------------------------------------------------------

def test_space_registry_and_get_space():
    SPACES = spaces()
    assert set(SPACES) == set(SPACE_NAMES) | {"nb201"}  # NAS-Bench-201: tests/test_nb201.py
    assert {n for n, s in SPACES.items() if s.family.name == "darts"} == set(SPACE_NAMES)
    for name in SPACE_NAMES:
        space = get_space(name)
        assert space is SPACES[name]
        assert isinstance(space, SearchSpace) and space.name == name
        assert len(space.ops("normal")) == len(space.ops("reduce")) == NUM_EDGES == 14
        for rows in (space.ops("normal"), space.ops("reduce")):
            assert all(isinstance(r, tuple) and len(r) == space.num_ops for r in rows)
    assert [get_space(n).num_ops for n in SPACE_NAMES] == [7, 2, 2, 3, 2]
    with pytest.raises(ValueError):
        get_space("s5")
    with pytest.raises(ValueError):
        get_space("DARTS")


def test_edge_layout():
    assert STEPS == 4
    assert node_edges() == [[0, 1], [2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12, 13]]
    assert edge_inputs() == [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2),
                             (4, 3), (5, 0), (5, 1), (5, 2), (5, 3), (5, 4)]


def test_darts_ops_hand_checked():
    assert DARTS_OPS == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                         "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert get_space("s3").ops("normal")[0] == ("none", "skip_connect", "sep_conv_3x3")
    assert get_space("s4").ops("reduce")[13] == ("noise", "sep_conv_3x3")
    s1 = get_space("s1")
    assert s1.ops("normal")[5] == ("max_pool_3x3", "skip_connect")
    assert s1.ops("reduce")[1] == ("max_pool_3x3", "dil_conv_3x3")
    assert not s1.has("none") and get_space("s3").has("none")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_op_lists_equal_reference(ref, name):
    prims = ref.spaces.spaces_dict[REF_SPACE[name]]
    space = get_space(name)
    assert space.ops("normal") == tuple(tuple(r) for r in prims["primitives_normal"])
    assert space.ops("reduce") == tuple(tuple(r) for r in prims["primitives_reduct"])
    if name == "darts":
        assert DARTS_OPS == tuple(ref.spaces.PRIMITIVES)


# --------------------------------------------------------------------------------------------
# 2. / 4. evaluation network parameter counts
# --------------------------------------------------------------------------------------------

def _ref_eval_count(ref, genotype_nt, C, layers, num_classes):
    with torch.device("meta"):
        net = ref.model.Network(C, num_classes, layers, True, genotype_nt)
    return sum(p.numel() for n, p in net.named_parameters()
               if not n.startswith("auxiliary_head"))


@pytest.mark.parametrize("C,layers,num_classes", [(36, 20, 10), (16, 8, 100), (16, 8, 10)])
@pytest.mark.parametrize("gname", REF_GENOTYPES)
def test_eval_param_count_equals_reference(ref, gname, C, layers, num_classes):
    g = _ref_genotype(ref, gname)
    want = _ref_eval_count(ref, getattr(ref.genotypes, gname), C, layers, num_classes)
    with torch.device("meta"):
        ours = count_params(EvalNetwork(g, C, layers, num_classes, auxiliary=True))
    assert ours == want
    assert param_size(g, C, layers, num_classes) == want


def test_eval_param_count_all_sep_equals_reference(ref):
    nt = ref.genotypes.Genotype(normal=list(ALL_SEP.normal), normal_concat=range(2, 6),
                                reduce=list(ALL_SEP.reduce), reduce_concat=range(2, 6))
    for nc in (10, 100):
        assert param_size(ALL_SEP, 36, 20, nc) == _ref_eval_count(ref, nt, 36, 20, nc)


@pytest.mark.parametrize("gname,millions", [("darts_pt_s5_0", 2.851), ("darts_pt_s5_3", 3.328)])
def test_eval_param_size_spec_anchors(ref, gname, millions):
    g = _ref_genotype(ref, gname)
    assert _millions(param_size(g, C=36, layers=20, num_classes=10)) == millions


def test_eval_param_size_anchor_darts_pt_s5_0_without_reference():
    """Same anchor as above, with the genotype written out (runs without the reference)."""
    g = Genotype(
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("dil_conv_3x3", 1),
         ("skip_connect", 0), ("skip_connect", 2), ("skip_connect", 0), ("max_pool_3x3", 4)),
        (("sep_conv_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_5x5", 1), ("dil_conv_3x3", 2),
         ("avg_pool_3x3", 0), ("max_pool_3x3", 2), ("sep_conv_3x3", 2), ("skip_connect", 4)))
    assert _millions(param_size(g)) == 2.851


@pytest.mark.parametrize("num_classes,millions", [(10, 4.702), (100, 4.754)])
def test_eval_param_size_all_sep_anchor(num_classes, millions):
    assert _millions(param_size(ALL_SEP, C=36, layers=20, num_classes=num_classes)) == millions


def test_param_size_equals_count_params_of_built_network():
    g = Genotype(
        (("skip_connect", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 0), ("skip_connect", 2),
         ("max_pool_3x3", 1), ("sep_conv_3x3", 3), ("dil_conv_5x5", 4), ("avg_pool_3x3", 0)),
        (("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 1),
         ("avg_pool_3x3", 0), ("skip_connect", 3), ("sep_conv_5x5", 4), ("skip_connect", 2)))
    for C, layers, nc in [(36, 20, 10), (16, 8, 100), (8, 5, 7)]:
        net = EvalNetwork(g, C, layers, nc, auxiliary=True)
        n = count_params(net)
        assert param_size(g, C, layers, nc) == n
        aux = sum(p.numel() for p in net.auxiliary_head.parameters())
        assert aux > 0 and n == sum(p.numel() for p in net.parameters()) - aux
        assert count_params(EvalNetwork(g, C, layers, nc, auxiliary=False)) == n
    # default arguments are the paper's C36 / L20 / 10 classes
    assert param_size(g) == param_size(g, 36, 20, 10)


def test_param_size_depends_on_ops():
    skip = (("skip_connect", 0), ("skip_connect", 1)) * 4
    assert param_size(Genotype(skip, skip)) < param_size(ALL_SEP)
    assert param_size(ALL_SEP, num_classes=100) - param_size(ALL_SEP, num_classes=10) \
        == 90 * (4 * 4 * 36 + 1)  # classifier: (4 * 4C inputs + bias) per extra class


# --------------------------------------------------------------------------------------------
# 7. evaluation network forward shapes and numerical parity
# --------------------------------------------------------------------------------------------

def test_eval_forward_shapes_aux_train_and_eval():
    torch.manual_seed(0)
    g = Genotype(
        (("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0), ("max_pool_3x3", 2),
         ("avg_pool_3x3", 1), ("sep_conv_5x5", 3), ("dil_conv_5x5", 4), ("skip_connect", 0)),
        (("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 1), ("skip_connect", 2),
         ("avg_pool_3x3", 0), ("dil_conv_5x5", 3), ("sep_conv_5x5", 4), ("skip_connect", 2)))
    net = EvalNetwork(g, C=8, layers=8, num_classes=10, auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    net.drop_path_prob = 0.2
    logits, aux = net(x)
    assert logits.shape == (2, 10)
    assert aux is not None and aux.shape == (2, 10)
    assert torch.isfinite(logits).all() and torch.isfinite(aux).all()
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is None
    # no auxiliary head: never aux logits
    net2 = EvalNetwork(g, C=8, layers=8, num_classes=3, auxiliary=False).train()
    logits, aux = net2(x)
    assert logits.shape == (2, 3) and aux is None


def test_eval_forward_in_channels():
    net = EvalNetwork(ALL_SEP, C=4, layers=5, num_classes=4, in_channels=1).eval()
    with torch.no_grad():
        logits, aux = net(torch.randn(2, 1, 16, 16))
    assert logits.shape == (2, 4) and aux is None


def _copy_by_order(dst_tensors, src_tensors):
    dst, src = list(dst_tensors), list(src_tensors)
    assert [tuple(t.shape) for t in dst] == [tuple(t.shape) for t in src]
    with torch.no_grad():
        for d, s in zip(dst, src):
            d.copy_(s)


@pytest.mark.parametrize("gname", ["darts_pt_s5_0", "darts_pt_s1_1", "darts_pt_s3_c100_1"])
def test_eval_forward_matches_reference(ref, gname):
    """Same weights (copied in registration order) -> same logits and aux logits."""
    torch.manual_seed(1)
    nt = getattr(ref.genotypes, gname)
    theirs = ref.model.Network(16, 10, 8, True, nt)
    theirs.drop_path_prob = 0.0
    ours = EvalNetwork(_ref_genotype(ref, gname), 16, 8, 10, auxiliary=True)
    _copy_by_order(ours.parameters(), theirs.parameters())
    _copy_by_order(ours.buffers(), theirs.buffers())
    x = torch.randn(2, 3, 32, 32)
    ours.train(), theirs.train()
    ours.drop_path_prob = 0.0
    with torch.no_grad():
        lo, ao = ours(x)
        lt, at = theirs(x)
    torch.testing.assert_close(lo, lt, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ao, at, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# 3. supernet parameter counts, forward shapes, parity
# --------------------------------------------------------------------------------------------

def _weight_count(net):
    return sum(p.numel() for p in net.weights())


@pytest.mark.parametrize("name,exact,millions", [("darts", 1930618, 1.931), ("s2", 665466, 0.666)])
def test_supernet_weight_count_spec_anchors(name, exact, millions):
    """C16/L8 supernet sizes, 1.931 M (DARTS space) and 0.666 M (S2). The exact counts equal the
    reference supernet's (checked against the reference code below). 0.666 M is 665,466 rounded
    half-up via 0.6655; plain rounding of 665,466 gives 0.665, so that anchor is compared to
    within 0.6e-3 M."""
    n = _weight_count(Supernet(get_space(name), C=16, layers=8))
    assert n == exact
    assert abs(n / 1e6 - millions) <= 0.6e-3
    if name == "darts":
        assert _millions(n) == millions


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_supernet_weights_exclude_alphas(name):
    net = Supernet(get_space(name), C=4, layers=3)
    ws = net.weights()
    assert all(w is not net.alphas for w in ws)
    assert len(ws) == len(list(net.parameters())) - 1
    assert net.alphas.shape == (2, NUM_EDGES, get_space(name).num_ops)
    assert net.alphas.requires_grad


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_supernet_weight_count_equals_reference(ref, cpu_ref, name):
    theirs = _ref_supernet(ref, name)
    want = sum(p.numel() for p in theirs.parameters())  # reference alphas are not parameters
    ours = Supernet(get_space(name), C=16, layers=8)
    assert _weight_count(ours) == want
    assert [tuple(p.shape) for p in ours.weights()] == [tuple(p.shape) for p in theirs.parameters()]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_supernet_forward_shapes(name):
    torch.manual_seed(0)
    net = Supernet(get_space(name), C=16, layers=8, num_classes=10)
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["darts", "s1", "s3"])
def test_supernet_forward_matches_reference(ref, cpu_ref, name):
    """Same op weights and alphas -> same logits as the reference supernet (train-mode BN)."""
    torch.manual_seed(2)
    theirs = _ref_supernet(ref, name, C=6, layers=5)
    ours = Supernet(get_space(name), C=6, layers=5)
    _copy_by_order(ours.weights(), theirs.parameters())
    with torch.no_grad():
        ours.alphas.normal_()
        theirs.alphas_normal.data.copy_(ours.alphas[0])
        theirs.alphas_reduce.data.copy_(ours.alphas[1])
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        lo = ours(x)
        lt = theirs(x)
    torch.testing.assert_close(lo, lt, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["darts", "s1", "s2", "s3"])
def test_supernet_genotype_matches_reference_parse(ref, cpu_ref, name):
    """Our magnitude parse of the supernet's softmax equals the reference's genotype()."""
    theirs = _ref_supernet(ref, name, C=4, layers=3)
    ours = Supernet(get_space(name), C=4, layers=3)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        with torch.no_grad():
            ours.alphas.copy_(torch.randn(ours.alphas.shape, generator=gen))
            theirs.alphas_normal.data.copy_(ours.alphas[0])
            theirs.alphas_reduce.data.copy_(ours.alphas[1])
        g = theirs.genotype()
        assert ours.genotype() == Genotype(tuple(g.normal), tuple(g.reduce))


# --------------------------------------------------------------------------------------------
# 5. mixing weights and decisions
# --------------------------------------------------------------------------------------------

def test_mixing_weights_decided_pruned_open_and_alpha_grads():
    torch.manual_seed(0)
    net = Supernet(get_space("darts"), C=4, layers=3, num_classes=5)
    with torch.no_grad():
        net.alphas.normal_()
    net.fix_edge("normal", 3, 2)
    net.fix_edge("reduce", 0, 6)
    net.prune_edge("reduce", 5)
    net.prune_edge("normal", 11)

    dec = net.decisions()
    assert dec[0][3] == 2 and dec[1][0] == 6
    assert dec[1][5] == PRUNED and dec[0][11] == PRUNED
    closed = {(0, 3), (1, 0), (1, 5), (0, 11)}
    assert all(dec[c][e] == OPEN for c in range(2) for e in range(NUM_EDGES)
               if (c, e) not in closed)

    w = net.mixing_weights()
    assert w.shape == (2, NUM_EDGES, 7)
    assert torch.equal(w[0, 3], F.one_hot(torch.tensor(2), 7).float())
    assert torch.equal(w[1, 0], F.one_hot(torch.tensor(6), 7).float())
    assert torch.equal(w[1, 5], torch.zeros(7))
    assert torch.equal(w[0, 11], torch.zeros(7))
    soft = F.softmax(net.alphas.detach(), dim=-1)
    for c in range(2):
        for e in range(NUM_EDGES):
            if (c, e) not in closed:
                torch.testing.assert_close(w[c, e].detach(), soft[c, e])
                assert not torch.equal(w[c, e].detach(), soft[c, e].new_full((7,), 1 / 7))

    x = torch.randn(2, 3, 16, 16)
    loss = F.cross_entropy(net(x), torch.tensor([1, 3]))
    loss.backward()
    g = net.alphas.grad
    assert g is not None
    for c, e in closed:
        assert torch.equal(g[c, e], torch.zeros(7)), (c, e)
    # open edges do get gradient
    assert g[0, 0].abs().sum() > 0 and g[1, 13].abs().sum() > 0
    assert net.stem[0].weight.grad is not None and net.stem[0].weight.grad.abs().sum() > 0


def test_fixed_edge_ignores_its_alphas():
    """Fixing an edge changes the output; afterwards that edge's alphas have no effect."""
    torch.manual_seed(0)
    net = Supernet(get_space("s2"), C=4, layers=3).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        base = net(x)
        net.fix_edge("normal", 0, 1)
        fixed = net(x)
        net.alphas[0, 0].copy_(torch.tensor([100.0, -100.0]))  # alphas of a fixed edge are ignored
        assert torch.equal(net(x), fixed)
    assert not torch.allclose(base, fixed)


def test_supernet_genotype_from_mixing_weights():
    net = Supernet(get_space("s2"), C=4, layers=3)
    with torch.no_grad():
        net.alphas.zero_()  # uniform 0.5/0.5 everywhere: every strength ties
    skip = (("skip_connect", 0), ("skip_connect", 1)) * 4
    assert net.genotype() == Genotype(skip, skip)
    net.fix_edge("normal", 4, 1)   # node 3 (edges 2-4): input 2 one-hot sep_conv -> strongest
    net.prune_edge("normal", 9)    # node 5 (edges 9-13): input 0 strength 0 -> dropped
    net.fix_edge("reduce", 8, 0)   # node 4 (edges 5-8): input 3 fixed to skip (strength 1)
    g = net.genotype()
    assert g.normal == (("skip_connect", 0), ("skip_connect", 1),
                        ("sep_conv_3x3", 2), ("skip_connect", 0),
                        ("skip_connect", 0), ("skip_connect", 1),
                        ("skip_connect", 1), ("skip_connect", 2))
    assert g.reduce == (("skip_connect", 0), ("skip_connect", 1),
                        ("skip_connect", 0), ("skip_connect", 1),
                        ("skip_connect", 3), ("skip_connect", 0),
                        ("skip_connect", 0), ("skip_connect", 1))


def test_decision_state_survives_state_dict_round_trip():
    a = Supernet(get_space("s3"), C=4, layers=3)
    a.fix_edge("reduce", 7, 2)
    a.prune_edge("normal", 1)
    b = Supernet(get_space("s3"), C=4, layers=3)
    assert b.decisions()[1][7] == OPEN  # populate the host cache before loading
    b.load_state_dict(a.state_dict())
    assert b.decisions()[1][7] == 2 and b.decisions()[0][1] == PRUNED
    assert torch.equal(b.alphas, a.alphas)
    assert torch.equal(b.mixing_weights(), a.mixing_weights())


# --------------------------------------------------------------------------------------------
# genotype strings: ours print exactly like the reference's namedtuples
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gname", REF_GENOTYPES)
def test_genotype_str_matches_reference(ref, gname):
    nt = getattr(ref.genotypes, gname)
    ours = _ref_genotype(ref, gname)
    assert str(ours) == str(nt)
    assert Genotype.parse(str(nt)) == ours
