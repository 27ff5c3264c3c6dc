"""Reading an experiment: gin files and bindings in, one-line errors out.

Used by the entry point (runner/cli.py) and by every sweep trial (runner/sweeps/).
"""
import logging
import os

import gin

from runner.compat import gin_internals

# The experiment gin files. In a checkout runner/gin links to the repository's gin/ folder; an
# installed package carries a copy of it there (package data, pyproject.toml).
REPO_GIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def gin_file(path):
    """`path` as given, or, when no such file exists, the shipped experiment file it names
    (`gin/s3_svhn.gin` works from any folder once the package is installed)."""
    if os.path.isfile(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    shipped = os.path.join(REPO_GIN, *(parts[1:] if parts[0] == "gin" else parts))
    if not os.path.isabs(path) and os.path.isfile(shipped):
        return shipped
    raise FileNotFoundError(f"gin file not found: {path}")


def gin_root(path):
    """The nearest ancestor folder named `gin` (where includes resolve), else the file's folder."""
    d = os.path.dirname(os.path.abspath(path))
    probe = d
    while probe != os.path.dirname(probe):
        if os.path.basename(probe) == "gin":
            return probe
        probe = os.path.dirname(probe)
    return d


class _QuietGinPathProbe(logging.Filter):
    """gin logs an ERROR for every search-path prefix an include does not resolve under."""

    def filter(self, record):
        return not (record.module == "resource_reader" and record.msg.startswith("Path not found"))


def parse_config(files, bindings):
    """Parse gin files and bindings; unknown configurables or parameters are errors.

    The configurables must be registered first (import runner.config.configurables). Returns the gin
    files as resolved (see `gin_file`)."""
    from runner.config.gin_types import check_types
    from runner.config.ranges import check_ranges

    logging.getLogger().addFilter(_QuietGinPathProbe())
    files = [gin_file(f) for f in files]
    gin.clear_config()
    # gin probes the working folder first, and a folder there that shadows an include's first
    # component (e.g. the data folder `data/`) breaks its package-resource probe: search the
    # gin roots first and the working folder last
    roots = [gin_root(f) for f in files] + [REPO_GIN]
    gin_internals.set_search_path(list(dict.fromkeys(roots)) + [""])
    gin.parse_config_files_and_bindings(files, bindings, skip_unknown=False)
    check_types()  # gin checks names, not types
    check_ranges()  # nor values: a negative epoch count would run and "finish"
    return files


def one_line(exc):
    """The exception as one line, without gin's 'In call to configurable ...' trail."""
    text = str(exc).split("\n  In call to configurable")[0]
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the parsed bindings as MLflow params -------------------------------------------------


def _short(selector):
    return selector.rsplit(".", 1)[-1]


def flat_bindings():
    """{'configurable.param': repr(value)} for every binding parsed so far (scoped: 'scope/...')."""
    out = {}
    for scope, selector, params in gin_internals.bindings():
        prefix = f"{scope}/{_short(selector)}" if scope else _short(selector)
        for name, value in params.items():
            out[f"{prefix}.{name}"] = _fmt(value)
    return out


def _fmt(value):
    if isinstance(value, gin.config.ConfigurableReference):
        value = "@" + value.selector
    return value if isinstance(value, str) else repr(value)  # the tracker shortens it
