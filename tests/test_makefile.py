"""Which interpreter the Makefile makes .venv from (its PYTHON_CANDIDATES, or PYTHON)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _chosen(*args: str, env: dict[str, str] | None = None) -> str:
    """The PYTHON `make` settles on, given these variables on its command line."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS")}
    environment.update(env or {})
    done = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "--eval",
            "show-python: ; @echo $(PYTHON)",
            "show-python",
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def _interpreter(path: Path, status: int) -> str:
    """A stand-in that answers the Makefile's check with `status` (1: too old, or no venv)."""
    path.write_text(f"#!/bin/sh\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


def test_the_first_candidate_that_can_make_a_virtualenv_is_chosen(tmp_path: Path) -> None:
    old = _interpreter(tmp_path / "old", 1)
    good = _interpreter(tmp_path / "good", 0)
    later = _interpreter(tmp_path / "later", 0)
    candidates = f"{tmp_path / 'missing'} {old} {good} {later}"
    assert _chosen(f"PYTHON_CANDIDATES={candidates}") == good


def test_a_real_interpreter_of_3_11_or_newer_passes_the_check() -> None:
    assert _chosen(f"PYTHON_CANDIDATES={sys.executable}") == sys.executable


def test_python3_when_no_candidate_qualifies(tmp_path: Path) -> None:
    old = _interpreter(tmp_path / "old", 1)
    assert _chosen(f"PYTHON_CANDIDATES={old} {tmp_path / 'missing'}") == "python3"


def test_python_given_wins_over_the_candidates(tmp_path: Path) -> None:
    good = _interpreter(tmp_path / "good", 0)
    candidates = f"PYTHON_CANDIDATES={good}"
    assert _chosen(candidates, "PYTHON=python3.12") == "python3.12"
    assert _chosen(candidates, env={"PYTHON": "/opt/py/bin/python3"}) == "/opt/py/bin/python3"
