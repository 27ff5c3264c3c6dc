"""Credentials kept out of everything the runner writes.

`redact` is the one function that does it. It is applied where text leaves the process, not
where values are made: in the tracker (every param, tag, metric name, run name and text
artifact: tracking/mlflow_tracker.py), on the runner's stdout and stderr (`redacted_output`,
installed by runner/cli.py for every command) and in the files `runner report` writes.
Values passed to other processes (worker command lines, the environment) are never redacted.
"""
import os
import re
import sys
import traceback
from contextlib import contextmanager

MASK = "***"

# scheme://user:password@host, also scheme://:password@host. The password may hold a '/'
# (SQLAlchemy's URL parser accepts one), so it runs to the first '@' within the same word.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):[^\s@'\"]+@")
# query parameters that carry a credential: password=, token=, access_token=, S3's
# X-Amz-Signature / X-Amz-Credential / X-Amz-Security-Token, GCS's X-Goog-Signature, Azure
# SAS's sig=, api keys
_QUERY = re.compile(r"([?&;][\w.\-]*?(?:passw(?:or)?d|pwd|secret|token|signature|sig|credential|"
                    r"key|auth)[\w.\-]*=)[^&#\s'\"]+", re.IGNORECASE)
# environment variables whose values are secrets the clients read (MLflow, libpq, AWS, ...)
_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|_KEY$|CREDENTIALS?$)")
_MIN_ENV_SECRET = 6  # shorter values ("1", "true") would mask ordinary words


def env_secrets(environ=None):
    """The values of the environment's secret variables (MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_TOKEN, PGPASSWORD, AWS_SECRET_ACCESS_KEY, ...), longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items()
              if _SECRET_ENV.search(k.upper()) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)


def redact(text):
    """`text` with every credential masked: the password of a URL's user info, credential
    query parameters, and the literal value of any secret environment variable."""
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    for value in env_secrets():
        text = text.replace(value, MASK)
    return text


class RedactingStream:
    """A text stream that writes `redact(text)` to the stream it wraps."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self.stream.write(redact(text))

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def print_redacted_traceback(kind, value, tb):
    """sys.excepthook: the traceback of an exception nobody caught, redacted. It is printed
    after `main` has returned, outside `redacted_output`, so the hook stays installed."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


@contextmanager
def redacted_output():
    """stdout and stderr of this process redacted for the duration (nested calls wrap once),
    and uncaught exceptions' tracebacks from then on. Loggers that look sys.stderr up when
    they write (MLflow's) go through it too."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = print_redacted_traceback
    saved = sys.stdout, sys.stderr
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
