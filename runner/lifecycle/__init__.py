"""One run's life: the experiment and its modes, MLflow runs, given genotypes, devices."""
