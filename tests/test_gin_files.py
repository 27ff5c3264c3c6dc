"""The experiment files' parts bind disjoint settings, so the order of their includes does not
matter; settings that must agree are bound once."""
import itertools
import re

import pytest

from helpers import ROOT, gin_statements
from runner.config import configurables  # noqa: F401  (parse_config needs them registered)
from runner.config import flat_bindings, parse_config

GIN = ROOT / "gin"
PARTS = ("spaces", "methods", "selectors", "data", "retrain")
EXPERIMENTS = sorted(p for p in GIN.glob("*.gin"))
INCLUDE = re.compile(r"^include .*$", re.M)


def bound_keys(path):
    """The keys a gin file binds, its includes' too (they resolve under gin/)."""
    keys = []
    for s in gin_statements(path):
        keys += bound_keys(GIN / s[1]) if s[0] == "include" else [s[1]]
    return keys


def keys_of(folder):
    """Every key a file of the folder binds, its includes resolved."""
    return {path.name: set(bound_keys(path)) for path in (GIN / folder).glob("*.gin")}


@pytest.mark.parametrize("a,b", list(itertools.combinations(PARTS, 2)))
def test_no_key_is_bound_by_two_kinds_of_part(a, b):
    both = [(fa, fb, sorted(ka & kb)) for fa, ka in keys_of(a).items()
            for fb, kb in keys_of(b).items() if ka & kb and not {fa, fb} & {"darts_cifar10.gin",
                                                                          "imagenet_mobile.gin"}]
    assert both == []


def test_the_split_of_the_train_set_is_bound_once():
    every = [set(bound_keys(p)) for p in GIN.rglob("*.gin")]
    assert not any(k.endswith("train_portion") and k != "dataset.train_portion"
                   for keys in every for k in keys)


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if len(INCLUDE.findall(p.read_text())) > 1],
                         ids=lambda p: p.name)
def test_include_order_does_not_matter(path, tmp_path):
    text = path.read_text()
    includes = INCLUDE.findall(text)
    parse_config([str(path)], [])
    want = flat_bindings()
    body = INCLUDE.sub("", text)
    flipped = tmp_path / "gin" / path.name  # a `gin` folder: includes resolve as for the original
    flipped.parent.mkdir()
    flipped.write_text("\n".join(reversed(includes)) + "\n" + body)
    parse_config([str(flipped)], [])
    assert flat_bindings() == want
