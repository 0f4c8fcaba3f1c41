"""The child process and its watchdog, in-process where they can be (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from proxy.devserver.child import Child, group_alive, watchdog
from proxy.devserver.supervisor import source_name
from tests.support.devserver import gone


def test_the_watchdog_ends_the_group_when_its_pipe_ends() -> None:
    # a process group whose leader ignores SIGINT: SIGTERM ends it
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], process_group=0)
    time.sleep(0.2)
    read_end, write_end = os.pipe()
    os.close(write_end)  # the proxy is gone
    try:
        started = time.monotonic()
        watchdog(proc.pid, read_end)
        assert proc.wait(5) == -signal.SIGTERM
        assert 1.5 < time.monotonic() - started < 4
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not group_alive(proc.pid)


def test_the_watchdog_does_nothing_when_the_group_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], process_group=0)
    proc.wait()
    read_end, write_end = os.pipe()
    os.close(write_end)
    started = time.monotonic()
    watchdog(proc.pid, read_end)
    os.close(read_end)
    assert time.monotonic() - started < 0.5


async def test_lines_long_lines_and_a_last_line_without_newline() -> None:
    lines: list[tuple[str, str]] = []
    codes: list[int] = []
    code = (
        "import sys; print('out'); print('x' * 40000); "
        "sys.stderr.write('err\\n'); sys.stderr.flush(); sys.stderr.buffer.write(b'\\xff\\n'); "
        "sys.stderr.buffer.write(b'tail'); sys.exit(4)"
    )
    child = Child(
        [sys.executable, "-c", code],
        on_line=lambda stream, text: lines.append((stream, text)),
        on_exit=codes.append,
    )
    assert await child.wait() == 4
    await child.stop()  # nothing left: returns at once
    assert codes == [4]
    out = [t for s, t in lines if s == "stdout"]
    assert out[0] == "out"
    assert "".join(out[1:]) == "x" * 40000  # in pieces of at most MAX_LINE
    assert max(len(t) for t in out) <= 16384
    assert [t for s, t in lines if s == "stderr"] == ["err", "\ufffd", "tail"]
    assert gone([child.pid], child.pgid)


async def test_output_kept_open_by_a_grandchild_does_not_hold_the_exit() -> None:
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print('bye')"
    )
    codes: list[int] = []
    child = Child([sys.executable, "-c", code], on_line=lambda s, t: None, on_exit=codes.append)
    async with asyncio.timeout(3):
        assert await child.wait() == 0
    assert group_alive(child.pgid)  # the grandchild, in the same group
    await child.stop()
    assert not group_alive(child.pgid)


async def test_a_terminal_for_the_child() -> None:
    lines: list[str] = []
    code = "import sys; print(sys.stdout.isatty(), sys.stderr.isatty())"
    child = Child(
        [sys.executable, "-c", code],
        on_line=lambda s, t: lines.append(t),
        on_exit=lambda c: None,
        terminal=True,
        columns=90,
    )
    assert await child.wait() == 0
    await child.stop()
    assert lines == ["True True"]


def test_source_names() -> None:
    assert source_name(["flask", "--app", "app", "run"]) == "flask"
    assert source_name(["/venv/bin/uvicorn", "main:app"]) == "uvicorn"
    assert source_name(["python", "app.py"]) == "app.py"
    assert source_name(["python3", "-u", "src/app.py"]) == "app.py"
    assert source_name(["python", "-m", "flask", "run"]) == "flask"
    assert source_name(["npm", "run", "dev"]) == "npm"
