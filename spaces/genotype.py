"""Genotypes: the classic DARTS magnitude parse (darts-pt Network.genotype), strings and JSON."""
import ast
import json
from dataclasses import dataclass

from spaces.darts import STEPS, node_edges

CONCAT = tuple(range(2, 2 + STEPS))


@dataclass(frozen=True)
class Genotype:
    """Per cell type, 8 genes (op name, input state index), two per intermediate node."""

    normal: tuple
    reduce: tuple
    normal_concat: tuple = CONCAT
    reduce_concat: tuple = CONCAT

    def __str__(self):
        """DARTS-style string, as the reference's genotypes.py writes it."""
        return (f"Genotype(normal={list(self.normal)}, normal_concat=range(2, 6), "
                f"reduce={list(self.reduce)}, reduce_concat=range(2, 6))")

    def to_json(self):
        return json.dumps({"normal": [list(g) for g in self.normal],
                           "reduce": [list(g) for g in self.reduce],
                           "normal_concat": list(self.normal_concat),
                           "reduce_concat": list(self.reduce_concat)})

    @staticmethod
    def from_json(text):
        d = json.loads(text)
        return Genotype(tuple((op, int(j)) for op, j in d["normal"]),
                        tuple((op, int(j)) for op, j in d["reduce"]),
                        tuple(d["normal_concat"]), tuple(d["reduce_concat"]))

    @staticmethod
    def parse(text):
        """Read a DARTS-style `Genotype(normal=[...], ...)` string."""
        fields = {}
        for key in ("normal", "reduce"):
            start = text.index(key + "=[") + len(key) + 1
            depth, end = 0, start
            for end, ch in enumerate(text[start:], start):
                depth += ch == "["
                depth -= ch == "]"
                if depth == 0:
                    break
            fields[key] = tuple((op, int(j)) for op, j in ast.literal_eval(text[start:end + 1]))
        return Genotype(fields["normal"], fields["reduce"])

    def count(self, op):
        return sum(name == op for name, _ in self.normal + self.reduce)


def parse_cell(weights, ops):
    """Magnitude parse of one cell: rows of mixing weights -> 8 genes.

    Strength of an edge = its largest weight excluding `none`; keep the 2 strongest inputs per
    node (stable sort: lower input index wins ties); op = first argmax excluding `none`.
    """
    genes = []
    for eids in node_edges():
        def best(e):
            cands = [k for k, name in enumerate(ops[e]) if name != "none"]
            k_best = cands[0]
            for k in cands[1:]:
                if weights[e][k] > weights[e][k_best]:  # strict: first maximal index wins
                    k_best = k
            return k_best

        strength = {e: weights[e][best(e)] for e in eids}
        kept = sorted(eids, key=lambda e: -strength[e])[:2]  # sorted() is stable
        for e in kept:
            genes.append((ops[e][best(e)], e - eids[0]))
    return tuple(genes)


def parse(weights, space):
    """Genotype from per-cell mixing weights {'normal': rows, 'reduce': rows} (nested lists)."""
    return Genotype(parse_cell(weights["normal"], space.normal),
                    parse_cell(weights["reduce"], space.reduce))
