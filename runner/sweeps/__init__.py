"""Optuna sweeps of selection settings: one nested MLflow run per trial."""
