"""One child process in its own process group, its output as lines, and a watchdog
that ends the group when the proxy dies (I/O).

- The child runs in a new process group (the terminal's Ctrl-C reaches the proxy only;
  the proxy passes it on), with stdin from /dev/null, SIGINT and SIGTERM unblocked and at
  their default disposition (exec resets handled signals; the proxy handles both before
  it spawns, so a parent that ignored SIGINT does not pass that on).
- Its stdout and stderr are pipes, or pseudo-terminals when the proxy's log is a colour
  terminal (the child then sees a terminal and keeps its colours).
- A watchdog process (this file, run by the same interpreter with ``-I -S``) in its own
  session holds a pipe from the proxy. When the pipe ends,
  because the proxy exited or was killed (even with SIGKILL), it stops whatever is left
  in the child's process group: SIGINT, then SIGTERM, then SIGKILL. The group also holds
  what the child started (Flask's reloader process, uvicorn's workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

MAX_LINE: Final = 16384  # bytes: a longer line is passed on in pieces
# Stop sequence: (signal, seconds to wait for the group to go away).
STOP_STEPS: Final = ((signal.SIGINT, 2.0), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0))


class Child:
    """A started child process. ``on_line(stream, text)`` gets each output line (bytes
    decoded as UTF-8, undecodable bytes replaced), ``on_exit(returncode)`` its end,
    once both streams are read to the end (or shortly after the exit, when something
    else in its group keeps them open)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        on_line: Callable[[str, str], None],
        on_exit: Callable[[int], None],
        terminal: bool = False,
        columns: int = 0,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.on_line = on_line
        self.on_exit = on_exit
        self.returncode: int | None = None
        self.started = time.monotonic()
        self._partial: dict[str, bytes] = {}
        self._open: dict[int, str] = {}  # fd -> stream name
        self._exited = asyncio.Event()
        self._done = asyncio.Event()
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")  # print() output as it happens
        # Both signals unblocked here (a blocked mask would be inherited by the child).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        ends = [_terminal(columns) if terminal else os.pipe() for _ in ("stdout", "stderr")]
        try:
            self.proc = subprocess.Popen(  # noqa: S603  (the user's own command line)
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=ends[0][1],
                stderr=ends[1][1],
                env=child_env,
                cwd=cwd,
                process_group=0,
                close_fds=True,
            )
        except OSError:
            for read_end, _ in ends:
                os.close(read_end)
            raise
        finally:
            for _, write_end in ends:
                os.close(write_end)
        self.pid = self.pgid = self.proc.pid
        for name, (read_end, _) in zip(("stdout", "stderr"), ends, strict=True):
            os.set_blocking(read_end, False)
            self._open[read_end] = name
            self._partial[name] = b""
            self.loop.add_reader(read_end, self._readable, read_end, name)
        self._watchdog_pipe, self.watchdog = _watchdog(self.pgid)
        threading.Thread(target=self._wait, name=f"wait-{self.pid}", daemon=True).start()

    # -- output ---------------------------------------------------------------------------

    def _readable(self, fd: int, name: str) -> None:
        self._read(fd, name)

    def _read(self, fd: int, name: str) -> bool:
        """One read; False when nothing more is there now."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO: a pseudo-terminal whose other side is closed
            data = b""
        if not data:
            self._close_stream(fd, name)
            return False
        buf = self._partial[name] + data
        *lines, rest = buf.split(b"\n")
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[name] = rest
        for raw in lines:
            for at in range(0, max(len(raw), 1), MAX_LINE):  # a long line in pieces
                self.on_line(name, raw[at : at + MAX_LINE].decode("utf-8", "replace"))
        return True

    def _close_stream(self, fd: int, name: str) -> None:
        if fd not in self._open:
            return
        del self._open[fd]
        self.loop.remove_reader(fd)
        os.close(fd)
        rest, self._partial[name] = self._partial[name], b""
        if rest:
            self.on_line(name, rest.decode("utf-8", "replace"))
        if not self._open and self._exited.is_set():
            self._finish()

    # -- the end --------------------------------------------------------------------------

    def _wait(self) -> None:
        code = self.proc.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self.loop.call_soon_threadsafe(self._reaped, code)

    def _reaped(self, code: int) -> None:
        self.returncode = code
        self._exited.set()
        if not self._open:
            self._finish()
            return
        # Output still open: read what is buffered, but do not wait for grandchildren
        # that keep the pipes (the group is stopped next anyway).
        self.loop.call_later(0.2, self._give_up_output)

    def _give_up_output(self) -> None:
        for fd, name in list(self._open.items()):
            for _ in range(64):  # what is buffered now, bounded
                if fd not in self._open or not self._read(fd, name):
                    break
            self._close_stream(fd, name)
        self._finish()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        assert self.returncode is not None
        self.on_exit(self.returncode)

    @property
    def running(self) -> bool:
        return self.returncode is None

    async def wait(self) -> int:
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def group_alive(self) -> bool:
        return group_alive(self.pgid)

    def signal_group(self, sig: int) -> bool:
        try:
            os.killpg(self.pgid, sig)
        except OSError:
            return False
        return True

    async def stop(
        self,
        steps: Sequence[tuple[int, float]] = STOP_STEPS,
        on_step: Callable[[int], None] | None = None,
        hurry: asyncio.Event | None = None,
    ) -> None:
        """Stop the whole group: each signal in turn until it is gone (a set ``hurry``
        skips to SIGKILL); the watchdog is released after."""
        for sig, wait in steps:
            if not self.group_alive():
                break
            if hurry is not None and hurry.is_set():
                sig = signal.SIGKILL
            if on_step is not None:
                on_step(sig)
            self.signal_group(sig)
            deadline = time.monotonic() + wait
            while self.group_alive() and time.monotonic() < deadline:
                if hurry is not None and hurry.is_set() and sig != signal.SIGKILL:
                    break
                await asyncio.sleep(0.02)
            if sig == signal.SIGKILL:
                break
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.wait()
        self.release_watchdog()

    def release_watchdog(self) -> None:
        """Close the watchdog's pipe: it sees the group gone and exits."""
        if self._watchdog_pipe >= 0:
            with contextlib.suppress(OSError):
                os.close(self._watchdog_pipe)
            self._watchdog_pipe = -1
            threading.Thread(target=self.watchdog.wait, daemon=True).start()  # reap it


def _terminal(columns: int) -> tuple[int, int]:
    """A pseudo-terminal (read end, child's end) that passes output unchanged."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n"
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    if columns > 0:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


def _watchdog(pgid: int) -> tuple[int, subprocess.Popen[bytes]]:
    read_end, write_end = os.pipe()  # both close-on-exec: the child never holds them
    try:
        proc = subprocess.Popen(  # noqa: S603  (our own interpreter and this file)
            [sys.executable, "-I", "-S", __file__, str(pgid)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(read_end)
    return write_end, proc


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie (a zombie
    waiting for its reaper counts as alive for ``killpg``)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc (macOS): killpg's answer
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


def watchdog(pgid: int, fd: int = 0) -> None:
    """Run as ``python -I -S child.py PGID`` with a pipe from the proxy on stdin (``fd``):
    when the pipe ends (the proxy exited or was killed), stop what is left of ``pgid``."""
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass
    for sig, wait in STOP_STEPS:
        if not group_alive(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except OSError:
            return
        deadline = time.monotonic() + wait
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session: only to be sure
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watchdog(int(sys.argv[1]))
