"""SGAS (lightaime/sgas `cnn/train_search.py`): greedy edge decisions during search.

After the warm-up, every `decision_freq` epochs, each cell type fixes its open edge with the
best score (Cri.1: importance x certainty; Cri.2: x stability) to its best non-`none` op, and
prunes the other open inputs of nodes that then have as many decided inputs as they keep.
Decisions live in the supernet's decision state, the one PT uses, so a selector afterwards
only sees what is open. Cells with a fixed topology have nothing for SGAS to decide.
"""

import gin
import torch

from runner.methods.darts import Darts
from spaces.cell import first_argmax
from spaces.supernet import OPEN


def normalize(v):
    """(v - min) / (max - min), all zeros when the range is 0 (SGAS utils.normalize)."""
    lo, span = v.min(), v.max() - v.min()
    return (v - lo) / span if span > 0 else torch.zeros_like(v)


def none_mask(ops):
    """[edges, K] True where the op is `none` (SGAS' index 0; per edge here, for any space)."""
    return torch.tensor([[n == "none" for n in row] for row in ops])


def stability(history, q):
    """Mean histogram intersection of q with each stored past q; 0 with no history."""
    if not history:
        return torch.zeros(q.size(0), dtype=q.dtype, device=q.device)
    return torch.stack([torch.minimum(h.to(q.device), q).sum(-1) for h in history]).mean(0)


def sgas_scores(probs, nones, history=None, use_history=False):
    """Scores over all edges of one cell type (decided ones included, as SGAS does), and q.

    probs: softmax(alpha) [edges, K]; nones: none_mask. Without any `none` op (darts-pt's DARTS
    space, S1, S2, S4) importance is 1 on every edge and its factor is left out: normalize()
    of a constant is 0 and would zero every score.
    """
    nones = nones.to(probs.device)
    importance = 1 - (probs * nones).sum(-1)
    q = probs.masked_fill(nones, 0.0) / importance.clamp_min(1e-12)[:, None]
    k = (~nones).sum(-1)
    entropy = -(q * q.clamp_min(1e-30).log()).sum(-1)
    norm_entropy = torch.where(k > 1, entropy / k.clamp_min(2).to(q.dtype).log(), 0.0)
    score = normalize(1 - norm_entropy)
    if nones.any():
        score = score * normalize(importance)
    if use_history:  # Cri.2
        score = score * normalize(stability(history or [], q))
    return score, q


def best_edge(score, candidates):
    """The candidate with the highest score; the lowest index on ties (as torch.argmax)."""
    return first_argmax(score, candidates)


@gin.configurable
class Sgas(Darts):
    """SGAS on top of first-order DARTS; `use_history` switches Cri.1 to Cri.2.

    warmup_dec_epoch: the first decision epoch (0: decide after the first epoch).
    batch_increase: images added to the search batch after each decision epoch (0: fixed).

    op_choice: 'argmax' fixes the chosen edge to argmax q (SGAS); 'selector' keeps the edge
    (pruning and edge order unchanged) but leaves its op open for the selector, which is the
    paper's SGAS+PT (paper §5.1: PT replaces only the op choice; see gin/methods/sgas.gin).
    """

    def __init__(self, use_history=False, warmup_dec_epoch=9, decision_freq=5, history_size=4,
                 batch_increase=8, max_batch_size=128, op_choice="argmax"):
        super().__init__()
        if op_choice not in ("argmax", "selector"):
            raise ValueError(f"Sgas.op_choice must be 'argmax' or 'selector', not {op_choice!r}")
        self.use_history, self.op_choice = use_history, op_choice
        self.warmup, self.freq, self.history_size = warmup_dec_epoch, decision_freq, history_size
        self.batch_increase, self.max_batch_size = batch_increase, max_batch_size
        self.history = {}  # past q's per cell type (Cri.2)
        self.chosen = {}   # edges SGAS decided per cell type, in order; their alpha frozen
        self.decision_epochs = 0               # epochs that made a decision: batch size growth
        self.records = []                      # one dict per SGAS decision, kept in checkpoints

    @property
    def name(self):
        return "sgas_cri2" if self.use_history else "sgas_cri1"

    def setup(self, net):
        cell = net.space.cell
        if cell.keep is None:
            raise ValueError(f"SGAS decides which inputs each node keeps; space "
                             f"{net.space.name!r} has a fixed topology")
        super().setup(net)
        self.history = {c: [] for c in cell.types}
        self.chosen = {c: [] for c in cell.types}

    def state_dict(self):
        return dict(super().state_dict(), history=self.history, chosen=self.chosen,
                    decision_epochs=self.decision_epochs, records=self.records)

    def load_state_dict(self, state):
        super().load_state_dict(state)  # a DARTS supernet has no SGAS state: start empty
        self.history = {c: list(h) for c, h in state.get("history", self.history).items()}
        self.chosen = {c: [int(e) for e in v] for c, v in state.get("chosen", self.chosen).items()}
        self.decision_epochs = int(state.get("decision_epochs", 0))
        self.records = list(state.get("records", []))

    def is_decision_epoch(self, epoch):
        return epoch >= self.warmup and (epoch - self.warmup) % self.freq == 0

    def batch_size(self, epoch, batch_size):
        """+batch_increase after each decision epoch, up to max_batch_size, as SGAS."""
        grown = batch_size + self.batch_increase * self.decision_epochs
        return min(grown, max(batch_size, self.max_batch_size))

    def arch_step(self, net, w_opt, train, valid):
        """DARTS' alpha step; alpha rows of edges SGAS decided stay frozen."""
        if not any(self.chosen.values()):  # host-side test: no device sync per step
            return super().arch_step(net, w_opt, train, valid)
        rows = self.frozen(net)
        saved = net.alphas.detach()[rows].clone()
        super().arch_step(net, w_opt, train, valid)
        with torch.no_grad():
            net.alphas[rows] = saved

    def frozen(self, net):
        rows = torch.zeros(net.alphas.shape[:2], dtype=torch.bool, device=net.alphas.device)
        for t, cell in enumerate(net.space.cell.types):
            rows[t, self.chosen[cell]] = True
        return rows

    def end_epoch(self, net, epoch, phase):
        """Scores every search epoch (Cri.2 history); a decision per cell type when scheduled."""
        if phase != "search":
            return
        decided = False
        for t, cell in enumerate(net.space.cell.types):
            probs = torch.softmax(net.alphas.detach()[t], -1)
            score, q = sgas_scores(probs, none_mask(net.space.ops(cell)), self.history[cell],
                                   self.use_history)
            if self.use_history:  # appended every epoch, after use; the last history_size kept
                self.history[cell] = (self.history[cell] + [q.cpu()])[-self.history_size:]
            cands = self.candidates(net, cell)
            if self.is_decision_epoch(epoch) and cands:
                self.decide(net, cell, epoch, score, q, cands)
                decided = True
        self.decision_epochs += int(decided)

    def candidates(self, net, cell):
        dec = net.decisions()[net.space.cell.type_index(cell)]
        return [e for e, d in enumerate(dec) if d == OPEN and e not in self.chosen[cell]]

    def decide(self, net, cell, epoch, score, q, cands):
        """Fix (or keep) the best edge, then prune nodes that have all the inputs they keep."""
        e = best_edge(score.tolist(), cands)
        k = int(q[e].argmax())  # q is 0 on `none`: never chosen
        self.chosen[cell].append(e)
        if self.op_choice == "argmax":
            net.fix_edge(cell, e, k)
        pruned = self.prune(net, cell)
        self.records.append({"epoch": epoch, "cell": cell, "edge": e,
                             "op": net.space.ops(cell)[e][k], "fixed": self.op_choice == "argmax",
                             "score": float(score[e]), "pruned": pruned})

    def prune(self, net, cell):
        """SGAS check_edges: a node with all the inputs it keeps decided loses the others."""
        spec = net.space.cell
        dec, pruned = net.decisions()[spec.type_index(cell)], []
        for eids in spec.node_edges():
            taken = [e for e in eids if dec[e] >= 0 or e in self.chosen[cell]]
            if len(taken) >= spec.keep:
                pruned += [e for e in eids if dec[e] == OPEN and e not in taken]
        for e in pruned:
            net.prune_edge(cell, e)
        return pruned
