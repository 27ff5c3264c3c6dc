"""Every numeric setting of every configurable has a declared range (runner/config/ranges.py), and a
value outside it is refused at parse time with one line naming the binding, its value and the
range. The cases come from the declared ranges, so a new parameter without one fails here."""
import inspect

import gin
import pytest

from runner.config import configurables  # noqa: F401  (registers every configurable)
from runner.compat import gin_internals
from runner.config import parse_config
from runner.config.ranges import RANGES

from helpers import GIN_DIR, run_cli

QUICKSTART = str(GIN_DIR / "quickstart.gin")


def numeric(default):
    if isinstance(default, bool):
        return False
    if isinstance(default, (tuple, list)):
        return bool(default) and all(numeric(x) for x in default)
    return isinstance(default, (int, float))


def project_parameters():
    """'configurable.param' -> default, for every parameter gin may bind in this project."""
    out = {}
    for selector, target, denylist in gin_internals.configurables():
        if selector.split(".")[0] not in ("runner", "spaces", "tracking"):
            continue
        short = selector.rsplit(".", 1)[-1]
        for name, p in inspect.signature(target).parameters.items():
            if name not in denylist and name != "self":
                out[f"{short}.{name}"] = p.default
    return out


def test_every_numeric_parameter_has_a_range():
    params = project_parameters()
    assert len(params) > 60
    missing = sorted(k for k, d in params.items() if numeric(d) and k not in RANGES)
    assert missing == []
    assert sorted(set(RANGES) - set(params)) == []  # no range for a parameter that is gone


def test_defaults_are_in_range():
    params = project_parameters()
    assert [k for k, r in RANGES.items() if not r.holds(params[k])] == []


def bad_values(r):
    """Values just outside a range: below, above, fractional for an integer, None."""
    out = []
    if r.lo is not None:
        out.append(r.lo if r.lo_open else (r.lo - 1 if r.integer else r.lo - 0.5))
    if r.hi is not None:
        out.append(r.hi if r.hi_open else (r.hi + 1 if r.integer else r.hi + 0.5))
    if r.integer:
        out.append((r.lo or 0) + 1.5)
    if not r.optional:
        out.append(None)
    return out


CASES = [(key, v) for key, r in sorted(RANGES.items()) for v in bad_values(r)]


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_out_of_range_is_refused_naming_the_binding(key, value, clean_gin):
    default = project_parameters()[key]
    literal = (value,) if isinstance(default, tuple) and value is not None else value
    if isinstance(literal, int) and isinstance(default, float):
        literal = float(literal)  # the type check would answer first otherwise
    with pytest.raises((ValueError, TypeError)) as err:
        parse_config([QUICKSTART], [f"{key} = {literal!r}"])
    text = str(err.value)
    assert text.startswith(f"{key} = {literal!r}"), text
    if err.type is ValueError:
        assert f"is out of range: expected {RANGES[key]}" in text


def test_in_range_values_pass(clean_gin):
    parse_config([QUICKSTART], ["search.epochs = 0", "dataset.train_portion = 0.9",
                                "Perturbation.subset = None", "run.seeds = (0, 1)"])
    assert gin.query_parameter("search.epochs") == 0


def test_the_cli_refuses_before_any_work(tracking, capsys, clean_gin):
    for bind, culprit in (("search.epochs = -1", "search.epochs = -1"),
                          ("search.batch_size = 0", "search.batch_size = 0"),
                          ("dataset.train_portion = 1.0", "dataset.train_portion = 1.0")):
        rc, out, err = run_cli(["--gin", QUICKSTART, "--bind", bind], capsys)
        assert rc == 2 and err.count("\n") == 1, err
        assert err.startswith(f"runner: error: ValueError: {culprit} is out of range"), err
    assert tracking.search_experiments(filter_string="name = 'quickstart'") == []
