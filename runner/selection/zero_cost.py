"""Zero-Cost-PT (Xiang et al., "Zero-Cost Operation Scoring in Differentiable Architecture
Search", AAAI 2023) as a criterion of the one `select()`.

PT's edge-by-edge masking, with each masked supernet scored by a zero-cost proxy
(runner/selection/proxies.py) on one minibatch instead of its validation accuracy. With
`select.tune_epochs = 0` nothing is trained between decisions, and with `search.epochs = 0` the
supernet is the untrained one the authors score. The pool of candidates and their
post-validation are runner/selection/pool.py.

The authors' code differs between its two spaces; each difference is a setting here:
- zeroed_ops: their NAS-Bench-201 cell still runs a masked op (and the unchosen ops of a decided
  edge) on an all-zero input, so each ReLU inside adds its input size to every kernel entry
  ('zero_input'); their DARTS cell skips such ops ('skip'). None: the family's own way.
- batch_per: the DARTS-space driver decides the normal and the reduction cell of one step on
  the same minibatch, a fresh one per step ('round'); their NAS-Bench-201 code draws a fresh one
  for every decision, which is the same thing with one cell type.
- choice of the op: the op whose removal gives the lowest score, NaN scores ignored (their
  NAS-Bench-201 code; their DARTS-space code keeps the first strict minimum, so a NaN score of
  the first op wins there).
- topology (DARTS space only): the edge whose removal gives the highest score is dropped, a later
  edge on ties, until the node keeps two; every round starts from the node's full weights.
"""
from contextlib import contextmanager

import gin
import numpy as np
import torch

from runner.selection import proxies
from runner.selection.criteria import masked_mixing, op_candidates
from runner.training.loops import sample_batch, train_batch
from spaces.supernet import MixedOp

ZEROED = ("zero_input", "skip")


def family_zeroed_ops(space):
    """The authors' way for the family: NAS-Bench-201 runs masked ops on zeros, DARTS skips."""
    return "zero_input" if space.family.name == "nb201" else "skip"


@gin.configurable
class ZeroCost:
    """Score each masked supernet with a zero-cost proxy; keep the op whose removal scores lowest.

    proxy: 'naswot' (the authors' default) or another of runner/selection/proxies.PROXIES.
    batch_size: images of the minibatch (the authors: 256 on NAS-Bench-201, 64 in the DARTS
    space). bn: BN mode of the scored pass (None: the proxy's own; NASWOT's is 'eval', as the
    authors). none_candidate: `none` is scored like any op (as the authors). relu_match: which
    modules NASWOT reads (runner/selection/proxies.is_relu; 'name', the authors' rule).
    """

    name = "zero-cost"

    def __init__(self, proxy="naswot", batch_size=64, bn=None, zeroed_ops=None,
                 batch_per="round", none_candidate=True, relu_match="name"):
        proxies.proxy(proxy)  # an unknown name fails when the settings are read
        if zeroed_ops not in (None, *ZEROED):
            raise ValueError(f"ZeroCost.zeroed_ops must be one of {ZEROED} or None, not "
                             f"{zeroed_ops!r}")
        if batch_per not in ("round", "decision"):
            raise ValueError(f"ZeroCost.batch_per must be 'round' or 'decision', not "
                             f"{batch_per!r}")
        self.proxy, self.batch_size, self.bn, self.zeroed_ops = proxy, batch_size, bn, zeroed_ops
        if relu_match not in proxies.RELU_MATCH:
            raise ValueError(f"ZeroCost.relu_match must be one of {proxies.RELU_MATCH}, not "
                             f"{relu_match!r}")
        self.batch_per, self.none_candidate, self.relu_match = batch_per, none_candidate, \
            relu_match
        self._batch, self._dims = None, {}

    def selector_name(self, tune_epochs):
        return "zc-pt" if self.proxy == "naswot" else f"zc-pt-{self.proxy}"

    # --- the minibatch ------------------------------------------------------------------
    def begin_round(self, r):
        """A fresh minibatch for the next round (the selector calls this before each round)."""
        self._batch = None

    def fix_batch(self, x, y):
        """Score on (x, y) from now on (a test, or a caller with its own data)."""
        self._batch, self.batch_per, self.begin_round = (x, y), "round", lambda r: None

    def batch(self, loop):
        """The minibatch: drawn from the weight half of the train split (the authors'
        train_queue), augmented as for training, without replacement."""
        if self._batch is None or self.batch_per == "decision":
            train_idx, _ = loop.data.search_halves()
            idx = sample_batch(train_idx, self.batch_size, loop.gen)
            self._batch = train_batch(loop.data, idx, loop.precision(loop.net), loop.gen)
        return self._batch

    # --- scores -------------------------------------------------------------------------
    def score(self, net, x, y, masked=()):
        """The proxy of the supernet with `masked` (cell, edge, op|None) zeroed."""
        w, active = masked_mixing(net, masked)
        forward = lambda inp: net(inp, w.to(inp.dtype), active)  # noqa: E731
        kwargs = {} if self.bn is None else {"bn": self.bn}
        if self.proxy == "naswot":
            kwargs["match"] = self.relu_match
            way = self.zeroed_ops or family_zeroed_ops(net.space)
            if way == "zero_input":
                kwargs["constant"] = lambda kernel: self._zeroed_relus(net, kernel)
        return proxies.proxy(self.proxy)(net, x, y, forward=forward, **kwargs)

    @contextmanager
    def _zeroed_relus(self, net, kernel):
        """Every op left out of a mixed edge counts as run on zeros: each ReLU in it sees the
        same input for all samples and adds its input size to every kernel entry."""
        def left_out(module, args):
            x, _, active = args
            for k, op in enumerate(module.ops):
                if k not in active:
                    if proxies.is_relu(op, kernel.match):  # the op is called with the real input
                        kernel.read(op, (x,))
                    kernel.add_constant(self._relu_dims(op, tuple(x.shape[1:]), x, kernel))

        with proxies.hooks(net.mixed_ops(), left_out, pre=True):
            yield

    def _relu_dims(self, op, shape, like, kernel):
        """Sum of the per-sample input sizes of the ReLUs inside `op` (the zeroed input reaches
        them) for inputs of `shape`."""
        key = (id(op), shape, kernel.match)
        if key not in self._dims:
            sizes = []
            count = lambda m, i, o: sizes.append(i[0][0].numel())  # noqa: E731
            kernel.paused = True
            try:
                inner = [m for m in proxies.relu_modules(op, kernel.match) if m is not op]
                with torch.no_grad(), proxies.hooks(inner, count):
                    op(torch.zeros((1, *shape), dtype=like.dtype, device=like.device))
            finally:
                kernel.paused = False
            self._dims[key] = sum(sizes)
        return self._dims[key]

    def _mode(self, net):
        """The BN mode of every pass of one decision, set once (train() walks every module)."""
        return proxies.bn_mode(net, self.bn or proxies.BN_MODE[self.proxy])

    def op_scores(self, net, cell, edge, loop):
        x, y = self.batch(loop)
        cands = op_candidates(net, cell, edge, self.none_candidate)
        with self._mode(net):
            return [{"score": self.score(net, x, y, [(cell, edge, k)])} if k in cands else None
                    for k in range(len(net.space.ops(cell)[edge]))]

    def rank(self, s):
        """Lower is an op more worth keeping; NaN never wins."""
        v = s["score"]
        return np.inf if v != v else v

    def choose_op(self, net, cell, edge, scores):
        best = None
        for k, s in enumerate(scores):  # nanargmin: the first of equal minima
            if s is not None and (best is None or self.rank(s) < self.rank(scores[best])):
                best = k
        return best

    def keep_edges(self, net, cell, eids, loop):
        """Topology test: drop the edge whose removal scores highest (a later one on ties)
        until `keep` remain; each round from the node's full weights."""
        x, y = self.batch(loop)
        remaining, rounds = list(eids), []
        while len(remaining) > net.space.cell.keep:
            with self._mode(net):
                scores = {e: self.score(net, x, y, [(cell, e, None)]) for e in remaining}
            drop = None
            for e in remaining:
                if drop is None or not scores[e] < scores[drop]:
                    drop = e
            rounds.append({"scores": {str(e): {"score": scores[e]} for e in remaining},
                           "dropped": drop})
            remaining.remove(drop)
        return remaining, rounds

    def gene_order(self, net, cell, kept):
        return list(kept)
