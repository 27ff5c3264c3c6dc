"""The cell description: everything the family-agnostic code knows about a cell family.

A family (the DARTS cell and its spaces S1-S4 in `spaces/darts/`; the next one beside it)
describes its cell once with a `CellSpec`, lists its search spaces as `SearchSpace`s and
provides a `Family` with its supernet, genotype and retrain network. Selection, the methods,
PT batching, the plots and the report read only these objects.
"""
import importlib
from dataclasses import dataclass
from typing import Callable, Optional

# the modules that define families; each registers its spaces on import
FAMILY_MODULES = ("spaces.darts", "spaces.nb201")


@dataclass(frozen=True)
class CellSpec:
    """A cell's graph and its selection rules.

    types: cell type names; alpha row t belongs to types[t].
    edges: (node, input) state indices of each mixed edge, in alpha column order.
    keep: inputs each node keeps after selection; None when the topology is fixed (every edge
      of the supernet stays, only its op is chosen).
    none_selectable: whether a selector may choose `none` as an edge's op.
    """

    types: tuple
    edges: tuple
    keep: Optional[int] = None
    none_selectable: bool = False

    @property
    def num_edges(self):
        return len(self.edges)

    def type_index(self, cell):
        """Alpha row of cell type `cell` (its name, or already an index)."""
        return cell if isinstance(cell, int) else self.types.index(cell)

    def nodes(self):
        """Node state indices that edges enter, in edge order."""
        return list(dict.fromkeys(node for node, _ in self.edges))

    def node_edges(self):
        """Edge ids entering each node, node by node."""
        return [[e for e, (n, _) in enumerate(self.edges) if n == node] for node in self.nodes()]

    def topology_nodes(self):
        """Indices (into node_edges) of the nodes whose inputs selection chooses."""
        if self.keep is None:
            return []
        return [i for i, eids in enumerate(self.node_edges()) if len(eids) > self.keep]

    def selectable(self, names):
        """Op indices a selector may choose among `names`; `none` only when the family allows it,
        or when it is all there is."""
        ks = [k for k, n in enumerate(names) if self.none_selectable or n != "none"]
        return ks or list(range(len(names)))


@dataclass(frozen=True)
class Family:
    """What a cell family supplies besides its description.

    supernet(space, alpha_init_std, C=, layers=, num_classes=, in_channels=) -> Supernet
    genotype(space, genes) -> genotype; genes[t] = [(op name, input state), ...] per cell type,
      node by node, the kept inputs of each node in the order the selector lists them.
    parse_genotype(text) -> genotype, the inverse of str(genotype).
    param_size(genotype, num_classes) -> parameters of the retrain network (float).
    network(genotype, num_classes, in_channels, **retrain settings) -> the retrain network.
    benchmark: a tabular benchmark that knows every cell's trained accuracy, or None.
    published() -> {name: genotype} of the family's published genotypes (run.genotype names).
    """

    name: str
    cell: CellSpec
    supernet: Callable
    genotype: Callable
    parse_genotype: Callable
    param_size: Callable
    param_size_label: str
    network: Callable
    benchmark: Optional["Benchmark"] = None
    published: Callable = dict


@dataclass(frozen=True)
class Benchmark:
    """A tabular benchmark: the trained accuracy of every cell of a family, looked up.

    load(path) -> table with lookup(str(genotype), benchmark dataset) -> {'test_acc': ...} and
    datasets() -> the run dataset names it holds; a missing file raises FileNotFoundError.
    datasets: run dataset name -> benchmark name. make: the command that writes the table at
    `default_table`.
    """

    name: str
    load: Callable
    datasets: dict
    default_table: str
    make: str


@dataclass(frozen=True)
class SearchSpace:
    """Candidate op names per cell type and edge, within one family.

    op_lists[t][e]: the ops of edge e in cell type t; every edge has the same number K.
    headline: how the paper reports this space over seeds: 'best' (best of N, as for S1-S4)
      or 'mean' (mean ± std).
    """

    name: str
    family: Family
    op_lists: tuple
    headline: str = "mean"

    @property
    def cell(self):
        return self.family.cell

    def ops(self, cell):
        """The per-edge op lists of cell type `cell` (a name or an alpha row index)."""
        return self.op_lists[self.cell.type_index(cell)]

    @property
    def num_ops(self):
        return len(self.op_lists[0][0])

    def has(self, op):
        return any(op in row for rows in self.op_lists for row in rows)

    def genotype(self, genes):
        return self.family.genotype(self, genes)


_SPACES = {}


def register(*spaces):
    """Make search spaces known by name (a family module does this on import)."""
    for s in spaces:
        _SPACES[s.name] = s


def unregister(name):
    _SPACES.pop(name, None)


def spaces():
    """Every registered search space by name."""
    for module in FAMILY_MODULES:
        importlib.import_module(module)
    return dict(_SPACES)


def get_space(name):
    """The search space called `name`."""
    known = spaces()
    if name not in known:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(known)}")
    return known[name]


def count_params(net):
    """Parameters of a network without its auxiliary head, if any (the paper's 'param size')."""
    aux = getattr(net, "auxiliary_head", None)
    skip = sum(p.numel() for p in aux.parameters()) if aux is not None else 0
    return sum(p.numel() for p in net.parameters()) - skip


def first_argmax(values, candidates):
    """The candidate with the largest value; the first one listed wins ties."""
    best = candidates[0]
    for k in candidates[1:]:
        if values[k] > values[best]:  # strict: an equal later value never wins
            best = k
    return best


def magnitude_genes(weights, space, cell):
    """Classic magnitude parse of one cell type's mixing weights [edges][K] (DARTS' parse).

    Per edge the op is the first argmax over the selectable ops; with a free topology each node
    keeps its `keep` strongest inputs (strength = that edge's best weight; the lower input wins
    ties), the stronger first. With a fixed topology every edge stays, in input order.
    """
    ops, spec, genes = space.ops(cell), space.cell, []
    for eids in spec.node_edges():
        best = {e: first_argmax(weights[e], spec.selectable(ops[e])) for e in eids}
        kept = eids
        if spec.keep is not None:
            kept = sorted(eids, key=lambda e: -weights[e][best[e]])[:spec.keep]  # stable sort
        genes.append([(ops[e][best[e]], spec.edges[e][1]) for e in kept])
    return genes


def magnitude_parse(weights, space):
    """The genotype of mixing weights [cell types][edges][K] (nested lists) by magnitude."""
    return space.genotype([magnitude_genes(weights[t], space, t)
                           for t in range(len(space.cell.types))])
