"""Study storage URLs: the default journal file, and the error of one that cannot be opened."""
import os

from tracking.secrets import redact


def default_url(url, study_name):
    """The storage URL, None spelled out as the default journal file of the study."""
    return url or "journal:" + os.path.join("outputs", "sweeps", f"{study_name}.journal")


def unreachable(url, error):
    """The one-line error of a storage that cannot be opened, the password left out."""
    text = " ".join(str(error).split("\n")[0].split())[:160]
    return ConnectionError(f"optuna storage {redact(url)} unreachable: {text}")
