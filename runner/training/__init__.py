"""Training loops and their state: search, retrain, precision, checkpoints, RNG."""
