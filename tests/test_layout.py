"""The code's shape: no import cycles among the project's modules (function-level imports
included), no DARTS cell facts outside the DARTS family, library internals only in
runner/compat, and every private attribute that module relies on still there."""
import ast
import importlib
import re

import pytest

from helpers import ROOT

PACKAGES = ("runner", "spaces", "tracking")


def modules():
    """module name -> path, for every .py file of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "gin" in path.relative_to(ROOT).parts:  # runner/gin: the experiment files
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(name, path, known):
    """The project modules `name` imports anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known and m != name}


def cycles(graph):
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    known = modules()
    graph = {m: imports(m, p, known) for m, p in known.items()}
    assert sum(len(v) for v in graph.values()) > 50  # the walk sees the real imports
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# the DARTS cell's facts, as code would spell them
DARTS_FACTS = re.compile(r"""["'](normal|reduce)["']|\bNUM_EDGES\b|\bSTEPS\b|\bCELLS\b"""
                         r"""|(?<!\.)\b(node_edges|edge_inputs)\(\)|(?<!fontsize=)\b14\b""")


def test_darts_cell_facts_live_in_the_darts_family():
    offenders = []
    for name, path in modules().items():
        if name.startswith("spaces.darts"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if DARTS_FACTS.search(code) and not code.strip().startswith(('"', "'")):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


PRIVATE = re.compile(r"\b(gin\.config\._\w+|_trial_id|\._storage\b|optuna\.storages\._\w+"
                     r"|_load_from_state_dict)")


def test_library_internals_only_in_compat():
    offenders = [f"{path.relative_to(ROOT)}:{i}"
                 for name, path in modules().items() if not name.startswith("runner.compat")
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if PRIVATE.search(line)]
    assert offenders == []


def test_gin_internals_are_there():
    import gin

    from runner.config import configurables  # noqa: F401  (`search` must be registered)
    from runner.compat import gin_internals

    for attr in gin_internals.ATTRIBUTES:
        assert hasattr(gin.config, attr), f"gin-config {gin.__version__} has no config.{attr}"
    gin.clear_config()
    gin.parse_config("search.epochs = 3")
    assert any(sel.endswith("search") for _, sel, _ in gin_internals.bindings())
    gin.clear_config()


def test_optuna_internals_are_there():
    import optuna

    from runner.compat import optuna_internals

    study = optuna.create_study()
    trial = study.ask()
    for attr in optuna_internals.ATTRIBUTES:
        assert hasattr(trial, attr), f"optuna {optuna.__version__} Trial has no {attr}"
        assert hasattr(study.trials[0], attr), f"optuna {optuna.__version__} FrozenTrial: {attr}"
    assert study._storage.get_trial(optuna_internals.trial_id(trial)).number == trial.number


@pytest.mark.parametrize("dist", ["gin-config", "optuna", "torch", "mlflow"])
def test_library_versions_are_bounded(dist):
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"{re.escape(dist)}>=[\d.]+,<[\d.]+"', text), dist
    importlib.import_module({"gin-config": "gin"}.get(dist, dist))


def calls_in(path, names):
    """(line, 'obj.attr') of every attribute access `obj.attr` with attr in `names`."""
    return [(n.lineno, f"{ast.unparse(n.value)}.{n.attr}")
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Attribute) and n.attr in names]


def test_settings_are_read_where_they_are_passed():
    """Bindings are read back by the config package alone: every other module gets its settings
    as arguments (or as the configurable objects the mode dispatch builds)."""
    offenders = [f"{path.relative_to(ROOT)}:{line}: {what}"
                 for name, path in modules().items()
                 if not name.startswith(("runner.config", "runner.compat"))
                 for line, what in calls_in(path, {"get_bindings", "query_parameter"})]
    assert offenders == []


def test_only_tracking_touches_the_mlflow_client():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {what}"
                 for name, path in modules().items() if not name.startswith("tracking")
                 for line, what in calls_in(path, {"client"})]
    mlflow_imports = [name for name, path in modules().items()
                      if not name.startswith("tracking") and "mlflow" in imported_libraries(path)]
    assert offenders == [] and mlflow_imports == []


def imported_libraries(path):
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_training_imports_nothing_above_it():
    """runner/training/ is the bottom layer of the runner: the loops, their state, precision
    and the ranks; nothing in it imports the runner's other packages or its root modules."""
    known = modules()
    upward = [f"{m} -> {d}" for m, p in known.items() if m.startswith("runner.training")
              for d in imports(m, p, known)
              if d.startswith("runner") and not d.startswith(("runner.training", "runner.compat"))]
    assert upward == []
    assert any(m.startswith("runner.training") for m in known)  # the walk sees the package


def test_the_root_of_runner_holds_the_entry_points_only():
    loose = sorted(p.name for p in (ROOT / "runner").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py"]


def test_the_trackers_implement_the_interface():
    """Every call of tracking/interface.py's RunTracker, with the same parameters, on the MLflow
    tracker and the silent one of torchrun ranks other than 0."""
    import inspect

    from tracking.interface import RunTracker
    from tracking.mlflow_tracker import Tracker
    from tracking.silent import SilentTracker

    calls = {n: f for n, f in vars(RunTracker).items()
             if callable(f) and not n.startswith("_")}
    assert {"find_runs", "get_run", "download", "metric_history", "run", "metrics"} <= set(calls)
    for impl in (Tracker, SilentTracker):
        for name, proto in calls.items():
            mine = getattr(impl, name, None)
            assert mine is not None, f"{impl.__name__} lacks {name}"
            want = list(inspect.signature(proto).parameters)
            assert list(inspect.signature(mine).parameters) == want, (impl.__name__, name)
