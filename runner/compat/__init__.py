"""Private attributes of gin-config and Optuna that have no public equivalent, in one place.

Each module names the attributes it relies on in `ATTRIBUTES`; tests/test_layout.py
(test_gin_internals_are_there, test_optuna_internals_are_there) fails loudly when a new library
release drops one (pyproject.toml also bounds the versions).
"""
