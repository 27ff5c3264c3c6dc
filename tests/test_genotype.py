"""The classic DARTS magnitude parse (hand-computed cases), genotype strings and JSON."""
import dataclasses
import json

import pytest

from spaces.cell import SearchSpace, get_space, magnitude_genes, magnitude_parse
from spaces.darts import DARTS as FAMILY
from spaces.darts.genotype import CONCAT, Genotype
from spaces.darts.space import DARTS_OPS

DARTS = get_space("darts")
S1 = get_space("s1")
S3 = get_space("s3")


def parse_cell(weights, ops):
    """Magnitude parse of one DARTS cell with per-edge op lists `ops`, as 8 genes."""
    space = SearchSpace("t", FAMILY, (ops, ops))
    return tuple(g for node in magnitude_genes(weights, space, "normal") for g in node)


def parse(weights, space):
    """Magnitude parse of {'normal': rows, 'reduce': rows}."""
    return magnitude_parse([weights["normal"], weights["reduce"]], space)
K7 = len(DARTS_OPS)
MAXP, AVGP, SKIP, SEP3, SEP5, DIL3, DIL5 = DARTS_OPS


def row(k, hot, fill=0.01):
    """A row of k mixing weights, `fill` everywhere except the entries in `hot` {index: value}."""
    r = [fill] * k
    for i, v in hot.items():
        r[i] = v
    return r


def darts_ops():
    return DARTS.ops("normal")


# --------------------------------------------------------------------------------------------
# DARTS space (7 ops, no `none`)
# --------------------------------------------------------------------------------------------

def test_parse_cell_darts_hand_computed():
    w = [
        # node 2: edge 0 (input 0), edge 1 (input 1)
        row(K7, {3: 0.5}),            # sep_conv_3x3, strength 0.5
        row(K7, {4: 0.6}),            # sep_conv_5x5, strength 0.6
        # node 3: inputs 0, 1, 2
        row(K7, {0: 0.1}),            # 0.1
        row(K7, {6: 0.9}),            # dil_conv_5x5, 0.9
        row(K7, {2: 0.4}),            # skip_connect, 0.4
        # node 4: inputs 0..3
        row(K7, {1: 0.2}),
        row(K7, {4: 0.3}),
        row(K7, {5: 0.8}),            # dil_conv_3x3, 0.8
        row(K7, {1: 0.7}),            # avg_pool_3x3, 0.7
        # node 5: inputs 0..4
        row(K7, {3: 0.35}),           # sep_conv_3x3, 0.35
        row(K7, {6: 0.1}),
        row(K7, {2: 0.2}),
        row(K7, {5: 0.3}),
        row(K7, {0: 0.95}),           # max_pool_3x3, 0.95
    ]
    genes = parse_cell(w, darts_ops())
    # genes per node in strength order, strongest first
    assert genes == (
        (SEP5, 1), (SEP3, 0),
        (DIL5, 1), (SKIP, 2),
        (DIL3, 2), (AVGP, 3),
        (MAXP, 4), (SEP3, 0),
    )


def test_parse_cell_strength_is_max_not_sum_or_mean():
    # input 0's row has the larger sum, input 2's row has the larger maximum
    spread = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.0]
    peaked = row(K7, {5: 0.4}, fill=0.0)
    w = [row(K7, {0: 0.9}), row(K7, {0: 0.8}),
         spread, row(K7, {0: 0.1}), peaked,
         *[row(K7, {0: 0.5})] * 4,
         *[row(K7, {0: 0.5})] * 5]
    genes = parse_cell(w, darts_ops())
    assert genes[2:4] == ((DIL3, 2), (MAXP, 0))  # strengths 0.4 > 0.3 > 0.1


def test_parse_cell_strength_ties_keep_lower_input_first():
    w = [
        row(K7, {2: 0.5}), row(K7, {3: 0.5}),                      # tie: inputs 0, 1
        row(K7, {0: 0.3}), row(K7, {4: 0.6}), row(K7, {5: 0.6}),   # tie 1 vs 2; 0 dropped
        *[row(K7, {6: 0.25})] * 4,                                 # four-way tie -> 0, 1
        row(K7, {1: 0.2}), row(K7, {2: 0.7}), row(K7, {3: 0.1}),   # 1 strongest, then tie
        row(K7, {4: 0.2}), row(K7, {5: 0.2}),                      # between inputs 0, 3, 4
    ]
    genes = parse_cell(w, darts_ops())
    assert genes == (
        (SKIP, 0), (SEP3, 1),
        (SEP5, 1), (DIL3, 2),
        (DIL5, 0), (DIL5, 1),
        (SKIP, 1), (AVGP, 0),
    )


def test_parse_cell_op_ties_pick_lowest_op_index():
    tie_2_5 = row(K7, {2: 0.4, 5: 0.4})
    tie_6_3 = row(K7, {6: 0.3, 3: 0.3})
    uniform = [1 / 7] * 7
    w = [tie_2_5, tie_6_3,
         uniform, row(K7, {}, fill=0.0), row(K7, {}, fill=0.0),
         *[uniform] * 4,
         *[uniform] * 5]
    genes = parse_cell(w, darts_ops())
    assert genes[0:2] == ((SKIP, 0), (SEP3, 1))    # first maximal op wins
    assert genes[2:4] == ((MAXP, 0), (MAXP, 1))    # uniform rows -> op 0, inputs 0 and 1
    assert genes[4:] == ((MAXP, 0), (MAXP, 1), (MAXP, 0), (MAXP, 1))


def test_parse_whole_genotype_darts_space():
    normal = [row(K7, {3: 0.9 - 0.01 * e}) for e in range(14)]           # sep3, lower input wins
    reduce = [row(K7, {(e % 7): 0.1 + 0.05 * e}) for e in range(14)]     # later edges stronger
    g = parse({"normal": normal, "reduce": reduce}, DARTS)
    assert isinstance(g, Genotype)
    assert g.normal == ((SEP3, 0), (SEP3, 1)) * 4
    # reduce: e (0-based) has op e % 7 and strength growing with e: last two inputs, last first
    assert g.reduce == (
        (DARTS_OPS[1], 1), (DARTS_OPS[0], 0),
        (DARTS_OPS[4], 2), (DARTS_OPS[3], 1),
        (DARTS_OPS[1], 3), (DARTS_OPS[0], 2),
        (DARTS_OPS[6], 4), (DARTS_OPS[5], 3),
    )
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5) == CONCAT


# --------------------------------------------------------------------------------------------
# spaces with `none` (S3): never chosen, never counts for strength
# --------------------------------------------------------------------------------------------

def test_parse_cell_s3_ignores_none():
    # S3 ops: none, skip_connect, sep_conv_3x3
    w = [
        [0.90, 0.05, 0.05],  # none largest; strength 0.05; skip/sep tie -> skip
        [0.10, 0.30, 0.60],  # sep 0.6
        [0.98, 0.01, 0.01],  # none huge, strength only 0.01 -> dropped
        [0.50, 0.20, 0.30],  # sep 0.3
        [0.00, 0.15, 0.10],  # skip 0.15
        [0.70, 0.10, 0.20],  # sep 0.2
        [0.99, 0.00, 0.01],  # sep 0.01 (none excluded as op even though it is the argmax)
        [0.40, 0.35, 0.25],  # skip 0.35
        [0.80, 0.18, 0.02],  # skip 0.18
        [1.00, 0.00, 0.00],  # strength 0: op = first non-none (skip)
        [0.60, 0.00, 0.40],  # sep 0.4
        [0.95, 0.03, 0.02],  # skip 0.03
        [0.30, 0.40, 0.30],  # skip 0.4 -> ties with input 1, comes after it
        [0.90, 0.05, 0.05],
    ]
    genes = parse_cell(w, S3.ops("normal"))
    assert genes == (
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("sep_conv_3x3", 1), ("skip_connect", 2),
        ("skip_connect", 2), ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1), ("skip_connect", 3),
    )
    assert all(op != "none" for op, _ in genes)


def test_parse_cell_s3_all_none_rows():
    w = [[1.0, 0.0, 0.0]] * 14
    genes = parse_cell(w, S3.ops("reduce"))
    assert genes == (("skip_connect", 0), ("skip_connect", 1)) * 4


def test_parse_s3_genotype_none_never_selected():
    normal = [[0.9 - 0.01 * e, 0.05, 0.06 + 0.001 * e] for e in range(14)]
    reduce = [[0.2, 0.5 + 0.01 * e, 0.3] for e in range(14)]
    g = parse({"normal": normal, "reduce": reduce}, S3)
    # normal: sep strength grows with e -> highest two inputs per node, highest first
    assert g.normal == (("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                        ("sep_conv_3x3", 2), ("sep_conv_3x3", 1),
                        ("sep_conv_3x3", 3), ("sep_conv_3x3", 2),
                        ("sep_conv_3x3", 4), ("sep_conv_3x3", 3))
    assert g.reduce == (("skip_connect", 1), ("skip_connect", 0),
                        ("skip_connect", 2), ("skip_connect", 1),
                        ("skip_connect", 3), ("skip_connect", 2),
                        ("skip_connect", 4), ("skip_connect", 3))
    assert g.count("none") == 0


# --------------------------------------------------------------------------------------------
# S1: a different 2-op list on every edge
# --------------------------------------------------------------------------------------------

def test_parse_s1_per_edge_lists():
    normal = [
        [0.3, 0.7], [0.8, 0.2],                          # dil_conv_3x3 .7 | skip .8
        [0.4, 0.6], [0.45, 0.55], [0.1, 0.9],            # dil5 .6 | sep3 .55 | dil3 .9
        [0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.65, 0.35],  # max .7 | skip(tie) | sep3 .8 | skip
        [0.6, 0.4], [0.1, 0.9], [0.45, 0.55], [0.95, 0.05], [0.2, 0.8],
    ]
    reduce = [
        [0.6, 0.4], [0.3, 0.7],                          # max .6 | dil3 .7
        [0.5, 0.5], [0.2, 0.8], [0.35, 0.65],            # max(tie) .5 | avg .8 | dil5 .65
        [0.55, 0.45], [0.25, 0.75], [0.9, 0.1], [0.3, 0.7],
        [0.52, 0.48], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5],
    ]
    g = parse({"normal": normal, "reduce": reduce}, S1)
    assert g.normal == (
        ("skip_connect", 1), ("dil_conv_3x3", 0),
        ("dil_conv_3x3", 2), ("dil_conv_5x5", 0),
        ("sep_conv_3x3", 2), ("max_pool_3x3", 0),
        ("dil_conv_3x3", 3), ("skip_connect", 1),
    )
    assert g.reduce == (
        ("dil_conv_3x3", 1), ("max_pool_3x3", 0),
        ("avg_pool_3x3", 1), ("dil_conv_5x5", 2),
        ("skip_connect", 2), ("sep_conv_3x3", 1),
        ("dil_conv_5x5", 3), ("avg_pool_3x3", 1),   # .9, then .6 tie: input 1 beats input 2
    )


def test_parse_s1_uses_the_edges_own_list_for_names():
    # the same row [0, 1] everywhere picks op index 1 of each edge's own list
    w = [[0.0, 1.0]] * 14
    g = parse({"normal": w, "reduce": w}, S1)
    assert g.normal == (
        (S1.ops("normal")[0][1], 0), (S1.ops("normal")[1][1], 1),
        (S1.ops("normal")[2][1], 0), (S1.ops("normal")[3][1], 1),
        (S1.ops("normal")[5][1], 0), (S1.ops("normal")[6][1], 1),
        (S1.ops("normal")[9][1], 0), (S1.ops("normal")[10][1], 1),
    )
    assert g.normal[4] == ("skip_connect", 0)    # normal edge 5 is (max_pool_3x3, skip_connect)
    assert g.normal[7] == ("skip_connect", 1)    # normal edge 10 is (max_pool_3x3, skip_connect)
    assert g.reduce[1] == ("dil_conv_3x3", 1)    # reduce edge 1 is (max_pool_3x3, dil_conv_3x3)
    assert g.reduce[5] == ("sep_conv_3x3", 1)    # reduce edge 6 is (max_pool_3x3, sep_conv_3x3)


# --------------------------------------------------------------------------------------------
# strings and JSON
# --------------------------------------------------------------------------------------------

DARTS_PT_S5_0 = Genotype(
    (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("dil_conv_3x3", 1),
     ("skip_connect", 0), ("skip_connect", 2), ("skip_connect", 0), ("max_pool_3x3", 4)),
    (("sep_conv_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_5x5", 1), ("dil_conv_3x3", 2),
     ("avg_pool_3x3", 0), ("max_pool_3x3", 2), ("sep_conv_3x3", 2), ("skip_connect", 4)))

# str() of the reference's namedtuple darts_pt_s5_0 (sota/cnn/genotypes.py)
DARTS_PT_S5_0_STR = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
    "('dil_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 2), ('skip_connect', 0), "
    "('max_pool_3x3', 4)], normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 0), "
    "('avg_pool_3x3', 1), ('dil_conv_5x5', 1), ('dil_conv_3x3', 2), ('avg_pool_3x3', 0), "
    "('max_pool_3x3', 2), ('sep_conv_3x3', 2), ('skip_connect', 4)], "
    "reduce_concat=range(2, 6))"
)


def test_str_is_darts_style():
    assert str(DARTS_PT_S5_0) == DARTS_PT_S5_0_STR


def test_parse_reads_reference_genotype_string():
    g = Genotype.parse(DARTS_PT_S5_0_STR)
    assert g == DARTS_PT_S5_0
    assert all(isinstance(j, int) and isinstance(op, str) for op, j in g.normal + g.reduce)


def test_parse_reads_string_with_surroundings_and_double_quotes():
    text = ('genotype = Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 1)], '
            "normal_concat=[2, 3, 4, 5], "
            'reduce=[("max_pool_3x3", 0), ("avg_pool_3x3", 1)], reduce_concat=range(2, 6))'
            "  # 2.85 (param size)\n")
    g = Genotype.parse(text)
    assert g.normal == (("sep_conv_3x3", 0), ("skip_connect", 1))
    assert g.reduce == (("max_pool_3x3", 0), ("avg_pool_3x3", 1))


GENOTYPES = [
    DARTS_PT_S5_0,
    Genotype((("skip_connect", 0), ("dil_conv_3x3", 1)) * 4,
             (("max_pool_3x3", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 2), ("skip_connect", 3),
              ("sep_conv_3x3", 4), ("noise", 0), ("none", 1), ("sep_conv_5x5", 2))),
]


@pytest.mark.parametrize("g", GENOTYPES)
def test_string_round_trip(g):
    assert Genotype.parse(str(g)) == g


@pytest.mark.parametrize("g", GENOTYPES)
def test_json_round_trip(g):
    text = g.to_json()
    d = json.loads(text)
    assert d["normal"] == [list(x) for x in g.normal]
    assert d["reduce"] == [list(x) for x in g.reduce]
    assert d["normal_concat"] == d["reduce_concat"] == [2, 3, 4, 5]
    back = Genotype.from_json(text)
    assert back == g
    assert isinstance(back.normal, tuple) and isinstance(back.normal[0], tuple)
    assert hash(back) == hash(g)


def test_parse_of_parsed_weights_round_trips():
    w = [row(K7, {(e * 3) % 7: 0.2 + 0.03 * ((e * 5) % 11)}) for e in range(14)]
    g = parse({"normal": w, "reduce": w[::-1]}, DARTS)
    assert Genotype.parse(str(g)) == g
    assert Genotype.from_json(g.to_json()) == g


def test_count_and_immutability():
    g = DARTS_PT_S5_0
    assert g.count("skip_connect") == 4
    assert g.count("sep_conv_3x3") == 4
    assert g.count("max_pool_3x3") == 2
    assert g.count("none") == 0
    assert sum(g.count(op) for op in DARTS_OPS) == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.normal = ()
