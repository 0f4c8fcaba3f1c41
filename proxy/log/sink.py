"""Where log lines go: a buffered writer to a stream that never blocks the proxy (I/O).

The log goes to stderr, and stderr is often a pipe: ``cors-proxy ... 2>&1 | less``, a
terminal stopped with Ctrl-S, a CI runner that reads late. Once such a pipe is full
(64 KiB on Linux) a write blocks until its reader reads; written from the event loop,
it stops the whole proxy. So lines are written by a thread of their own, and the event
loop only hands them over: at most ``MAX_BACKLOG`` bytes wait for a slow reader, and
what does not fit is dropped and counted. The next line that gets through says how
many were dropped, and ``/__cors-proxy__/health`` reports the count.

A stream without a file descriptor (an ``io.StringIO`` in tests) cannot block and is
written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import select
import threading
import time
from collections import deque
from typing import TextIO

from proxy.diagnosis.console import plain
from proxy.log.record import LineStart, LineTemplate, Record

FLUSH_DELAY = 0.005  # seconds a log line may wait for others to share its write
MAX_BACKLOG = 1 << 20  # bytes of log lines waiting for a slow reader; more are dropped
CLOSE_TIMEOUT = 2.0  # seconds the last lines get to reach a slow reader at shutdown
_PREFIX_COLOR = "\x1b[36m"  # the dev server's name before each of its lines


class LogSink:
    """Buffers log lines and writes them at most every ``FLUSH_DELAY`` seconds: under
    load one write carries the lines of many exchanges (cheap per line). The writes
    never block the caller (see the module's doc)."""

    def __init__(self, stream: TextIO, fmt: str, *, backlog: int = MAX_BACKLOG) -> None:
        self.stream = stream
        self.fmt = fmt
        # Colors only for people: a terminal, and not when NO_COLOR is set.
        self.color = fmt == "text" and _isatty(stream) and "NO_COLOR" not in os.environ
        self._lines: list[str] = []
        self._scheduled = False
        self.backlog = backlog
        self._pipe = _Pipe.of(stream, backlog)
        self.dropped = 0  # lines dropped since the start: the reader did not keep up
        self._unsaid = 0  # dropped lines the log has not mentioned yet

    def record(self, rec: Record, start: LineStart | None = None) -> None:
        """Write ``rec``'s line; ``start``: its ``self.start(rec)``, made before."""
        self.line(self.template(rec, start).render(rec.ms))

    def start(self, rec: Record) -> LineStart:
        """The request part of ``rec``'s line, in this sink's format."""
        return rec.start(self.color, as_json=self.fmt == "json")

    def template(self, rec: Record, start: LineStart | None = None) -> LineTemplate:
        return rec.template(self.color, as_json=self.fmt == "json", start=start)

    def message(self, text: str, **fields: object) -> None:
        self.line(self._message(text, **fields))

    def _message(self, text: str, **fields: object) -> str:
        if self.fmt == "json":
            return json.dumps({"message": text, **fields}, ensure_ascii=True, default=str)
        return text

    def output(self, source: str, stream: str, text: str) -> None:
        """A line the supervised dev server printed: ``flask | text`` (its colours kept
        on a colour terminal, removed elsewhere), or a JSON object with ``source``."""
        if self.fmt == "json":
            self.line(
                json.dumps(
                    {"source": source, "stream": stream, "message": plain(text)},
                    ensure_ascii=True,
                )
            )
        elif self.color:
            shown = text.rstrip("\r").rsplit("\r", 1)[-1]  # as the terminal shows it
            self.line(f"{_PREFIX_COLOR}{source} |\x1b[0m {shown}\x1b[0m")
        else:
            self.line(f"{source} | {plain(text)}")

    def line(self, text: str) -> None:
        self._lines.append(text)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            except RuntimeError:
                self.flush()

    @property
    def waiting(self) -> int:
        """Bytes handed over and not written yet (a slow reader)."""
        return self._pipe.pending if self._pipe is not None else 0

    def flush(self) -> None:
        """Hand the lines over to be written (never waits for the reader)."""
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        if self._unsaid:
            lines.insert(0, self._dropped_line())
        text = "\n".join(lines) + "\n"
        pipe = self._pipe
        if pipe is None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)
                self.stream.flush()
            return
        if pipe.put(text.encode(pipe.encoding, "backslashreplace")):
            self._unsaid = 0
        else:
            lost = len(lines) - (1 if self._unsaid else 0)
            self.dropped += lost
            self._unsaid += lost

    def _dropped_line(self) -> str:
        n = self._unsaid
        return self._message(
            f"{n} log line{'s' if n != 1 else ''} dropped: the log's reader (stderr) did "
            f"not keep up, and more than {self.backlog >> 10} KiB waited for it "
            "(a paused pager or terminal?)",
            dropped_lines=n,
        )

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Hand over what is buffered and give a slow reader ``timeout`` seconds to take
        it (at shutdown: what is still waiting after that is lost)."""
        self.flush()
        if self._pipe is not None:
            self._pipe.drain(timeout)


class _Pipe:
    """Bytes written to a file descriptor by a thread of their own, at most ``limit``
    bytes waiting: ``put`` never blocks."""

    def __init__(self, fd: int, encoding: str, limit: int) -> None:
        self.fd = fd
        self.encoding = encoding
        self.limit = limit
        self.pending = 0  # bytes put and not written yet
        self.broken = False  # the reader went away (EPIPE): nothing more is written
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, stream: TextIO, limit: int) -> _Pipe | None:
        """A pipe for ``stream``'s file descriptor; None for a stream without one."""
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, io.UnsupportedOperation):
            return None
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # what was written through the stream comes first
        return cls(fd, getattr(stream, "encoding", None) or "utf-8", limit)

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False when it does not fit (nothing of it is queued)."""
        with self._cond:
            if self.broken:
                return True  # nobody reads any more: nothing to count
            if self.pending + len(data) > self.limit:
                return False
            self._queue.append(data)
            self.pending += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything put to be written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.pending and not self.broken:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                data = b"".join(self._queue)
                self._queue.clear()
            try:
                self._write(data)
            except OSError:  # the reader closed its end (EPIPE), or the fd is gone
                with self._cond:
                    self.broken = True
                    self._queue.clear()
            with self._cond:
                self.pending = 0 if self.broken else self.pending - len(data)
                self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:  # someone made the descriptor non-blocking
                select.select([], [self.fd], [], 1.0)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
