"""The DARTS cell's edges and the per-edge op lists of the DARTS space and S1-S4."""
from dataclasses import dataclass

STEPS = 4  # intermediate nodes per cell
NUM_EDGES = sum(2 + i for i in range(STEPS))  # 14

# DARTS space as darts-pt trains it (sota/cnn/spaces.py, s5): 7 ops, no `none`, this order.
DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
             "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# S1 per-edge lists, as RobustDARTS src/spaces.py; order sets alpha columns and tie-breaks.
_S1_NORMAL = (
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"),
)
_S1_REDUCE = (
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
)


@dataclass(frozen=True)
class SearchSpace:
    """Candidate op names per edge, for normal and reduction cells (14 lists each, equal K)."""

    name: str
    normal: tuple
    reduce: tuple

    def ops(self, cell):
        return self.normal if cell == "normal" else self.reduce

    @property
    def num_ops(self):
        return len(self.normal[0])

    def has(self, op):
        return any(op in row for rows in (self.normal, self.reduce) for row in rows)


def _uniform(name, ops):
    return SearchSpace(name, (tuple(ops),) * NUM_EDGES, (tuple(ops),) * NUM_EDGES)


SPACES = {
    "darts": _uniform("darts", DARTS_OPS),
    "s1": SearchSpace("s1", _S1_NORMAL, _S1_REDUCE),
    "s2": _uniform("s2", ("skip_connect", "sep_conv_3x3")),
    "s3": _uniform("s3", ("none", "skip_connect", "sep_conv_3x3")),
    "s4": _uniform("s4", ("noise", "sep_conv_3x3")),
}


def get_space(name):
    """The search space called `name` (darts, s1, s2, s3, s4)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(SPACES)}")
    return SPACES[name]


def edge_inputs():
    """(node state index, input state index) of each of the 14 edges, in edge order."""
    return [(i + 2, j) for i in range(STEPS) for j in range(2 + i)]


def node_edges():
    """Edge ids entering each intermediate node: [[0, 1], [2, 3, 4], [5..8], [9..13]]."""
    out, start = [], 0
    for i in range(STEPS):
        out.append(list(range(start, start + 2 + i)))
        start += 2 + i
    return out
