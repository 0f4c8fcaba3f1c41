"""The proxy with a dev server after ``--``, as a user runs it, plus the process checks
that prove nothing is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from tests.support import ROOT
from tests.support.cli import proxy_command

APP = ROOT / "tests" / "support" / "devserver_app.py"


def app_copy(directory: Path, name: str = "app.py") -> Path:
    """The test app as the user's own ``app.py`` (its frames are not library code)."""
    path = directory / name
    shutil.copy(APP, path)
    return path


def line_of(path: Path, marker: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"{marker} not in {path}")


class Supervised:
    """``python -m proxy ARGS -- COMMAND`` (or without a command) in its own session, so
    that a test can send the terminal's Ctrl-C to its whole process group. Its stdout
    and stderr lines are collected as they come. One still running when its test ends
    (an assertion failed midway) is killed by ``end_supervised`` (tests/conftest.py)."""

    started: ClassVar[list[Supervised]] = []

    def __init__(
        self,
        *args: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        startup: float = 20.0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        after = ["--", *command] if command else []
        self.p = subprocess.Popen(
            [*proxy_command(), "--listen", "127.0.0.1:0", *args, *after],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd or ROOT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
        Supervised.started.append(self)
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._cond = threading.Condition()
        self._err = threading.Thread(target=self._collect, args=(self.p.stderr, self.lines))
        self._out = threading.Thread(target=self._collect, args=(self.p.stdout, self.stdout))
        self._err.start()
        self._out.start()
        first = self.wait_stdout(lambda line: line.startswith("listening on "), startup)
        self.url = first.split()[2]

    def _collect(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, into: list[str], match: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in into if match(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "not seen in time; stderr so far:\n" + "\n".join(self.lines[-60:])
                    )
                self._cond.wait(min(left, 0.1))

    def wait_for(self, needle: str | Callable[[str], bool], timeout: float = 10.0) -> str:
        match = needle if callable(needle) else (lambda line: needle in line)
        return self._wait(self.lines, match, timeout)

    def wait_stdout(self, match: Callable[[str], bool], timeout: float = 10.0) -> str:
        return self._wait(self.stdout, match, timeout)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def exchange(self, method: str, path: str, timeout: float = 10.0) -> str:
        """The log line of ``METHOD PATH`` (the first one)."""
        start = f"{method} {path} "
        return self.wait_for(lambda line: line.startswith(start), timeout)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/__cors-proxy__/health", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
        return data

    def ctrl_c(self) -> None:
        """What a terminal sends on Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.p.pid, signal.SIGINT)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.p.wait(timeout)
        self._err.join(5)
        self._out.join(5)
        for stream in (self.p.stdout, self.p.stderr):
            if stream is not None:
                stream.close()
        return code

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.wait()


def end_supervised() -> None:
    """Kill the process group of every ``Supervised`` a test left running, and close
    its pipes (its dev server, if any, is ended by the proxy's watchdog)."""
    while Supervised.started:
        s = Supervised.started.pop()
        if s.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.p.pid, signal.SIGKILL)
        s.wait()


def _processes() -> Iterator[tuple[int, Path]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name), entry


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for pid, entry in _processes():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def gone(pids: list[int], pgid: int | None = None, timeout: float = 6.0) -> bool:
    """Whether every pid (and the group) is gone within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids) and not (pgid and group_members(pgid)):
            return True
        time.sleep(0.05)
    return False


def watchdogs_of(pgid: int) -> list[int]:
    """The watchdog processes guarding group ``pgid`` (``python -I -S child.py PGID``)."""
    found = []
    for pid, entry in _processes():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-I" in argv and b"-S" in argv and argv[-2:-1] == [str(pgid).encode()]:
            found.append(pid)
    return found


SIGNALS_IGNORED = re.compile(r"^SigIgn:\s*([0-9a-f]+)$", re.MULTILINE)


def ignores(pid: int, sig: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    match = SIGNALS_IGNORED.search(status)
    assert match is not None
    return bool(int(match[1], 16) & (1 << (sig - 1)))
