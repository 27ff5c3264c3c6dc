"""Published genotypes by name, shipped as data (published.json): the 56 of DARTS-PT (darts-pt
sota/cnn/genotypes.py: darts_pt_* and blank_pt_* for the DARTS space = s5 and S1-S4, on
CIFAR-10, CIFAR-100 and SVHN) and DARTS V1/V2 (Liu et al. 2019). Each entry also says its
space, the dataset searched on, the method and the source."""
import functools
import json
from importlib import resources

from spaces.darts.genotype import Genotype


@functools.lru_cache(maxsize=1)
def table():
    """name -> entry (normal, reduce, space, searched_on, method, source)."""
    return json.loads(resources.files("spaces.darts").joinpath("published.json").read_text())


def published():
    """name -> Genotype of every published genotype."""
    return {name: genotype(entry) for name, entry in table().items()}


def genotype(entry):
    return Genotype(tuple((op, int(j)) for op, j in entry["normal"]),
                    tuple((op, int(j)) for op, j in entry["reduce"]))
