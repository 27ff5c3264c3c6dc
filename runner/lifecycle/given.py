"""`run.genotype`: the genotype a retrain-only run trains, without search or selection (what the
reference's `train.py --arch NAME` does): a genotype string, a genotype.json file, or the
MLflow run that selected it, by id."""
import os
import re
from typing import NamedTuple, Optional

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class Given(NamedTuple):
    genotype: object
    tags: dict  # where it came from (genotype_source, and the source run's tags)
    source_run: Optional[str]  # the MLflow run that selected it: the retrain's parent


class GenotypeError(ValueError):
    """A `run.genotype` that names no genotype of the run's space."""


def given_genotype(value, space, tracker):
    """The Given of `run.genotype = value`."""
    value = str(value).strip()
    if RUN_ID.match(value):
        return from_run(value, space, tracker)
    named = space.family.published()
    if value in named:  # a published genotype by name (spaces/darts/published.json)
        return Given(checked(named[value], space, value),
                     {"genotype_source": f"published {value}"}, None)
    if os.path.isfile(value):
        with open(value) as f:
            text = f.read()
        source = {"genotype_source": f"file {os.path.abspath(value)}"}
    else:
        text, source = value, {"genotype_source": "string"}
    return Given(checked(parse(text, space, value), space, value), source, None)


def parse(text, space, what):
    try:
        return space.family.parse_genotype(text)
    except (ValueError, KeyError, TypeError, SyntaxError, IndexError) as e:
        raise GenotypeError(
            f"run.genotype {short(what)}: not a {space.family.name} genotype string, "
            f"published genotype name, genotype.json file or MLflow run id "
            f"({type(e).__name__})") from e


def checked(genotype, space, what):
    """Every op of `genotype` is one of the space's."""
    unknown = sorted({op for op in genotype.ops() if not space.has(op)})
    if unknown:
        raise GenotypeError(f"run.genotype {short(what)}: ops {unknown} are not in the "
                            f"{space.name} space")
    return genotype


def from_run(run_id, space, tracker):
    """The genotype tag of a finished selection run; the retrain nests under that run."""
    try:
        tags = tracker.get_run(run_id).tags
    except LookupError as e:
        raise GenotypeError(f"run.genotype: {e}") from e
    if "genotype" not in tags:
        raise GenotypeError(f"run.genotype: run {run_id} has no genotype tag (a search-only or "
                            "unfinished run)")
    if tags.get("space", space.name) != space.name:
        raise GenotypeError(f"run.genotype: run {run_id} searched the {tags['space']} space, "
                            f"not {space.name}")
    genotype = checked(parse(tags["genotype"], space, run_id), space, run_id)
    copied = {k: tags[k] for k in ("method", "selector", "dataset", "seed") if k in tags}
    return Given(genotype, {"genotype_source": f"run {run_id}", "genotype_run": run_id,
                            **{f"source_{k}": v for k, v in copied.items()}}, run_id)


def short(text, n=60):
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[:n] + "...")
