"""Zero-Cost-PT's candidate pool and its post-validation (placeholder, being written)."""


def validation_score(net, batches, proxy):
    """The proxy of a candidate's own network summed over `batches` (the authors'
    post_validate.py: highest sum wins)."""
    return sum(proxy(net, x, y) for x, y in batches)
