"""NAS-Bench-201 structure strings: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, node by node."""
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    """Per node (1..3), its (op name, input node) genes in input order."""

    nodes: tuple

    def __str__(self):
        return "+".join("|" + "|".join(f"{op}~{j}" for op, j in node) + "|"
                        for node in self.nodes)

    @staticmethod
    def parse(text):
        """The inverse of str(): a structure string (or its JSON, to_json) to a Structure."""
        if text.lstrip().startswith("{"):
            return Structure.from_json(text)
        nodes = []
        for part in text.strip().split("+"):
            if not (part.startswith("|") and part.endswith("|")):
                raise ValueError(f"not a NAS-Bench-201 structure string: {text!r}")
            genes = [g.rsplit("~", 1) for g in part[1:-1].split("|")]
            nodes.append(tuple((op, int(j)) for op, j in genes))
        return Structure(tuple(nodes))

    def to_json(self):
        return json.dumps({"structure": str(self)})

    @staticmethod
    def from_json(text):
        return Structure.parse(json.loads(text)["structure"])

    def count(self, op):
        return sum(name == op for node in self.nodes for name, _ in node)

    def ops(self):
        """Every edge's op name, node by node."""
        return [name for node in self.nodes for name, _ in node]


def from_genes(genes):
    """The Structure of one cell type's genes (spaces.cell.Family)."""
    (nodes,) = genes
    return Structure(tuple(tuple(node) for node in nodes))
