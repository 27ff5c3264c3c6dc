"""The NAS-Bench-201 cell family on the shared cell description: its supernet against the
reference's and the analytic 1.686 M weights, its discrete network against an independent
count, structure strings both ways, magnitude over all 5 ops (`none` included), and PT through
the same select() and runner as the DARTS spaces (6 op decisions, no topology test)."""
import importlib
import sys
import types

import pytest
import torch

from runner.methods.darts import Darts
from runner.selection.criteria import Magnitude, Perturbation
from runner.selection.select import select
from spaces.cell import get_space
from spaces.nb201.genotype import Structure
from spaces.nb201.network import param_size
from spaces.nb201.space import CELL, OPS
from spaces.supernet import Supernet

from fixtures import tiny_images
from helpers import GIN_DIR, ROOT, run_cli, tiny_argv
from memory_tracker import MemoryTracker

REF_DIR = ROOT.parent / "shared/reference/darts-pt"
SPACE = get_space("nb201")
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|" \
            "nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def supernet(num_classes=10, C=16, N=5, seed=0):
    torch.manual_seed(seed)
    return SPACE.family.supernet(SPACE, 1e-3, C=C, layers=N, num_classes=num_classes)


def test_the_cell_description():
    assert [f"{i}<-{j}" for i, j in CELL.edges] == sorted(f"{i}<-{j}" for i in range(1, 4)
                                                          for j in range(i))
    assert CELL.keep is None and CELL.none_selectable and CELL.types == ("cell",)
    assert SPACE.num_ops == 5 and SPACE.ops(0)[0] == OPS and OPS[0] == "none"
    net = supernet(C=4, N=1)
    assert net.alphas.shape == (1, 6, 5)  # one alpha shared by every cell
    assert len({m.where for m in net.mixed_ops()}) == 6 and len(net.mixed_ops()) == 3 * 6


def test_supernet_has_the_analytic_weight_count():
    assert round(sum(p.numel() for p in supernet().weights()) / 1e6, 3) == 1.686


@pytest.mark.skipif(not REF_DIR.exists(), reason="reference code not beside the repository")
@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_supernet_weight_count_equals_the_reference(num_classes, monkeypatch):
    monkeypatch.syspath_prepend(str(REF_DIR))
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # CPU only here
    for name in [m for m in sys.modules if m.startswith("nasbench201")]:
        monkeypatch.delitem(sys.modules, name)
    ref = importlib.import_module("nasbench201.search_model")
    args = types.SimpleNamespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4)
    theirs = ref.TinyNetwork(16, 5, 4, num_classes, None, list(OPS), args)
    assert sum(p.numel() for p in supernet(num_classes).weights()) == \
        sum(p.numel() for p in theirs.parameters())


def test_discrete_network_equals_an_independent_count():
    C, N = 16, 5
    bn, conv3 = (lambda c: 2 * c), (lambda ci, co: 9 * ci * co)
    fixed = conv3(3, C) + bn(C)  # stem
    for ci, co in ((C, 2 * C), (2 * C, 4 * C)):  # ResNet blocks: two ReLU-conv-BN, 1x1 shortcut
        fixed += conv3(ci, co) + bn(co) + conv3(co, co) + bn(co) + ci * co
    fixed += bn(4 * C) + 4 * C * 10 + 10  # last BN, classifier
    assert param_size(Structure.parse(ALL_NONE)) == fixed
    per_cell = {c: 6 * (conv3(c, c) + bn(c)) for c in (C, 2 * C, 4 * C)}
    assert param_size(Structure.parse(ALL_CONV3)) == fixed + N * sum(per_cell.values())
    mixed = Structure.parse("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|"
                            "nor_conv_3x3~1|none~2|")
    ops = {c: (c * c + bn(c)) + (conv3(c, c) + bn(c)) for c in (C, 2 * C, 4 * C)}
    assert param_size(mixed) == fixed + N * sum(ops.values())


def test_structure_strings_both_ways():
    s = Structure.parse(ALL_CONV3)
    assert str(s) == ALL_CONV3 and Structure.from_json(s.to_json()) == s
    assert s.nodes[2] == (("nor_conv_3x3", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2))
    assert Structure.parse(ALL_NONE).count("none") == 6
    with pytest.raises(ValueError, match="not a NAS-Bench-201 structure string"):
        Structure.parse("nor_conv_3x3~0")


def test_magnitude_is_the_argmax_over_all_five_ops_none_included():
    net = supernet(C=4, N=1)
    with torch.no_grad():
        net.alphas.zero_()
        for e in range(6):
            net.alphas[0, e, e % 5] = 1.0  # edge e prefers op e % 5; edge 0 and 5: `none`
    want = [OPS[e % 5] for e in range(6)]
    assert [op for node in net.genotype().nodes for op, _ in node] == want
    geno, records = select(net, _method(net), tiny_images(16), MemoryTracker(),
                           torch.Generator().manual_seed(0), 0, criterion=Magnitude(),
                           tune_epochs=0, batch_size=8)
    assert [op for node in geno.nodes for op, _ in node] == want
    assert [r["kind"] for r in records] == ["op"] * 6


def _method(net):
    m = Darts()
    m.setup(net)
    return m


def test_pt_decides_six_edges_with_none_a_candidate():
    net = supernet(C=4, N=1)
    geno, records = select(net, _method(net), tiny_images(16), MemoryTracker(),
                           torch.Generator().manual_seed(0), 0,
                           criterion=Perturbation(subset=8, batch_size=8), tune_epochs=1,
                           batch_size=8)
    assert [r["kind"] for r in records] == ["op"] * 6
    assert sorted(r["where"] for r in records) == list(range(6))
    assert all(r["scores"][0] is not None for r in records)  # `none` was scored
    assert Structure.parse(str(geno)) == geno
    assert [j for node in geno.nodes for _, j in node] == [0, 0, 1, 0, 1, 2]


def test_the_runner_searches_and_selects_nb201(data_root, tracking, capsys, clean_gin):
    argv = tiny_argv(GIN_DIR / "s3_cifar10.gin", data_root, "run.space = 'nb201'",
                     "run.do_retrain = False", "supernet.layers = 1")
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    (run,) = tracking.search_runs([tracking.get_experiment_by_name("s3_cifar10").experiment_id])
    tags = run.data.tags
    assert tags["space"] == "nb201" and run.info.status == "FINISHED"
    assert str(Structure.parse(tags["genotype"])) == tags["genotype"]
    assert f"genotype: {tags['genotype']}" in out and "NAS-Bench-201 C16/N5" in out
    history = tracking.get_metric_history(run.info.run_id, "select/cell_type")
    assert sorted(m.step for m in history) == list(range(6))


class Nb201Toy(Supernet):
    """NB201 decision state and masking with a known answer: logits = (sum over computed ops of
    w * usefulness) * onehot(label) + noise. Removing op k of an edge lowers the class signal by
    w_k * u_k, so PT must pick the op with the largest w * u; `none` (u = 0) only when every
    other op of the edge is harmful (u < 0)."""

    def __init__(self, usefulness):
        super().__init__(SPACE, alpha_init_std=0.0, usefulness=usefulness)

    def build(self, usefulness):
        self.u = usefulness  # [1, 6, 5]

    def forward(self, x, weights=None, active=None):
        w = self.mixing_weights() if weights is None else weights
        active = self.active_ops() if active is None else active
        signal = 1.0 + sum(w[0, e, k] * self.u[0, e, k] for e in range(6) for k in active[0][e])
        return signal * x[:, :10] + x[:, 10:]


@pytest.mark.parametrize("crit", ["acc", "loss"])
def test_pt_on_nb201_picks_the_op_whose_removal_hurts_most_none_included(crit):
    from test_select import ctx, toy_data

    u = torch.zeros(1, 6, 5)
    u[0, 2] = torch.tensor([0.0, 0.5, 1.0, 8.0, 0.2])  # nor_conv_3x3 carries edge 2's signal
    u[0, 4] = torch.tensor([0.0, -3.0, -2.0, -4.0, -1.0])  # every real op harms edge 4
    net, data = Nb201Toy(u), toy_data()
    pt = Perturbation(crit=crit, batch_size=256)
    for edge, expected in ((2, OPS.index("nor_conv_3x3")), (4, OPS.index("none"))):
        scores = pt.op_scores(net, "cell", edge, ctx(data))
        assert pt.choose_op(net, "cell", edge, scores) == expected, [s[crit] for s in scores]
    # masking `none` leaves the output as it is: its score is the unmasked supernet's
    unmasked = pt.op_scores(net, "cell", 4, ctx(data))[0]
    assert unmasked[crit] == pytest.approx(pt.measure(net, ctx(data), [])[crit])
