"""MLflow tracking helpers: runs, batched metrics, artifacts, gin bindings as params."""
