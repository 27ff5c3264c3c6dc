"""The DARTS cell family: the DARTS space (paper §2) and RobustDARTS' S1-S4 (paper App. A.2).

Importing it registers the spaces darts, s1, s2, s3 and s4 (spaces.cell.get_space).
"""
from spaces.cell import Family, SearchSpace, register
from spaces.darts.genotype import Genotype, from_genes
from spaces.darts.network import EvalNetwork, param_size
from spaces.darts.network_imagenet import ImageNetNetwork
from spaces.darts.published import published
from spaces.darts.space import CELL, op_lists
from spaces.darts.supernet import DartsSupernet


def network(genotype, num_classes, in_channels, C=36, layers=20, auxiliary=True, kind="cifar"):
    """kind: 'cifar' (32x32 inputs, one stem) or 'imagenet' (the mobile setting's stems)."""
    if kind == "imagenet":
        return ImageNetNetwork(genotype, C, layers, num_classes, auxiliary)
    if kind != "cifar":
        raise ValueError(f"retrain.network must be 'cifar' or 'imagenet', not {kind!r}")
    return EvalNetwork(genotype, C, layers, num_classes, auxiliary, in_channels)


DARTS = Family(name="darts", cell=CELL, supernet=DartsSupernet,
               genotype=lambda space, genes: from_genes(genes), parse_genotype=Genotype.parse,
               param_size=lambda g, num_classes: param_size(g, num_classes=num_classes),
               param_size_label="C36/L20, no aux head", network=network, published=published)

# the paper reports S1-S4 as the best of its runs, the DARTS space as mean ± std (Tables 2, 3)
register(SearchSpace("darts", DARTS, op_lists("darts"), headline="mean"),
         *(SearchSpace(s, DARTS, op_lists(s), headline="best") for s in ("s1", "s2", "s3", "s4")))
