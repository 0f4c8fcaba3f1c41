"""Where log lines go: a buffered writer to a stream (I/O)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TextIO

from proxy.log.record import LineStart, LineTemplate, Record

FLUSH_DELAY = 0.005  # seconds a log line may wait for others to share its write


class LogSink:
    """Buffers log lines and writes them at most every ``FLUSH_DELAY`` seconds: under
    load one write carries the lines of many exchanges (cheap per line)."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.fmt = fmt
        # Colors only for people: a terminal, and not when NO_COLOR is set.
        self.color = fmt == "text" and _isatty(stream) and "NO_COLOR" not in os.environ
        self._lines: list[str] = []
        self._scheduled = False

    def record(self, rec: Record, start: LineStart | None = None) -> None:
        """Write ``rec``'s line; ``start``: its ``self.start(rec)``, made before."""
        self.line(self.template(rec, start).render(rec.ms))

    def start(self, rec: Record) -> LineStart:
        """The request part of ``rec``'s line, in this sink's format."""
        return rec.start(self.color, as_json=self.fmt == "json")

    def template(self, rec: Record, start: LineStart | None = None) -> LineTemplate:
        return rec.template(self.color, as_json=self.fmt == "json", start=start)

    def message(self, text: str, **fields: object) -> None:
        if self.fmt == "json":
            self.line(json.dumps({"message": text, **fields}, ensure_ascii=True, default=str))
        else:
            self.line(text)

    def line(self, text: str) -> None:
        self._lines.append(text)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
