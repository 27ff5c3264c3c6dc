"""The tracker of a torchrun rank other than 0: the same calls as Tracker, and none of them
reaches the tracking store (rank 0 alone writes the run)."""
from contextlib import contextmanager


class SilentTracker:
    records = False  # runner.lifecycle.runs.opened: no run to open, no folder to lock
    client = None
    uri = "(rank 0's)"

    def __init__(self):
        self.run_id = None

    def check(self, timeout=10):
        pass

    def newest(self, experiment, run_name):
        return None

    @contextmanager
    def run(self, experiment, **kwargs):
        yield self

    def params(self, params):
        pass

    def metrics(self, values, step):
        pass

    def ensure_logged(self, values, step):
        pass

    def tags(self, tags):
        pass

    def artifact(self, path, folder=None):
        pass

    def text(self, text, name):
        pass

    def json(self, obj, name):
        pass

    def plot(self, draw, *args, name):
        pass

    def history(self, prefix):
        return {}

    def ui_command(self):
        return ""
