"""In-memory tracker with the Tracker interface, for unit tests of single functions only."""


class MemoryTracker:
    def __init__(self):
        self.run_id = "memory"
        self.logged_metrics, self.logged_params, self.logged_tags, self.texts = [], {}, {}, {}
        self.files = {}  # artifact path -> bytes

    def metrics(self, values, step):
        self.logged_metrics.append((step, dict(values)))

    def ensure_logged(self, values, step):
        if (step, dict(values)) not in self.logged_metrics:
            self.metrics(values, step)

    def params(self, params):
        self.logged_params.update(params)

    def tags(self, tags):
        self.logged_tags.update(tags)

    def text(self, text, name):
        self.texts[name] = text

    def json(self, obj, name):
        import json

        self.text(json.dumps(obj, indent=1), name)  # as the Tracker: fails on what it can't write

    def history(self, key):
        """[(step, value)] of one metric, in logging order."""
        return [(s, m[key]) for s, m in self.logged_metrics if key in m]

    def artifact(self, path, folder=None):
        import os

        with open(path, "rb") as f:
            self.files[f"{folder}/{os.path.basename(path)}" if folder else
                       os.path.basename(path)] = f.read()

    def plot(self, draw, *args, name):
        """Draws for real (a broken plot fails the test) and keeps the PNG's bytes."""
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = draw(*args, os.path.join(tmp, name))
            self.artifact(path, "plots")
