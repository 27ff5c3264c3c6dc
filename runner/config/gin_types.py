"""Type checks of gin bindings against the defaults of the bound parameters."""
import inspect

import gin

from runner.compat import gin_internals


def check_types():
    """A bound value must have the type of the parameter's default (an int may stand for a float).

    gin checks binding names but not types: a string where a number belongs would otherwise
    fail deep inside training with a message that does not name the binding.
    """
    for _, selector, params in gin_internals.bindings():
        defaults = inspect.signature(gin_internals.target(selector)).parameters
        for name, value in params.items():
            default = defaults[name].default if name in defaults else None
            if not same_kind(default, value):
                raise TypeError(f"{selector.rsplit('.', 1)[-1]}.{name} = {value!r}: expected type "
                                f"{type(default).__name__}, like the default {default!r}")


def same_kind(default, value):
    """Whether `value` may replace `default`; None and required defaults accept anything."""
    if default is None or default is inspect.Parameter.empty or default is gin.REQUIRED:
        return True
    if isinstance(value, gin.config.ConfigurableReference):
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (str, tuple, list)):
        return isinstance(value, (str,) if isinstance(default, str) else (tuple, list))
    return True
