"""What the runner asks of a tracking store, written down once.

`tracking.mlflow_tracker.Tracker` implements it over MLflow; `tracking.silent.SilentTracker`
implements it for torchrun ranks other than 0 (nothing reaches the store). Code outside
`tracking/` sees runs only as `RunRecord`s and metric histories as `Point`s, never MLflow's
client or entities (tests/test_layout.py checks both).
"""
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Dict, List, Optional, Protocol, runtime_checkable


@dataclass(frozen=True)
class RunRecord:
    """One tracked run as the runner reads it back."""

    run_id: str
    status: str  # RUNNING, FINISHED, FAILED or KILLED
    tags: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, float] = field(default_factory=dict)  # the last value of each
    params: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    """One logged value of a metric."""

    step: int
    value: float
    timestamp: int = 0


@runtime_checkable
class RunTracker(Protocol):
    """The calls of the runner: open and close runs, log to the open run (`run_id`), read
    runs back."""

    run_id: Optional[str]
    records: bool  # False: a tracker that writes nothing (torchrun ranks other than 0)
    uri: str

    # --- the store -------------------------------------------------------------------
    def check(self, timeout: int = 10) -> None:
        """Raise TrackingError before any work when the store cannot be reached."""

    def ui_command(self) -> str:
        """The command that serves this store's UI (a local store)."""

    def ui_hint(self, run_id: str) -> str:
        """Where a person looks at a run: the run's page on a tracking server, else the
        `mlflow ui` command."""

    # --- runs ------------------------------------------------------------------------
    def run(self, experiment: str, run_name: Optional[str] = None, tags: Optional[dict] = None,
            parent_run_id: Optional[str] = None, run_id: Optional[str] = None
            ) -> ContextManager:
        """Open (or reopen `run_id`) a run as the current one; its status follows the body."""

    def create_run(self, experiment: str, run_name: str, tags: dict,
                   parent_run_id: Optional[str] = None) -> str:
        """A RUNNING run that outlives this call (a study's parent run); the current one."""

    def set_status(self, status: str, run_id: Optional[str] = None,
                   tags: Optional[dict] = None) -> None:
        """End a run (default: the current one) as FINISHED, FAILED or KILLED."""

    def newest(self, experiment: str, run_name: str) -> Optional[RunRecord]:
        """The newest run of that name in the experiment, or None."""

    def find_runs(self, experiments: List[str], where: str = "",
                  missing_ok: bool = True) -> List[RunRecord]:
        """Runs of the experiments matching `where` (MLflow's search syntax)."""

    def get_run(self, run_id: str) -> RunRecord:
        """The run; LookupError naming it when there is none."""

    def metric_history(self, key: str, run_id: Optional[str] = None) -> List[Point]:
        """Every value of metric `key` of a run (default: the current one), by step."""

    def download(self, run_id: str, path: str, dest: str) -> str:
        """Artifact `path` of a run copied under `dest`; its local path. LookupError when the
        run has no such artifact."""

    # --- logging to the current run ---------------------------------------------------
    def params(self, params: dict) -> None: ...

    def metrics(self, values: dict, step: int) -> None: ...

    def ensure_logged(self, values: dict, step: int) -> None:
        """`metrics` unless the run already has the first of them at `step` (resume)."""

    def tags(self, tags: dict) -> None: ...

    def artifact(self, path: str, folder: Optional[str] = None) -> None: ...

    def text(self, text: str, name: str) -> None: ...

    def json(self, obj, name: str) -> None: ...

    def plot(self, draw: Callable, *args, name: str) -> None: ...

    def log_model(self, model, example, info: dict, register_as: Optional[str] = None
                  ) -> Optional[str]:
        """Log an image classifier (a torch module) as the run's MLflow Model `model/`; its
        URI."""

    def history(self, prefix: str) -> Dict[str, List[Point]]:
        """Metric name -> its points, for the current run's metrics starting with `prefix`."""
