"""Credentials never reach the tracking store, the printed lines or the files the runner writes:
`tracking.secrets.redact` applied where values leave the process, the original URL still
passed to every process that needs it (a real PostgreSQL with password auth, a real
`mlflow server`)."""
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import ROOT, TINY, argv, command
from pg import Postgres, free_port
from tracking.secrets import MASK, redact, redacted_output

# planted: it must appear nowhere it was not given (fixed: xdist workers collect the same ids)
PASSWORD = "pl4nted-Secret_q7Zx"


def credential_texts(pw):
    """Texts that carry `pw` as a credential, in each form a user may write one."""
    return [
        f"postgresql://nas:{pw}@db-host:5432/nas",
        f"postgresql+psycopg://nas:{pw}/x@db-host/nas",  # SQLAlchemy accepts a '/' in it
        f"mysql://:{pw}@db-host/nas",
        f"http://alice:{pw}@127.0.0.1:5000",
        f"seeds.storage = 'postgresql://nas:{pw}@db-host/nas'",
        f'{{"storage": "https://u:{pw}@host/x"}}',
        f"https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature={pw}&a=1",
        f"https://acct.blob.core.windows.net/c?sv=2022&sig={pw}",
        f"postgresql://nas@db-host/nas?sslmode=require&password={pw}",
        f"https://host/api?access_token={pw}",
    ]


@pytest.mark.parametrize("text", credential_texts(PASSWORD))
def test_every_credential_form_is_masked_and_the_rest_kept(text):
    out = redact(text)
    assert PASSWORD not in out and MASK in out
    assert redact(out) == out  # idempotent: redacting twice changes nothing
    host = re.search(r"://(?:[^@/]*@)?([^:/?]+)", text).group(1)
    assert host in out  # the URL still says where it points


@pytest.mark.parametrize("text", [
    "sqlite:///outputs/mlflow.db", "journal:outputs/sweeps/s.journal", "file:///tmp/mlruns",
    "http://127.0.0.1:5000/#/experiments/1/runs/abc", "https://host:8443/path?limit=10&page=2",
    "postgresql://nas@db-host:5432/nas", "search.epochs = 50", "select.crit = 'acc'", ""])
def test_text_without_credentials_is_left_as_it_is(text):
    assert redact(text) == text


def test_secret_environment_values_are_masked_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", PASSWORD[::-1])
    monkeypatch.setenv("SOME_FLAG_TOKEN", "1")  # too short to be told from ordinary text
    out = redact(f"FATAL: bad password {PASSWORD} and token {PASSWORD[::-1]}, step 1")
    assert PASSWORD not in out and PASSWORD[::-1] not in out and out.endswith("step 1")


def test_printed_lines_and_tracebacks_are_redacted(capsys):
    url = credential_texts(PASSWORD)[0]
    with redacted_output():
        print(f"storage {url}")
        print(url, file=sys.stderr)
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and "nas:***@db-host" in out and "nas:***@db-host" in err
    code = f"from tracking.secrets import redacted_output\nwith redacted_output():\n" \
           f"    raise ValueError({url!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert "ValueError" in done.stderr and PASSWORD not in done.stderr


def files_holding(folder, *needles):
    """Every file under `folder` whose bytes contain one of `needles`."""
    found = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            found += [path for n in needles if n.encode() in data]
    return found


def test_the_tracker_redacts_params_tags_metric_names_and_text_artifacts(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from tracking.mlflow_tracker import Tracker

    url = credential_texts(PASSWORD)[0]
    token = secrets.token_hex(8)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    gin_file = tmp_path / "mine.gin"
    gin_file.write_text(f"seeds.storage = '{url}'\n")
    blob = tmp_path / "weights.pt"
    blob.write_bytes(b"\0binary" * 10)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    tracker = Tracker(uri)
    with tracker.run("e", "r", tags={"storage": url}):
        tracker.params({"seeds.storage": url, "long": "x" * 480 + url})  # cut after redaction
        tracker.metrics({f"probe/{token}": 1.0}, 0)
        tracker.tags({"command": f"runner --bind \"seeds.storage = '{url}'\""})
        tracker.artifact(str(gin_file), "config")
        tracker.artifact(str(blob), "search")
        tracker.text(f"storage: {url}\n", "config/bindings.gin")
    assert files_holding(tmp_path / "store", PASSWORD, token) == []  # database, artifacts
    assert PASSWORD in gin_file.read_text()  # the user's own file is left as it is
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.data.params["seeds.storage"] == redact(url) and MASK in redact(url)
    assert "***" in run.data.tags["storage"] and len(run.data.params["long"]) == 500
    assert list(run.data.metrics) == ["probe/REDACTED"]
    local = MlflowClient(uri).download_artifacts(tracker.run_id, "", str(tmp_path / "down"))
    assert sorted(os.listdir(os.path.join(local, "config"))) == ["bindings.gin", "mine.gin"]
    assert os.path.getsize(os.path.join(local, "search", "weights.pt")) == blob.stat().st_size


# ------------------------------------------------------------------- real servers, end to end

@pytest.fixture(scope="module")
def guarded_postgres():
    """A PostgreSQL server that refuses a wrong or missing password (SCRAM)."""
    server = Postgres(password=secrets.token_urlsafe(12)).start()
    yield server
    server.stop()


def test_the_password_from_the_environment_opens_a_study_and_a_wrong_one_is_not_echoed(
        guarded_postgres, tmp_path, monkeypatch):
    from runner.sweeps.setup import open_study

    def study(name, url):
        return open_study(name, url, "minimize", 0, 1, 30, 90, 3, "w")[0]

    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # no ~/.pgpass to fall back on
    monkeypatch.delenv("PGPASSWORD", raising=False)
    wrong = "postgresql://{}:{}@127.0.0.1:{}/optuna".format(
        guarded_postgres.user, PASSWORD, guarded_postgres.port)
    with pytest.raises(ConnectionError) as refused:  # the server does ask for a password
        study("env", wrong)
    assert PASSWORD not in str(refused.value) and "***@127.0.0.1" in str(refused.value)
    monkeypatch.setenv("PGPASSWORD", guarded_postgres.password)
    assert len(study("env", guarded_postgres.url).trials) == 1  # a URL without a password
    monkeypatch.delenv("PGPASSWORD")
    assert study("env", guarded_postgres.url_with_password).study_name == "env"  # still works


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on loopback (no auth of its own: the credentials in the URL are
    sent and ignored, as a proxy in front of a team's server would check them)."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                break
        except OSError:
            assert time.time() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield root, port
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def run_runner(args, env, cwd):
    done = subprocess.run(command(*args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_seeds_and_a_sweep_with_passwords_in_their_urls_leave_them_nowhere(
        guarded_postgres, mlflow_server, tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient

    server_root, port = mlflow_server
    tracking_pw = secrets.token_urlsafe(12)
    db_pw, storage = guarded_postgres.password, guarded_postgres.url_with_password
    tracking_uri = f"http://alice:{tracking_pw}@127.0.0.1:{port}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("PGPASSWORD", None)  # the workers can only authenticate with the URL they are given
    seeds = argv("quickstart.gin", TINY, binds=[
        "run.seeds = [0, 1]", "run.experiment_name = 'vault'", f"seeds.storage = '{storage}'",
        "dataset.limit = 16", "select.tune_epochs = 0"])
    printed = run_runner([*seeds, "--workers", "2"], env, tmp_path)
    sweep = argv("quickstart.gin", TINY, binds=[
        "run.experiment_name = 'vault_sweep'", "sweep.params = {'select.tune_epochs': "
        "('int', 0, 1)}", "sweep.study_name = 'vault'", f"sweep.storage = '{storage}'",
        "sweep.n_trials = 1", "dataset.limit = 16"])
    printed += run_runner(sweep, env, tmp_path)
    printed += run_runner(sweep, env, tmp_path)  # the rerun joins the study with the real URL
    printed += run_runner(["report", "--experiment", "vault", "--experiment", "vault_sweep"],
                          env, tmp_path)

    assert db_pw not in printed and tracking_pw not in printed
    assert f"open it at http://alice:***@127.0.0.1:{port}/#/experiments/" in printed
    page = re.search(r"open it at (\S+)", printed).group(1)
    run_id = page.rsplit("/", 1)[1]
    assert urllib.request.urlopen(  # the printed page is the run's, on that server
        f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={run_id}").status == 200
    # the server's store and artifacts, the runs' outputs/ and the report files
    assert files_holding(server_root, db_pw, tracking_pw) == []
    assert files_holding(tmp_path, db_pw, tracking_pw) == []
    client = MlflowClient(f"http://127.0.0.1:{port}")
    runs = {name: client.search_runs([client.get_experiment_by_name(name).experiment_id])
            for name in ("vault", "vault_sweep")}
    for r in runs["vault"] + runs["vault_sweep"]:
        assert db_pw not in str(r.data.params) + str(r.data.tags) + str(list(r.data.metrics))
    # logged and masked: each seed's and each trial's storage binding
    assert {r.data.params.get("seeds.storage") for r in runs["vault"] if "seed" in r.data.tags
            } == {redact(storage)}
    assert {r.data.params.get("sweep.storage") for r in runs["vault_sweep"]
            if "sweep_trial" in r.data.tags} == {redact(storage)}
    # the studies and runs are those of a run without a password
    for name, seeds_or_trials in (("vault-seeds", 2), ("vault", 1)):
        study = optuna.load_study(study_name=name, storage=storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * seeds_or_trials
    finished = sorted(r.data.tags["seed"] for r in runs["vault"]
                      if "seed" in r.data.tags and r.info.status == "FINISHED")
    assert finished == ["0", "1"]


def test_an_unreachable_tracking_server_is_named_without_its_password():
    from tracking.mlflow_tracker import Tracker, TrackingError

    tracker = Tracker(f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}")  # nobody listens
    with pytest.raises(TrackingError) as refused:
        tracker.check(timeout=2)
    assert PASSWORD not in str(refused.value) and "alice:***@127.0.0.1" in str(refused.value)
