"""`make demo` prints the demo, not installer noise; a failed install still shows why.

The install is driven through the real Makefile with a stand-in Python whose pip prints
the kind of warnings setuptools and pip print (or fails); the demo itself runs with the
project's own environment, already installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent

STAND_IN = """#!/bin/sh
# A stand-in for python3: `-m venv DIR` makes DIR/bin/python, whose `-m pip` is noisy.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    cp "$0" "$3/bin/python"
    exit 0
fi
echo "WARNING: Location 'file:///somewhere' is ignored" >&2
echo "  BuildBackendWarning: project.license as a TOML table is deprecated" >&2
echo "Successfully installed checkpointflow"
if [ -n "$PIP_SHOULD_FAIL" ]; then
    echo "ERROR: No matching distribution found for click>=8.1" >&2
    exit 1
fi
"""

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=600,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    stand_in = tmp_path / "python3"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    return tmp_path


@needs_make
def test_a_good_install_prints_one_line_not_the_installer_noise(project):
    done = make(project, "PYTHON=./python3", ".venv/.installed")
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert said.strip().splitlines() == [
        "Installing cpf and its test tools into .venv (output in .venv/install.log)"
    ]
    assert "BuildBackendWarning" in (project / ".venv" / "install.log").read_text()
    assert (project / ".venv" / ".installed").exists()


@needs_make
def test_a_failed_install_shows_its_errors(project):
    done = make(project, "PYTHON=./python3", ".venv/.installed", PIP_SHOULD_FAIL="1")
    assert done.returncode != 0
    assert "ERROR: No matching distribution found for click>=8.1" in done.stderr
    assert "Installing failed" in done.stderr
    assert not (project / ".venv" / ".installed").exists()


@needs_make
def test_make_demo_starts_with_the_demo(tmp_path):
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
        pytest.skip("the demo runs with an environment the Makefile installed, up to date")
    done = make(
        REPO,
        f"VENV={VENV}",
        "demo",
        CHECKPOINTFLOW_BASE_DIR=str(tmp_path / "state"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("== cpf validate -f examples/release.yaml\n")
    assert "demo finished" in done.stdout
    assert "Warning" not in done.stdout + done.stderr
