"""Study storage URLs: the default journal file, and how they appear in tags and errors."""
import os
import re


def redact(url):
    """A storage URL without its password, fit for a tag or an error message."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def default_url(url, study_name):
    """The storage URL, None spelled out as the default journal file of the study."""
    return url or "journal:" + os.path.join("outputs", "sweeps", f"{study_name}.journal")


def unreachable(url, error):
    """The one-line error of a storage that cannot be opened, the password left out."""
    text = " ".join(str(error).split("\n")[0].split())[:160]
    return ConnectionError(f"optuna storage {redact(url)} unreachable: {text}")
