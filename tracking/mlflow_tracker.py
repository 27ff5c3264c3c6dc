"""One MLflow run per runner call: params, batched metrics, artifacts, status."""
import fcntl
import json
import os
import shlex
import sys
import tempfile
import time
from contextlib import contextmanager

from tracking.interface import Point, RunRecord
from tracking.secrets import MASK, redact

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_PARAM = 500  # MLflow accepts 6000 chars; a param stays readable in the UI
_PROBE_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")


class TrackingError(RuntimeError):
    """The tracking backend cannot be reached or refuses a call."""


def tracking_uri():
    """MLFLOW_TRACKING_URI when set, else the embedded sqlite file in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


_CREATED = set()  # sqlite stores this process has seen created


def sqlite_path(uri):
    """The file of a sqlite tracking URI, or None (another backend, or in memory)."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split(":///", 1)[-1] if ":///" in uri else ""
    return None if path in ("", ":memory:") else path


def new_client(uri):
    """An MlflowClient on `uri`. A sqlite store is created and upgraded (which MLflow does when
    the first client of a process opens it) by one process only, under an flock beside the
    file; the others wait, then find it made. Processes started together on a fresh file
    otherwise race through MLflow's table creation and migrations and one of them fails. A
    tracking server needs none of this."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    if path is None or uri in _CREATED:
        return MlflowClient(tracking_uri=uri)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # dropped by the kernel if this process dies
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # the tables exist from here on
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    _CREATED.add(uri)
    return client


def clean(values):
    """{key: str(value)} of params or tags, both redacted (MLflow writes True as "1")."""
    return {redact(str(k)): redact(str(v)) for k, v in values.items()}


def metric_name(key):
    """`key` redacted, the mask spelled in letters: MLflow refuses '*' in a metric name (and
    '@', '?', '=': a URL with credentials cannot be one)."""
    return redact(key).replace(MASK, "REDACTED")


def shorten(value):
    """A param value cut to MAX_PARAM characters (after redaction, so that no cut URL
    escapes it)."""
    return value if len(value) <= MAX_PARAM else value[:MAX_PARAM - 3] + "..."


def text_of(path, probe=8192):
    """The content of a text file, None for a binary one (a NUL byte in its first `probe`
    bytes, as git decides, or not UTF-8): checkpoints and plots are not read whole."""
    with open(path, "rb") as f:
        head = f.read(probe)
        if b"\0" in head:
            return None
        data = head + f.read()
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def record(run):
    """An MLflow Run as the runner reads it (tracking/interface.py)."""
    return RunRecord(run.info.run_id, run.info.status, dict(run.data.tags),
                     dict(run.data.metrics), dict(run.data.params))


class Tracker:
    """The RunTracker of tracking/interface.py over MlflowClient; metrics go in batches (one
    call per step). `client` is for tracking/ alone."""

    records = True  # tracking/silent.py: the tracker of torchrun ranks other than 0

    def __init__(self, uri=None, plots=True):
        from tracking.signals import DeferringClient

        self.uri, self.draw_plots = uri or tracking_uri(), plots
        # a SIGTERM lands between store calls, never inside one (tracking/signals.py)
        self.client = DeferringClient(new_client(self.uri))
        self.run_id = None

    def check(self, timeout=10):
        """Fail fast, before any training, when the backend cannot be reached.

        MLflow retries HTTP calls for minutes by default; the probe uses no retry and a short
        timeout (the run itself keeps MLflow's retries for transient failures).
        """
        saved = {k: os.environ.get(k) for k in _PROBE_ENV}
        os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                           "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)})
        try:
            self.client.search_experiments(max_results=1)
        except Exception as e:  # noqa: BLE001 - any failure here means "unreachable"
            text = " ".join(str(e).split())[:200]
            raise TrackingError(f"tracking server {redact(self.uri)} unreachable: "
                                f"{redact(text)}") from e
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def experiment_id(self, name):
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp else self.client.create_experiment(name)

    def newest(self, experiment, run_name):
        """The RunRecord of the newest run of that name, or None."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.client.search_runs(
            [exp.experiment_id], f"tags.`mlflow.runName` = '{run_name}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return record(runs[0]) if runs else None

    def find_runs(self, experiments, where="", missing_ok=True):
        ids = []
        for name in experiments:
            exp = self.client.get_experiment_by_name(name)
            if exp is None and not missing_ok:
                raise ValueError(f"no MLflow experiment named {name!r}")
            ids += [exp.experiment_id] if exp is not None else []
        if not ids:
            return []
        return [record(r) for r in self.client.search_runs(ids, where, max_results=50000)]

    def get_run(self, run_id):
        try:
            return record(self.client.get_run(run_id))
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing run
            raise LookupError(f"no MLflow run {run_id} ({type(e).__name__})") from e

    def metric_history(self, key, run_id=None):
        points = self.client.get_metric_history(run_id or self.run_id, key)
        return sorted((Point(m.step, m.value, m.timestamp) for m in points),
                      key=lambda p: (p.step, p.timestamp))

    def download(self, run_id, path, dest):
        try:
            return self.client.download_artifacts(run_id, path, dest)
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing one
            raise LookupError(f"run {run_id} has no artifact {path} ({type(e).__name__})") from e

    def create_run(self, experiment, run_name, tags, parent_run_id=None):
        tags = clean(tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name,
                                     tags=tags)
        self.run_id = run.info.run_id
        return self.run_id

    def set_status(self, status, run_id=None, tags=None):
        """End a run (this one, or `run_id`) with `status`, setting `tags` on it first."""
        for k, v in clean(tags or {}).items():
            self.client.set_tag(run_id or self.run_id, k, v)
        self.client.set_terminated(run_id or self.run_id, status)

    @contextmanager
    def run(self, experiment, run_name=None, tags=None, parent_run_id=None, run_id=None):
        """Open (or with `run_id` reopen) a run; mark it FINISHED, FAILED on an exception,
        KILLED on Ctrl-C or SIGTERM."""
        tags = clean(tags or {})
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            self.tags(tags)
        else:
            self.create_run(experiment, run_name, tags)
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.client.set_terminated(self.run_id, status)

    def params(self, params):
        from mlflow.entities import Param

        items = [Param(k, shorten(v)) for k, v in sorted(clean(params).items())]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, values, step):
        """Log a dict of metrics at one step in a single call."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), ts, step) for k, v in values.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def ensure_logged(self, values, step):
        """Log `values` at `step` unless the run already has them (used when resuming)."""
        if not values:
            return
        key = next(iter(values))
        if step not in {p.step for p in self.metric_history(key)}:
            self.metrics(values, step)

    def tags(self, tags):
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in clean(tags).items()])

    def artifact(self, path, folder=None):
        """Log the file at `path`; a text file whose content holds a credential goes up
        redacted (a copy; the file itself is left as it is)."""
        text = text_of(path)
        if text is not None and redact(text) != text:
            self.text(text, os.path.join(folder or "", os.path.basename(path)))
        else:
            self.client.log_artifact(self.run_id, path, folder)

    def text(self, text, name):
        """Log `text` as the artifact file `name` (may contain a folder)."""
        folder, base = os.path.split(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, base)
            with open(path, "w") as f:
                f.write(redact(text))
            self.client.log_artifact(self.run_id, path, folder or None)

    def json(self, obj, name):
        self.text(json.dumps(obj, indent=1), name)

    def plot(self, draw, *args, name):
        """Draw a PNG with `draw(*args, path)` and log it under plots/; a plotting failure is a
        warning, never the end of a run whose results are already logged."""
        import sys

        if not self.draw_plots:  # `run.plots = False`: tiny test runs skip the seconds it costs
            return
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = draw(*args, os.path.join(tmp, name))
            except Exception as e:  # noqa: BLE001 - matplotlib errors vary
                print(f"runner: warning: plot {name} not drawn: {type(e).__name__}: {e}",
                      file=sys.stderr)
                self.tags({f"plot_error.{name}": f"{type(e).__name__}: {e}"[:250]})
                return
            self.artifact(path, "plots")

    def log_model(self, model, example, info, register_as=None):
        """Log `model` (a torch module: uint8 images (N, H, W, C) in, float scores out) as
        the MLflow Model `model/` of the current run: mlflow.pytorch flavour, exported with
        torch.export ('pt2': a graph, no pickled class, loads with torch alone), its signature
        with any N, H and W, `example` (N > 1) as its input example, `info` in its metadata
        and beside it as model/info.json. With `register_as`, a new version of that
        registered model. Returns the model's URI."""
        import mlflow.pytorch
        import numpy as np
        import torch
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        signature = ModelSignature(
            Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, example.shape[-1]))]),
            Schema([TensorSpec(np.dtype(np.float32), (-1, len(info["classes"])))]))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model")
            mlflow.pytorch.save_model(
                model, path, signature=signature, input_example=example,
                serialization_format="pt2", metadata=info,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                  f"mlflow=={mlflow.__version__}"])
            with open(os.path.join(path, "info.json"), "w") as f:
                json.dump(info, f, indent=1)
            self.client.log_artifacts(self.run_id, path, "model")
        uri = f"runs:/{self.run_id}/model"
        if register_as:
            from mlflow.exceptions import MlflowException

            try:
                self.client.create_registered_model(register_as)
            except MlflowException:  # it exists: a new version of it
                pass
            version = self.client.create_model_version(register_as, uri, run_id=self.run_id)
            self.tags({"registered_model": f"{register_as}/{version.version}"})
        return uri

    def history(self, prefix):
        """Metric name -> its points, for the run's metrics starting with `prefix`."""
        keys = [k for k in self.get_run(self.run_id).metrics if k.startswith(prefix)]
        return {k: self.metric_history(k) for k in keys}

    def ui_hint(self, run_id):
        """Where a person looks at run `run_id`: on a tracking server, the run's page (its URL
        redacted); on a local store, the `mlflow ui` command that serves it."""
        if self.uri.startswith(("http://", "https://")):
            experiment = self.client.get_run(run_id).info.experiment_id
            return (f"open it at {redact(self.uri.rstrip('/'))}/#/experiments/{experiment}"
                    f"/runs/{run_id}")
        if self.uri.startswith("databricks"):
            return f"open it in the Databricks workspace of {redact(self.uri)}"
        return f"open the UI with:  {self.ui_command()}"

    def ui_command(self):
        """The command that opens the MLflow UI on this tracking store, as it can be pasted:
        the mlflow executable beside the running interpreter (a virtual environment need not
        be active), quoted for a POSIX shell. A password in a database URI is masked: the
        command then works with the password in the environment (PGPASSWORD, ~/.pgpass)."""
        beside = os.path.join(os.path.dirname(sys.executable), "mlflow")
        exe = beside if os.access(beside, os.X_OK) else "mlflow"
        return f"{shlex.quote(exe)} ui --backend-store-uri {shlex.quote(redact(self.uri))}"
