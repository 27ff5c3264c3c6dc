"""The NAS-Bench-201 cell family (Dong & Yang, ICLR 2020): one space, `nb201`.

Importing it registers the space (spaces.cell.get_space).
"""
from spaces.cell import Benchmark, Family, SearchSpace, register
from spaces.nb201 import table
from spaces.nb201.genotype import Structure, from_genes
from spaces.nb201.network import Network, param_size
from spaces.nb201.space import CELL, OPS
from spaces.nb201.supernet import Nb201Supernet


def network(structure, num_classes, in_channels, C=16, layers=5, auxiliary=False, kind="cifar"):
    del auxiliary  # the benchmark network has no auxiliary head
    if kind != "cifar":
        raise ValueError(f"retrain.network = {kind!r}: NAS-Bench-201 has one network (its "
                         "benchmark's), 'cifar'")
    return Network(structure, C, layers, num_classes, in_channels)


# the benchmark's cells are this family's structure strings (spec of the table: table.py)
BENCHMARK = Benchmark(name="NAS-Bench-201", load=table.Table.load,
                      datasets=table.BENCH_DATASET,
                      default_table=table.default_table_path(),
                      make=table.convert_command(table.default_table_path()))

NB201 = Family(name="nb201", cell=CELL, supernet=Nb201Supernet,
               genotype=lambda space, genes: from_genes(genes), parse_genotype=Structure.parse,
               param_size=lambda g, num_classes: param_size(g, num_classes),
               param_size_label="NAS-Bench-201 C16/N5", network=network,
               benchmark=BENCHMARK)

# the paper reports NAS-Bench-201 as mean ± std over seeds (Table 4)
register(SearchSpace("nb201", NB201, ((OPS,) * CELL.num_edges,), headline="mean"))
