"""Supernet training methods: second-order DARTS, SDARTS-RS/ADV, SGAS, their
resume state, and every method under every selector end to end through the CLI and MLflow."""
import copy
import io
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from runner.methods.darts import Darts
from runner.methods.sdarts import Sdarts, clip, pgd_linf, uniform_noise
from runner.methods.second_order import R, unrolled_alpha_grad
from runner.methods.sgas import Sgas, none_mask, sgas_scores
from runner.selection.criteria import Magnitude, Perturbation
from runner.selection.select import select
from runner.training import checkpoint
from runner.training.search import search
from spaces.cell import get_space
from spaces.darts.genotype import Genotype
from spaces.darts.space import NUM_EDGES, TYPES as CELLS, node_edges
from spaces.supernet import OPEN, PRUNED

from fixtures import tiny_images, tiny_supernet
from helpers import argv
from job_pool import JobPool
from memory_tracker import MemoryTracker


def batch(n=8, seed=1, dtype=torch.float32, size=16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, size, size, generator=g, dtype=dtype),
            torch.randint(0, 10, (n,), generator=g))


# ------------------------------------------------------------------------- second-order DARTS


def smooth(net):
    """Softplus for every ReLU: the finite difference converges only on a smooth network (a ReLU
    crossing its kink inside +-eps makes grad_alpha jump), so the check isolates the algorithm."""
    for mod in list(net.modules()):
        for name, child in mod.named_children():
            if isinstance(child, torch.nn.ReLU):
                setattr(mod, name, torch.nn.Softplus())
    return net


def exact_hypergradient(net, w_opt, train, valid, eta, mu, wd, through_w=True):
    """d/d alpha L_val(w'(alpha), alpha) by autograd through the virtual step (create_graph).

    through_w=False treats w' as a constant: the first-order term g_alpha alone.
    """
    names = [n for n, _ in net.named_parameters() if n != "alphas"]
    ws = net.weights()
    lt = F.cross_entropy(functional_call(net, dict(zip(names, ws)), (train[0],)), train[1])
    gw = torch.autograd.grad(lt, ws, create_graph=True)
    wv = [w - eta * (mu * w_opt.state[w]["momentum_buffer"] + g + wd * w) for w, g in zip(ws, gw)]
    wv = wv if through_w else [w.detach() for w in wv]
    lv = F.cross_entropy(functional_call(net, dict(zip(names, wv)), (valid[0],)), valid[1])
    return torch.autograd.grad(lv, net.alphas)[0], [w.detach() for w in wv]


def fd_hvp(net, v, train, sign_plus=1.0, divide_by_norm=True):
    """The Hessian-vector product with deliberately misplaced eps, for the negative checks."""
    ws = net.weights()
    norm = torch.cat([x.flatten() for x in v]).norm()
    eps = R / norm
    saved = [w.detach().clone() for w in ws]
    grads = []
    for s in (sign_plus, -1.0):
        with torch.no_grad():
            for w, w0, d in zip(ws, saved, v):
                w.copy_(w0 + s * eps * d)
        lt = F.cross_entropy(net(train[0]), train[1])
        grads.append(torch.autograd.grad(lt, net.alphas)[0])
    with torch.no_grad():
        for w, w0 in zip(ws, saved):
            w.copy_(w0)
    return (grads[0] - grads[1]) / (2 * (eps if divide_by_norm else R))


def test_second_order_hypergradient_matches_autograd_through_the_virtual_step():
    net = smooth(tiny_supernet("s2")).double()
    with torch.no_grad():
        net.alphas.normal_()
    train, valid = batch(seed=1, dtype=torch.float64, size=8), batch(seed=2, dtype=torch.float64,
                                                                      size=8)
    w_opt = torch.optim.SGD(net.weights(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    F.cross_entropy(net(train[0]), train[1]).backward()
    w_opt.step()  # a momentum buffer for every weight
    w_opt.param_groups[0]["lr"] = eta = 0.5  # the *current* lr is used (cosine moves it)
    weights = [w.detach().clone() for w in net.weights()]
    bn_steps = [m.num_batches_tracked.item() for m in net.modules()
                if isinstance(m, torch.nn.BatchNorm2d)]

    approx = unrolled_alpha_grad(net, w_opt, train, valid)

    # weights restored bit for bit; BN stats moved by the 3 train-batch passes only (at w, w+-
    # eps v), not by the pass at w' (the reference runs that on a throwaway copy)
    assert all(torch.equal(a, b) for a, b in zip(weights, net.weights()))
    assert [m.num_batches_tracked.item() for m in net.modules()
            if isinstance(m, torch.nn.BatchNorm2d)] == [s + 3 for s in bn_steps]

    exact, w_virtual = exact_hypergradient(net, w_opt, train, valid, eta, 0.9, 3e-4)
    first, _ = exact_hypergradient(net, w_opt, train, valid, eta, 0.9, 3e-4, through_w=False)
    second_term = (exact - first).norm()
    assert second_term > 0.3 * first.norm()  # the Hessian term matters at this lr
    assert (approx - exact).norm() < 1e-3 * second_term

    # broken eps placements are far off: v is grad_{w'} L_val, taken at w'
    names = [n for n, _ in net.named_parameters() if n != "alphas"]
    lv = F.cross_entropy(functional_call(net, dict(zip(names, [w.requires_grad_() for w in
                                                               w_virtual])), (valid[0],)), valid[1])
    v = torch.autograd.grad(lv, w_virtual)
    norm = torch.cat([x.flatten() for x in v]).norm()
    assert abs(norm - 1) > 0.5  # else dropping ||v|| could not show
    good = first - eta * fd_hvp(net, v, train)
    no_norm = first - eta * fd_hvp(net, v, train, divide_by_norm=False)
    minus_minus = first - eta * fd_hvp(net, v, train, sign_plus=-1.0)
    assert (good - exact).norm() < 1e-3 * second_term  # the test's own FD agrees
    assert (no_norm - exact).norm() > 0.3 * second_term
    assert (minus_minus - exact).norm() > 0.9 * second_term


def test_darts_unrolled_step_feeds_the_hypergradient_to_adam():
    net, (train, valid) = tiny_supernet("s2"), (batch(seed=1), batch(seed=2))
    method = Darts(unrolled=True)
    method.setup(net)
    assert method.name == "darts_2nd" and Darts().name == "darts"
    w_opt = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    twin, twin_opt = copy.deepcopy((net, w_opt))
    expected = unrolled_alpha_grad(twin, twin_opt, train, valid)
    seen, adam_step = [], method.arch_opt.step
    method.arch_opt.step = lambda: seen.append(net.alphas.grad.clone()) or adam_step()
    method.step(net, w_opt, train, valid, grad_clip=5.0)
    assert len(seen) == 1 and torch.allclose(seen[0], expected, atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------------------------- SDARTS


def test_epsilon_ramps_over_search_and_is_constant_in_pt():
    net, m = tiny_supernet(), Sdarts()
    for epoch, eps in ((0, 0.03), (25, 0.165), (49, 0.2946)):
        m.begin_epoch(net, epoch, 50, "search")
        assert m.epsilon == pytest.approx(eps)
    for epoch in (0, 40, 80):
        m.begin_epoch(net, epoch, 81, "tune")
        assert m.epsilon == 0.3
    assert Sdarts(perturb_alpha="pgd_linf").name == "sdarts_adv" and m.name == "sdarts_rs"
    with pytest.raises(ValueError):
        Sdarts(perturb_alpha="gaussian")


def test_random_smoothing_stays_on_the_simplex_and_keeps_decisions():
    net = tiny_supernet("darts")  # K = 7
    with torch.no_grad():
        net.alphas.normal_()
    net.fix_edge("normal", 3, 5)
    net.prune_edge("reduce", 9)
    m = Sdarts()
    m.begin_epoch(net, 0, 1, "tune")  # eps 0.3
    probs = net.mixing_weights().detach()
    noise = uniform_noise(probs.expand(50, *probs.shape), 0.3)
    assert noise.abs().max() <= 0.3 and noise.abs().max() > 0.29  # U(-eps, eps) per entry
    assert noise.mean().abs() < 0.01
    open_rows = (net.decision == OPEN)
    for seed in range(20):
        torch.manual_seed(seed)
        w = m.mixing(net, None)
        assert w.min() >= 0 and w.max() <= 1
        assert torch.allclose(w[open_rows].sum(-1), torch.ones(int(open_rows.sum())))
        assert torch.equal(w[0, 3], F.one_hot(torch.tensor(5), 7).float())
        assert torch.equal(w[1, 9], torch.zeros(7))
        assert not torch.equal(w[open_rows], probs[open_rows])
    # clip(): clamp to [0, 1], renormalise; an all-negative row keeps its argmax
    rows = torch.tensor([[0.5, 0.7, -0.2], [-0.1, -0.3, -0.05], [0.2, 0.2, 0.2]])
    assert torch.allclose(clip(rows), torch.tensor([[5 / 12, 7 / 12, 0], [0, 0, 1.0], [1 / 3] * 3]))


def test_random_smoothing_is_clip_of_a_perturbation_bounded_by_epsilon():
    """Decided: the eps bound holds for the perturbation before clip(), as in the reference
    (darts-pt Random_alpha); clip()'s renormalisation may move an entry further, shown on a
    hand-made row."""
    net = tiny_supernet("s2")
    with torch.no_grad():
        net.alphas.normal_()
    m = Sdarts()
    m.begin_epoch(net, 10, 50, "search")  # eps = 0.03 + 0.27 * 10 / 50 = 0.084
    assert m.epsilon == pytest.approx(0.084)
    probs = net.mixing_weights().detach()
    torch.manual_seed(7)
    w = m.mixing(net, None)
    torch.manual_seed(7)
    delta = uniform_noise(probs, m.epsilon)
    assert delta.abs().max() <= m.epsilon
    assert torch.equal(w, clip(probs + delta))  # nothing but clip() after the bounded step
    row, push = torch.tensor([0.6, 0.2, 0.2]), torch.tensor([0.3, -0.3, -0.3])  # |push| = 0.3
    assert (clip(row + push) - row).abs().max() > 0.3  # renormalised to [1, 0, 0]: 0.4 from 0.6


def attack_setup():
    net = tiny_supernet("darts")
    with torch.no_grad():
        net.alphas.normal_()
    net.train()
    x, y = batch(seed=3)
    net(x)  # running stats that are not the init ones
    return net, x, y, net.mixing_weights().detach()


def eval_loss(net, w, x, y):
    was = net.training
    net.eval()
    with torch.no_grad():
        out = F.cross_entropy(net(x, weights=w), y).item()
    net.train(was)
    return out


def test_pgd_attack_does_not_lower_the_train_loss_it_attacks():
    net, x, y, probs = attack_setup()
    buffers = [b.clone() for b in net.buffers()]
    p = pgd_linf(net, probs, x, y, 0.1, steps=7)
    assert net.training  # train mode restored
    assert eval_loss(net, p, x, y) > eval_loss(net, probs, x, y) + 1e-4
    assert p.min() >= 0 and torch.allclose(p.sum(-1), torch.ones(2, NUM_EDGES))
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers()))  # BN eval in attack


def test_pgd_attack_reverts_a_perturbation_that_lowered_the_loss(monkeypatch):
    net, x, y, probs = attack_setup()
    p = probs.clone().requires_grad_()
    net.eval()
    (g,) = torch.autograd.grad(F.cross_entropy(net(x, weights=p), y), p)
    descent = -0.05 * g.sign()  # a random start that lowers the loss, and no ascent steps
    monkeypatch.setattr("runner.methods.sdarts.uniform_noise", lambda probs, eps: descent)
    assert eval_loss(net, clip(probs + descent), x, y) < eval_loss(net, probs, x, y)
    assert torch.equal(pgd_linf(net, probs, x, y, 0.05, steps=0), probs)


# ------------------------------------------------------------------------------------ SGAS


def probs_s3(rows):
    """[14, 3] probabilities (none, skip, sep) from {edge: row}; uniform elsewhere."""
    p = torch.full((NUM_EDGES, 3), 1 / 3)
    for e, r in rows.items():
        p[e] = torch.tensor(r)
    return p


S3_NONES = none_mask(get_space("s3").ops("normal"))


def best(score, cands):
    return max(cands, key=lambda e: (score[e].item(), -e))


def test_criterion_1_prefers_important_and_certain_edges():
    p = probs_s3({0: [0.1, 0.85, 0.05],   # important and certain: chosen
                  1: [0.6, 0.38, 0.02],   # certain but mostly `none`: importance lowest
                  2: [0.1, 0.45, 0.45],   # important but undecided between skip and sep
                  3: [0.2, 0.7, 0.1]})    # runner-up
    score, q = sgas_scores(p, S3_NONES)
    assert best(score, list(range(NUM_EDGES))) == 0
    assert best(score, list(range(1, NUM_EDGES))) == 3
    assert score[1] == 0 and score[2] == 0  # normalize(importance) or normalize(certainty) is 0
    assert torch.allclose(q[1], torch.tensor([0, 0.95, 0.05]))  # q excludes `none`


def test_criterion_2_prefers_the_stable_edge():
    now = {0: [0.1, 0.85, 0.05], 3: [0.2, 0.7, 0.1]}
    p = probs_s3(now)
    _, q_now = sgas_scores(p, S3_NONES)
    flipped = q_now.clone()
    flipped[0] = torch.tensor([0.0, 0.1, 0.9])  # edge 0 preferred sep until now
    history = [flipped] * 4
    s1, _ = sgas_scores(p, S3_NONES)
    s2, _ = sgas_scores(p, S3_NONES, history, use_history=True)
    assert best(s1, list(range(NUM_EDGES))) == 0
    assert best(s2, list(range(NUM_EDGES))) == 3
    empty, _ = sgas_scores(p, S3_NONES, [], use_history=True)
    assert torch.equal(empty, torch.zeros(NUM_EDGES))  # no history: stability 0 everywhere


def test_without_none_the_score_is_certainty_alone():
    """darts-pt's DARTS space has no `none`: importance would be 1 everywhere, and normalize()
    of a constant is 0, so its factor is left out rather than zeroing every score."""
    nones = none_mask(get_space("darts").ops("normal"))
    p = torch.full((NUM_EDGES, 7), 1 / 7)
    p[6] = torch.tensor([0.05, 0.05, 0.7, 0.05, 0.05, 0.05, 0.05])
    p[2] = torch.tensor([0.1, 0.1, 0.4, 0.1, 0.1, 0.1, 0.1])
    score, q = sgas_scores(p, nones)
    assert torch.equal(q, p) and best(score, list(range(NUM_EDGES))) == 6
    assert best(score, [e for e in range(NUM_EDGES) if e != 6]) == 2
    unstable = q.clone()
    unstable[6] = torch.tensor([0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    cri2, _ = sgas_scores(p, nones, [unstable, q], use_history=True)  # Cri.2 without none
    assert best(cri2, list(range(NUM_EDGES))) == 2


def decided_edges(dec):
    return {e for e, d in enumerate(dec) if d != OPEN}


def node_invariant(dec):
    """A node with 2 fixed inputs has all others pruned; pruning happens only there."""
    for eids in node_edges():
        fixed = [e for e in eids if dec[e] >= 0]
        pruned = [e for e in eids if dec[e] == PRUNED]
        assert len(fixed) <= 2
        assert (len(fixed) == 2 and len(pruned) == len(eids) - 2) or not pruned


def test_sgas_schedule_from_settings_decides_everything_in_50_epochs():
    net, m = tiny_supernet("darts"), Sgas()
    m.setup(net)
    with torch.no_grad():
        net.alphas.normal_()
    assert [e for e in range(50) if m.is_decision_epoch(e)] == list(range(9, 50, 5))
    sizes, fixed = [], []
    for epoch in range(50):
        sizes.append(m.batch_size(epoch, 64))
        m.end_epoch(net, epoch, "search")
        fixed.append([sum(d >= 0 for d in row) for row in net.decisions()])
    assert sizes[9] == 64 and sizes[10] == 72 and sizes[45:] == [128] * 5
    assert fixed[8] == [0, 0] and fixed[9] == [1, 1] and fixed[44] == [8, 8]
    assert all(d != OPEN for row in net.decisions() for d in row)  # PT has nothing left
    assert sorted({r["epoch"] for r in m.records}) == [9, 14, 19, 24, 29, 34, 39, 44]  # 49: none
    assert m.decision_epochs == 8
    for row in net.decisions():
        node_invariant(row)
    # any selector afterwards has nothing left: SGAS' genotype, no decision rounds
    genotype, records = select(net, m, tiny_images(), MemoryTracker(), torch.Generator(), 0,
                               criterion=Perturbation(), tune_epochs=5, batch_size=8)
    assert records == [] and genotype == net.genotype()


def test_sgas_in_search_fixes_one_edge_per_cell_per_decision_epoch(monkeypatch):
    net, data = tiny_supernet("s3"), tiny_images()
    m = Sgas(use_history=True, warmup_dec_epoch=1, decision_freq=2, batch_increase=8,
             max_batch_size=16)
    trace, sizes = [], []
    end, size = m.end_epoch, m.batch_size

    def spy_end(net, epoch, phase):
        before = [list(r) for r in net.decisions()]
        alphas = net.alphas.detach().clone()
        end(net, epoch, phase)
        trace.append((epoch, before, [list(r) for r in net.decisions()], alphas))

    monkeypatch.setattr(m, "end_epoch", spy_end)
    monkeypatch.setattr(m, "batch_size", lambda e, bs: sizes.append(size(e, bs)) or sizes[-1])
    search(net, m, data, MemoryTracker(), torch.Generator().manual_seed(0), None, epochs=6,
           batch_size=8, eval_valid=False)
    assert sizes == [8, 8, 16, 16, 16, 16]  # +8 after epoch 1, capped at 16
    for epoch, before, after, _ in trace:
        for c in range(2):
            new_fixed = [e for e in range(NUM_EDGES) if before[c][e] == OPEN and after[c][e] >= 0]
            assert len(new_fixed) == (1 if epoch in (1, 3, 5) else 0), (epoch, c)
            assert decided_edges(before[c]) <= decided_edges(after[c])  # never re-opened
            assert all(after[c][e] == before[c][e] for e in decided_edges(before[c]))
            assert all(after[c][e] != 0 for e in new_fixed)  # op 0 of S3 is `none`: never
            node_invariant(after[c])
    assert len(m.history["normal"]) == 4  # the last 4 epochs' q
    for c, cell in enumerate(CELLS):  # alpha rows of chosen edges stay frozen
        e = m.chosen[cell][0]
        assert torch.equal(trace[2][3][c, e], net.alphas.detach()[c, e])


def test_sgas_op_choice_selector_leaves_the_ops_of_chosen_edges_to_the_selector():
    net, m = tiny_supernet("s3"), Sgas(op_choice="selector")
    m.setup(net)
    with torch.no_grad():
        net.alphas.normal_()
    for epoch in range(50):
        m.end_epoch(net, epoch, "search")
    for c, cell in enumerate(CELLS):
        dec = net.decisions()[c]
        assert sorted(m.chosen[cell]) == [e for e in range(NUM_EDGES) if dec[e] == OPEN]
        assert sum(d == PRUNED for d in dec) == 6
    sgas_ops = {(r["cell"], r["edge"]): r["op"] for r in m.records}
    assert not any(r["fixed"] for r in m.records)
    genotype, records = select(net, m, tiny_images(), MemoryTracker(), torch.Generator(), 0,
                               criterion=Magnitude(), tune_epochs=0, batch_size=8)
    assert [r["kind"] for r in records] == ["op"] * 16  # 8 kept edges per cell, no topology
    # magnitude on the frozen alphas picks what SGAS' argmax q would have fixed
    assert {(r["cell"], r["where"]): r["chosen"] for r in records} == sgas_ops
    assert "none" not in str(genotype)
    with pytest.raises(ValueError):
        Sgas(op_choice="pt")


# ---------------------------------------------------------------------- checkpoint / resume


class Killed(Exception):
    pass


@pytest.mark.parametrize("make", [
    lambda: Sgas(use_history=True, warmup_dec_epoch=0, decision_freq=1, batch_increase=8),
    lambda: Sdarts(perturb_alpha="random"),  # ADV keeps the same state (epsilon, torch RNG)
], ids=["sgas_cri2", "sdarts_rs"])
def test_killed_search_resumes_exactly(make, tmp_path, monkeypatch):
    data, epochs = tiny_images(), 3

    def run(kill_at=None, resume=None):
        net, method = tiny_supernet("s3"), make()
        if kill_at is not None:
            begin = method.begin_epoch

            def maybe_kill(net, epoch, epochs, phase):
                if epoch == kill_at:
                    raise Killed
                begin(net, epoch, epochs, phase)
            monkeypatch.setattr(method, "begin_epoch", maybe_kill)
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        alphas = search(net, method, data, MemoryTracker(), gen, str(tmp_path / "s.pt"),
                        resume=resume, epochs=epochs, batch_size=8, eval_valid=False)
        return net, method, alphas

    net_a, m_a, alphas_a = run()
    with pytest.raises(Killed):
        run(kill_at=2)
    state = checkpoint.load(str(tmp_path / "s.pt"))  # weights_only: tensors and plain types
    assert state["epoch"] == 2
    net_b, m_b, alphas_b = run(resume=state)
    assert torch.equal(net_a.alphas, net_b.alphas) and (alphas_a == alphas_b).all()
    assert net_a.decisions() == net_b.decisions()
    sa, sb = m_a.state_dict(), m_b.state_dict()
    assert json.dumps({k: v for k, v in sa.items() if k not in ("arch_opt", "history")}) == \
        json.dumps({k: v for k, v in sb.items() if k not in ("arch_opt", "history")})
    for cell, past in sa.get("history", {}).items():
        assert len(past) == 3 and all(torch.equal(a, b) for a, b in zip(past, sb["history"][cell]))


@pytest.mark.parametrize("make", [Sdarts, Sgas, lambda: Darts(unrolled=True)],
                         ids=["sdarts", "sgas", "darts_2nd"])
def test_any_method_selects_from_a_darts_supernet(make):
    """`source.run` may load a DARTS checkpoint into another method: state defaults."""
    net = tiny_supernet()
    darts = Darts()
    darts.setup(net)
    state = checkpoint_roundtrip(darts.state_dict())
    method = make()
    method.setup(net)
    method.load_state_dict(state)
    assert checkpoint_roundtrip(method.state_dict()).keys() == method.state_dict().keys()


def checkpoint_roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ------------------------------------------------------- every method x selector x space, CLI

METHODS = {  # gin file -> the `method` tag it must log
    "darts": "darts", "darts_2nd": "darts_2nd", "sdarts_rs": "sdarts_rs",
    "sdarts_adv": "sdarts_adv", "sgas": "sgas_cri1", "sgas_cri2": "sgas_cri2",
}
SELECTOR_TAG = {"magnitude": "magnitude", "pt": "pt", "pt_mag": "pt-mag"}
SPACES = ("s1", "s2", "s3", "s4", "darts")
FULL = [(m, s, sp) for sp in SPACES for m in METHODS for s in SELECTOR_TAG] + [
    ("sgas_selector", "pt", sp) for sp in SPACES]
# CI runs a pairwise covering subset: on every space, DARTS under each selector (the baselines)
# and each other method once, its selector rotating with the space, so that every pair of
# (method, selector, space) values runs together. On the DARTS space, the paper's method-row
# files (test_e2e) already run darts_2nd, SDARTS-RS/ADV and SGAS with PT.
# DARTS_PT_FULL_MATRIX=1 runs all 95 combinations.
E2E = {("darts_2nd", "pt", "darts"), ("sdarts_rs", "pt", "darts"), ("sdarts_adv", "pt", "darts"),
       ("sgas", "pt", "darts")}


def covering():
    """DARTS under each selector and each other method once on every space, the selector
    rotating with the space; runs the E2E files already make are left out."""
    selectors, others = list(SELECTOR_TAG), [m for m in METHODS if m != "darts"]
    runs = []
    for i, sp in enumerate(SPACES):
        runs += [("darts", s, sp) for s in selectors] + [("sgas_selector", "pt", sp)]
        for j, m in enumerate(others):
            runs += [] if (m, "pt", sp) in E2E else [(m, selectors[(i + j) % len(selectors)], sp)]
    return runs


MATRIX = FULL if os.environ.get("DARTS_PT_FULL_MATRIX") == "1" else covering()


def test_the_ci_matrix_covers_every_pair_of_method_selector_and_space():
    runs = set(covering()) | E2E
    assert set(covering()) <= set(FULL) and len(runs) == len(covering()) + len(E2E) < len(FULL)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert {(c[a], c[b]) for c in FULL} == {(c[a], c[b]) for c in runs}


SGAS_TINY = ["Sgas.warmup_dec_epoch = 0", "Sgas.decision_freq = 1", "search.epochs = 3"]
BINDS = {  # tiny-mode trims per method and selector; the unit tests above pin behaviour
    "method": {"sdarts_adv": ["Sdarts.pgd_steps = 1"], "sgas": SGAS_TINY, "sgas_cri2": SGAS_TINY,
               "sgas_selector": SGAS_TINY + ["Sgas.op_choice = 'selector'"]},
    "selector": {"magnitude": ["select.tune_epochs = 0"]},  # tiny.gin's 1 would make it PT-Mag
}


def key(m, s, sp):
    return f"{m}-{s}-{sp}"


def job(m, s, sp):
    gin_file = "sgas" if m == "sgas_selector" else m
    binds = ["run.do_retrain = False", "Perturbation.subset = 8", "dataset.limit = 16",
             f"run.experiment_name = '{key(m, s, sp)}'"]
    binds += BINDS["method"].get(m, []) + BINDS["selector"].get(s, [])
    return key(m, s, sp), argv("quickstart.gin", f"methods/{gin_file}.gin", f"selectors/{s}.gin",
                               f"spaces/{sp}.gin", "overrides/tiny.gin", binds=binds)


def cost(m, s, sp):
    """Rough seconds of a run on one core: the queue starts with the longest (file names)."""
    return ({"darts": 5}.get(sp, 1) * {"magnitude": 1, "pt": 2, "pt_mag": 2}[s]
            * {"darts_2nd": 3, "sdarts_adv": 2}.get(m, 1.5))


def base(m, s, sp):
    """The DARTS run whose metric keys a run must log: same selector, same space."""
    return ("darts", s, sp)


@pytest.fixture(scope="module", autouse=True)
def matrix(request, tmp_path_factory, mlflow_template):
    """Starts the selected matrix runs (and their DARTS baselines) before this module's first
    test, on 2 worker processes (2 cores), heaviest first: they run while the unit tests do."""
    chosen = {tuple(item.callspec.params[k] for k in ("m", "s", "sp"))
              for item in request.session.items
              if getattr(item, "originalname", None) == MATRIX_TEST}
    if not chosen:
        yield None
        return
    chosen |= {base(*c) for c in chosen}
    jobs = [job(*c) for c in sorted(chosen, key=lambda c: (-cost(*c), key(*c)))]  # longest first
    pool = JobPool(tmp_path_factory.mktemp("matrix"), jobs, mlflow_template)
    yield pool.results
    pool.close()


def fetch(results, name):
    from mlflow.tracking import MlflowClient

    rc, err, uri = results[name]
    assert rc == 0, err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


MATRIX_TEST = "test_method_runs_under_every_selector_with_the_same_mlflow_layout"


@pytest.mark.parametrize("m,s,sp", MATRIX, ids=[key(*c) for c in MATRIX])
def test_method_runs_under_every_selector_with_the_same_mlflow_layout(m, s, sp, matrix, tmp_path):
    import pandas as pd

    results = matrix()
    client, run = fetch(results, key(m, s, sp))
    _, base_run = fetch(results, key(*base(m, s, sp)))
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["method"] == METHODS["sgas" if m == "sgas_selector" else m]
    assert (tags["selector"], tags["space"]) == (SELECTOR_TAG[s], sp)
    assert set(run.data.metrics) == set(base_run.data.metrics)  # DARTS' keys
    rid = run.info.run_id
    paths = {f.path for f in client.list_artifacts(rid)} | {
        f.path for f in client.list_artifacts(rid, "selection")}
    assert {"genotype.json", "selection/decisions.csv"} <= paths
    dst = tmp_path / "dl"
    geno = Genotype.from_json(Path(client.download_artifacts(rid, "genotype.json", str(dst)))
                              .read_text())
    assert geno == Genotype.parse(tags["genotype"]) and len(geno.normal) == 8
    table = pd.read_csv(client.download_artifacts(rid, "selection/decisions.csv", str(dst)))
    ops = int((table.kind == "op").sum())
    if not m.startswith("sgas"):
        assert ops == 28
        return
    # the selector decided exactly the edges SGAS left open: 3 decisions per cell in search
    state = checkpoint.load(client.download_artifacts(rid, "search/search.pt", str(dst)))
    recs = state["method"]["records"]
    assert [r["epoch"] for r in recs] == [0, 0, 1, 1, 2, 2]
    fixed = sum(r["fixed"] for r in recs)
    assert fixed == (0 if m == "sgas_selector" else 6)
    assert ops == 28 - fixed - sum(len(r["pruned"]) for r in recs) > 0
    sgas_edges = {(r["cell"], r["edge"]) for r in recs if r["fixed"]}
    op_rows = table[table.kind == "op"]
    assert not sgas_edges & {(c, int(w)) for c, w in zip(op_rows.cell, op_rows["where"])}
