"""The tracker of a torchrun rank other than 0: the RunTracker calls of tracking/interface.py,
none of which reaches the tracking store (rank 0 alone writes the run)."""
from contextlib import contextmanager


class SilentTracker:
    records = False  # runner.lifecycle.runs.opened: no run to open, no folder to lock
    uri = "(rank 0's)"

    def __init__(self):
        self.run_id = None

    def check(self, timeout=10):
        pass

    def ui_command(self):
        return ""

    def ui_hint(self, run_id):
        return ""

    def log_model(self, model, example, info, register_as=None):
        return None

    @contextmanager
    def run(self, experiment, run_name=None, tags=None, parent_run_id=None, run_id=None):
        yield self

    def create_run(self, experiment, run_name, tags, parent_run_id=None):
        return None

    def set_status(self, status, run_id=None, tags=None):
        pass

    def newest(self, experiment, run_name):
        return None

    def find_runs(self, experiments, where="", missing_ok=True):
        return []

    def get_run(self, run_id):
        raise LookupError(f"run {run_id}: rank 0 reads the tracking store, not this rank")

    def metric_history(self, key, run_id=None):
        return []

    def download(self, run_id, path, dest):
        raise LookupError(f"run {run_id}: rank 0 reads the tracking store, not this rank")

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
