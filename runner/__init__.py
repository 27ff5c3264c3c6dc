"""The DARTS-PT experiment runner: gin composition, search, selection, retrain."""
