"""Optuna internals: a trial's storage id, needed to call the (public) storage API on it.

`Trial` and `FrozenTrial` expose their number but not the id the storage methods take.
"""
ATTRIBUTES = ("_trial_id",)


def trial_id(trial):
    """The storage id of a `Trial` or `FrozenTrial`."""
    return trial._trial_id
