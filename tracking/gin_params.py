"""Flatten the parsed gin bindings into MLflow params."""
import gin

MAX_VALUE = 500  # MLflow accepts 6000 chars; keep params readable in the UI


def _short(selector):
    return selector.rsplit(".", 1)[-1]


def flat_bindings():
    """{'configurable.param': repr(value)} for every binding parsed so far (scoped: 'scope/...')."""
    out = {}
    for (scope, selector), params in gin.config._CONFIG.items():  # gin has no public iterator
        prefix = f"{scope}/{_short(selector)}" if scope else _short(selector)
        for name, value in params.items():
            out[f"{prefix}.{name}"] = _fmt(value)
    return out


def _fmt(value):
    if isinstance(value, gin.config.ConfigurableReference):
        value = "@" + value.selector
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."
