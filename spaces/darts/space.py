"""The DARTS cell and the per-edge op lists of the DARTS space and S1-S4.

DARTS cell (paper §2, darts-pt sota/cnn/model_search.py): two input states (0 = c_{k-2},
1 = c_{k-1}) and four intermediate nodes; node i (state i + 2) has an edge from every earlier
state, so 2 + 3 + 4 + 5 = 14 edges, numbered node by node, input by input. Each node keeps 2
inputs after selection; `none` is never chosen. Normal and reduction cells are two cell types.
"""
from spaces.cell import CellSpec

STEPS = 4  # intermediate nodes per cell
TYPES = ("normal", "reduce")


def edge_inputs():
    """(node state index, input state index) of each of the 14 edges, in edge order."""
    return [(i + 2, j) for i in range(STEPS) for j in range(2 + i)]


CELL = CellSpec(types=TYPES, edges=tuple(edge_inputs()), keep=2, none_selectable=False)
NUM_EDGES = CELL.num_edges  # 14


def skeleton(C, layers, stem_channels=None, after_reduction=False):
    """The DARTS network's cells (darts-pt model_search.py and model.py): per cell i,
    (i, reduction, reduction_prev, C_pp, C_p, C_curr). The stem gives 3C channels (or
    `stem_channels`); cells layers//3 and 2*layers//3 halve the maps and double C_curr; a cell
    outputs STEPS * C_curr. after_reduction: the first cell reads its two inputs at two
    resolutions, as after a reduction cell (the ImageNet stems, darts-pt model_imagenet.py)."""
    C_pp = C_p = 3 * C if stem_channels is None else stem_channels
    C_curr, reduction_prev = C, after_reduction
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        C_curr *= 2 if reduction else 1
        yield i, reduction, reduction_prev, C_pp, C_p, C_curr
        reduction_prev = reduction
        C_pp, C_p = C_p, STEPS * C_curr


def stem(in_channels, C):
    """3x3 conv to 3C channels and an affine BN."""
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False),
                         nn.BatchNorm2d(3 * C))


def node_edges():
    """Edge ids entering each intermediate node: [[0, 1], [2, 3, 4], [5..8], [9..13]]."""
    return CELL.node_edges()


# DARTS space as darts-pt trains it: 7 ops, no `none`, in this order (sota/cnn/spaces.py 's5').
DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
             "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# S1 per-edge lists, identical to RobustDARTS src/spaces.py; the order sets alpha columns and
# tie-breaks.
S1_NORMAL = (
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"),
)
S1_REDUCE = (
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
)
UNIFORM = {"darts": DARTS_OPS, "s2": ("skip_connect", "sep_conv_3x3"),
           "s3": ("none", "skip_connect", "sep_conv_3x3"), "s4": ("noise", "sep_conv_3x3")}


def op_lists(name):
    """(normal lists, reduce lists) of space `name`: 14 per-edge tuples each."""
    if name == "s1":
        return (S1_NORMAL, S1_REDUCE)
    row = (tuple(UNIFORM[name]),) * NUM_EDGES
    return (row, row)
