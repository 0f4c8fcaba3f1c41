"""The proxy as users run it: a real process, its startup line, plain HTTP to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import ORIGIN, ROOT


def proxy_command() -> list[str]:
    """``python -m proxy`` for a child process; under coverage (the suite's ``--cov``), the
    child runs under ``coverage run`` with the parent's configuration and data file, so the
    lines it runs count too (pytest-cov combines the ``.coverage.*`` files at the end).

    Every test that starts the proxy as a process starts it with this command.
    """
    import coverage

    cov = coverage.Coverage.current()
    if cov is None:
        return [sys.executable, "-m", "proxy"]
    return [
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={cov.config.config_file or ROOT / 'pyproject.toml'}",
        f"--data-file={Path(cov.config.data_file).resolve()}",
        "-m",
        "proxy",
    ]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_command(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def start_proxy(upstream: str, log: Path, *args: str) -> subprocess.Popen[str]:
    """``python -m proxy --origin ORIGIN`` in front of ``upstream``, its startup line on
    stdout; the log goes to a file (lines into an unread pipe would block the proxy).
    With ``learn`` as the first of ``args``: ``cors-proxy learn`` (every origin)."""
    if args[:1] == ("learn",):
        flags = ["learn", "--upstream", upstream, "--listen", "127.0.0.1:0", *args[1:]]
    else:
        flags = ["--upstream", upstream, "--origin", ORIGIN, "--listen", "127.0.0.1:0", *args]
    with log.open("w") as out:
        return subprocess.Popen(
            [*proxy_command(), *flags],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            cwd=ROOT,
            env=os.environ,
        )


class Proc:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.p = subprocess.Popen(
            [*proxy_command(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        assert self.p.stdout is not None
        self.line = self.p.stdout.readline().strip()
        if not self.line.startswith("listening on http://"):
            self.p.kill()
            pytest.fail(f"no startup line: {self.line!r} {self.p.communicate()[1][-2000:]}")
        self.url = self.line.split()[2]

    def stop(self) -> tuple[int, str]:
        code, _, err = self.stop_and_read()
        return code, err

    def stop_and_read(self) -> tuple[int, str, str]:
        """SIGTERM; the exit code, and stdout after the startup line and stderr."""
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=15)
        return self.p.returncode, out, err


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
