"""gin-config internals (gin/config.py, 0.5): the include search path and the parsed bindings.

gin has no public way to put its search prefixes in an order, nor to iterate over the
bindings that were parsed.
"""
import gin

ATTRIBUTES = ("_LOCATION_PREFIXES", "_CONFIG", "_REGISTRY")


def set_search_path(prefixes):
    """Resolve includes under `prefixes`, in this order, and nowhere else."""
    gin.config._LOCATION_PREFIXES[:] = list(prefixes)


def bindings():
    """[(scope, selector, {param: value})] of every binding parsed so far."""
    return [(scope, selector, dict(params))
            for (scope, selector), params in gin.config._CONFIG.items()]


def target(selector):
    """The function or class a configurable selector names (for its signature)."""
    return gin.config._REGISTRY.get_match(selector).wrapped


def is_reference(value):
    """Whether a bound value is an `@configurable` reference rather than a literal."""
    return isinstance(value, gin.config.ConfigurableReference)


def configurables():
    """[(selector, function or class, denylist)] of every registered configurable."""
    return [(sel, c.wrapped, tuple(c.denylist or ())) for sel, c in gin.config._REGISTRY.items()]
