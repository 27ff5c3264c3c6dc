#!/usr/bin/env python
"""Screenshot the MLflow UI page that compares the runs of one experiment (headless Chromium).

    python scripts/mlflow_screenshot.py --tracking-uri sqlite:///mlflow.db \\
        --experiment quickstart [--out docs/mlflow_compare.png] [--plots docs]

Starts `mlflow server` on a free loopback port against the tracking store (artifacts proxied
from a temporary folder for anything the UI creates), waits until it answers, lets headless
Chromium render `#/compare-runs?runs=[...]&experiments=[...]` (or the experiment's runs table
with --view runs, its metric charts with --view charts) into a PNG, and stops the server.

The server listens on 127.0.0.2 where it can: the UI opens its "MLflow Assistant" side panel
on first load when the page's host is localhost/127.0.0.1, and it would cover a third of the
screenshot. --plots DIR also writes DIR/alpha_history.png (tracking.plots.alpha_history) from
the newest of those runs that has `search/alphas.npz`.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


class ScreenshotError(RuntimeError):
    """A step failed; the message is the one line printed to the user."""


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True,
                   help="MLflow backend store, e.g. sqlite:///path/mlflow.db")
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "mlflow_compare.png"),
                   help="PNG to write (default: docs/mlflow_compare.png in the repository)")
    p.add_argument("--view", choices=("compare", "runs", "charts"), default="compare",
                   help="compare: the compare-runs page with its parameter and metric tables "
                        "(default); runs: the runs table; charts: the runs' metric charts")
    p.add_argument("--max-runs", type=int, default=8,
                   help="newest runs to compare (default 8)")
    p.add_argument("--window", default="1600,2000",
                   help="browser window WIDTH,HEIGHT (default 1600,2000; the UI does not "
                        "scroll in a screenshot, so the height sets how much is shown)")
    p.add_argument("--host", default="127.0.0.2",
                   help="loopback address for the server (default 127.0.0.2, falling back "
                        "to 127.0.0.1 where that cannot be bound)")
    p.add_argument("--full-colour", action="store_true",
                   help="keep RGB PNGs (default: a 256-colour palette, 2-3x smaller)")
    p.add_argument("--wait-ms", type=int, default=15000,
                   help="Chromium virtual time budget for the page to render (default 15000)")
    p.add_argument("--server-timeout", type=float, default=180.0,
                   help="seconds to wait for the MLflow server to answer (default 180)")
    p.add_argument("--browser", help="browser executable (default: chromium on PATH)")
    p.add_argument("--plots", metavar="DIR",
                   help="also write DIR/alpha_history.png from the newest run's alphas")
    return p


def find_browser(explicit=None):
    """Path of the headless browser, or raise with a one-line hint naming the missing browser."""
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise ScreenshotError(f"browser {explicit!r} not found")
        return path
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise ScreenshotError("headless Chromium not found (no chromium on PATH); install it, e.g. "
                          "`apt-get install -y chromium`, or pass --browser")


def absolute_uri(uri):
    """A sqlite URI with a relative path made absolute (the server runs in a temporary folder)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


def experiment_runs(uri, name, max_runs):
    """(experiment id, [run ids newest first]) read straight from the tracking store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = [e.name for e in client.search_experiments()]
        raise ScreenshotError(f"no experiment {name!r} in {uri}; known: {', '.join(known)}")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=max_runs)
    if not runs:
        raise ScreenshotError(f"experiment {name!r} has no runs")
    return exp.experiment_id, [r.info.run_id for r in runs]


def page_url(base, view, experiment_id, run_ids):
    """The UI address: the compare-runs page of `run_ids`, or the experiment's runs page."""
    if view == "runs":
        return f"{base}/#/experiments/{experiment_id}/runs"
    if view == "charts":
        return f"{base}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART"
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids),
                                    "experiments": json.dumps([experiment_id])})
    return f"{base}/#/compare-runs?{query}"


def free_port(host):
    """(host, a free port on it); 127.0.0.1 when `host` cannot be bound (e.g. macOS has no
    127.0.0.2 alias by default)."""
    for h in dict.fromkeys((host, "127.0.0.1")):
        try:
            with socket.socket() as s:
                s.bind((h, 0))
                return h, s.getsockname()[1]
        except OSError:
            continue
    raise ScreenshotError(f"cannot bind a port on {host} or 127.0.0.1")


def start_server(uri, host, port, workdir):
    """`mlflow server` in its own process group, logging to workdir/server.log.

    MLflow only accepts localhost Host headers and same-origin requests from localhost by
    default: another loopback address has to be allowed explicitly.
    """
    artifacts = os.path.join(workdir, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    log = open(os.path.join(workdir, "server.log"), "w")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", artifacts, "--host", host, "--port", str(port),
           "--workers", "1", "--allowed-hosts", f"{host}:{port},{host},localhost",
           "--cors-allowed-origins", f"http://{host}:{port}"]
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                start_new_session=True)
    finally:
        log.close()  # the child has its own copy


def wait_until_up(proc, base, timeout, workdir):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ScreenshotError(f"mlflow server exited with {proc.returncode}: "
                                  f"{tail(os.path.join(workdir, 'server.log'))}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise ScreenshotError(f"mlflow server did not answer within {timeout:.0f}s: "
                          f"{tail(os.path.join(workdir, 'server.log'))}")


def tail(path, n=300):
    try:
        with open(path) as f:
            return " ".join(f.read()[-n:].split())
    except OSError:
        return ""


def stop_server(proc):
    """SIGTERM the server's process group (it forks workers), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def palette_png(src, dst):
    """Re-encode a screenshot with an adaptive 256-colour palette (Pillow ships with
    matplotlib); UI pages have few colours, so text stays sharp at a third of the size."""
    from PIL import Image

    with Image.open(src) as im:
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def screenshot(browser, url, out, window, wait_ms, workdir, full_colour=False):
    profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
    tmp_png = os.path.join(workdir, "shot.png")
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}",
           f"--virtual-time-budget={wait_ms}", f"--screenshot={tmp_png}", url]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    if not os.path.isfile(tmp_png):
        raise ScreenshotError(f"chromium wrote no screenshot (exit {r.returncode}): "
                              f"{' '.join(r.stdout[-300:].split())}")
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    if full_colour:
        shutil.copyfile(tmp_png, out)
    else:
        palette_png(tmp_png, out)
    return out


def alpha_plot(uri, run_ids, folder, full_colour=False):
    """DIR/alpha_history.png from the newest run with search/alphas.npz, in its `space`."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    sys.path.insert(0, REPO)
    from tracking.plots import alpha_history

    client = MlflowClient(tracking_uri=uri)
    for run_id in run_ids:
        if not any(a.path == "search/alphas.npz" for a in client.list_artifacts(run_id, "search")):
            continue
        run = client.get_run(run_id)
        space = run.data.tags.get("space") or run.data.params.get("run.space") or "darts"
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, "search/alphas.npz", tmp)
            alphas = np.load(path)["alphas"]
        out = alpha_history(alphas, space, os.path.join(folder, "alpha_history.png"))
        if not full_colour:
            palette_png(out, out)
        return out
    raise ScreenshotError("no run of the experiment has search/alphas.npz")


def main(argv=None):
    args = parser().parse_args(argv)
    args.tracking_uri = absolute_uri(args.tracking_uri)
    try:
        browser = find_browser(args.browser)
        exp_id, run_ids = experiment_runs(args.tracking_uri, args.experiment, args.max_runs)
        if args.plots:
            print(alpha_plot(args.tracking_uri, run_ids, args.plots, args.full_colour))
        workdir = tempfile.mkdtemp(prefix="mlflow-screenshot-")
        host, port = free_port(args.host)
        base = f"http://{host}:{port}"
        proc = start_server(args.tracking_uri, host, port, workdir)
        try:
            wait_until_up(proc, base, args.server_timeout, workdir)
            url = page_url(base, args.view, exp_id, run_ids)
            print(url, flush=True)
            print(screenshot(browser, url, args.out, args.window, args.wait_ms, workdir,
                             args.full_colour))
        finally:
            stop_server(proc)
            shutil.rmtree(workdir, ignore_errors=True)
    except ScreenshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
