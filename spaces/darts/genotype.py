"""DARTS genotypes: two genes (op name, input state) per node and cell type; strings, JSON."""
import ast
import json
from dataclasses import dataclass

from spaces.darts.space import STEPS

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
        """Read a DARTS-style `Genotype(normal=[...], ...)` string, or its JSON (to_json)."""
        if text.lstrip().startswith("{"):
            return Genotype.from_json(text)
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

    def ops(self):
        """Every gene's op name, normal cell first."""
        return [name for name, _ in self.normal + self.reduce]


def from_genes(genes):
    """The Genotype of per-cell-type genes [normal nodes, reduce nodes] (spaces.cell.Family)."""
    normal, reduce = (tuple(g for node in cell for g in node) for cell in genes)
    return Genotype(normal, reduce)
