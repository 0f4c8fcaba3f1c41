"""The project sets itself up: a fresh clone with nothing beside it installs, builds the
container tests' base image and runs the suite (issue 17)."""

from __future__ import annotations

import re
import subprocess

from tests.support import ROOT

# What installs, builds and runs the project and its container tests.
SETUP = [
    ROOT / ".ci" / "run",
    ROOT / ".ci" / "setup-machine",
    ROOT / ".ci" / "make-base-image.sh",
    ROOT / "pyproject.toml",
    ROOT / "Dockerfile",
    *sorted((ROOT / "examples").rglob("*.*")),
    *sorted((ROOT / "tests" / "container").glob("*.py")),
]
OUTSIDE = re.compile(r"\.\./shared|/work/|\.\./\.\./")  # paths that leave the checkout


def test_setup_uses_nothing_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SETUP
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line) and "context: ../.." not in line  # compose: the repository
    ]
    assert not found, "\n".join(found)


def test_base_image_script_is_valid_bash() -> None:
    script = ROOT / ".ci" / "make-base-image.sh"
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "bash .ci/make-base-image.sh" in (ROOT / ".ci" / "setup-machine").read_text()
