"""Private attributes of gin-config and Optuna that have no public equivalent, in one place.

Each module names the attributes it relies on in `ATTRIBUTES`; tests/test_compat.py fails
loudly when a new library release drops one (pyproject.toml also bounds the versions).
"""
