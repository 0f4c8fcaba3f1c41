"""What a dev server prints on its console, read line by line (pure).

Pure: standard library only (``re``, ``collections``, ``dataclasses``); no I/O and no
clock (times are passed in). The formats were read from the servers' own output
(tests/fixtures/console/):

- startup lines that name the address: Werkzeug/Flask `` * Running on http://...``,
  uvicorn/hypercorn ``... running on http://...``, Django ``Starting development server
  at http://...``, gunicorn ``Listening at: http://...``, Vite/Next ``Local: http://...``;
- request lines: ``"GET /api/boom HTTP/1.1" 500`` (Werkzeug, Django runserver, uvicorn);
- Python tracebacks, with the line before them when it says which request raised
  (Flask: ``ERROR in app: Exception on /api/boom [GET]``, Django: ``Internal Server
  Error: /boom``) or the request line just before them (Werkzeug's debugger and
  ``Error on request:`` print the request line first);
- reloads (``Detected change in ...``, ``WatchFiles detected changes``, ``changed,
  reloading``).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Final

from proxy.diagnosis.error_body import one_line
from proxy.diagnosis.werkzeug_page import Trace, parse_traceback, summarize

__all__ = [
    "ConsoleReader",
    "RequestLine",
    "Startup",
    "Traced",
    "plain",
    "request_line",
    "startup_url",
]

QUIET: Final = 0.05  # seconds without a line after an exception line: the traceback ended
STALLED: Final = 1.0  # seconds without a line in the middle of a traceback: take what came
MAX_TRACE_LINES: Final = 1000  # lines kept per traceback (the last ones: the final block)
RECENT_LINES: Final = 20  # a child's exit reason is a traceback printed among its last lines

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_STARTUP = re.compile(
    r"(?:running on|listening (?:on|at)|server at|serving (?:on|at)|started server on"
    r"|local)\s*:?\s+(?P<url>https?://(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?)",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r'"(?P<method>[A-Z][A-Z-]{0,19}) (?P<target>\S.{0,8000}?) HTTP/\d(?:\.\d)?" '
    r"(?P<status>[1-5]\d\d)\b"
)
_RELOAD = re.compile(r"detected changes? in .*reloading|changed, reloading", re.IGNORECASE)
_FLASK_HEADER = re.compile(r"Exception on (?P<path>\S+) \[(?P<method>[A-Z]+)\]\s*$")
_DJANGO_HEADER = re.compile(r"Internal Server Error: (?P<path>\S+)\s*$")
_TB_HEADERS = (
    "Traceback (most recent call last):",
    "  + Exception Group Traceback (most recent call last):",
)
_DIVIDERS = frozenset(
    {
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
    }
)
# A line that starts a new log record: the traceback before it has ended.
_RECORD_START = re.compile(
    r"^(?:(?:INFO|ERROR|WARNING|DEBUG|CRITICAL):|\[\d|\d{4}-\d\d-\d\d| \* |\S+ - - \[)"
)
# A last line worth repeating as the reason a process ended (uvicorn's "Error loading
# ASGI app", Flask's "Error: Could not import", Django's "That port is already in use").
_COMPLAINT = re.compile(
    r"error|exception|fail|denied|not found|no such|cannot|can't|unable|in use", re.IGNORECASE
)
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}  # all interfaces -> loopback


def plain(line: str) -> str:
    """``line`` without terminal escapes, and as a terminal shows it after a ``\\r``."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return line


def startup_url(line: str) -> str | None:
    """The address a dev server says it listens on (``http://127.0.0.1:5000``), from a
    plain line, or None. All-interfaces addresses become the loopback one."""
    match = _STARTUP.search(line)
    if match is None:
        return None
    url = match["url"]
    scheme, _, authority = url.partition("://")
    host, sep, port = authority.rpartition(":") if not authority.endswith("]") else ("", "", "")
    if not sep or not port.isdecimal():
        host, port = authority, ""
    host = _LOOPBACK_FOR.get(host, host)
    return f"{scheme.lower()}://{host}" + (f":{port}" if port else "")


@dataclass(frozen=True)
class RequestLine:
    """``"GET /api/boom HTTP/1.1" 500``, as a dev server logs an answered request."""

    method: str
    target: str
    status: int


def request_line(line: str) -> RequestLine | None:
    match = _REQUEST.search(line)
    if match is None:
        return None
    return RequestLine(match["method"], match["target"], int(match["status"]))


@dataclass(frozen=True)
class Startup:
    url: str
    line: str


@dataclass(frozen=True)
class Reloaded:
    line: str


@dataclass(frozen=True)
class Traced:
    """A complete traceback. ``method``/``path`` come from the line before it when that
    line names the request (Flask, Django); ``adjacent`` is the request line printed
    just before it (Werkzeug's debugger, ``Error on request:``)."""

    trace: Trace
    summary: str  # ``ZeroDivisionError: division by zero (app.py:7 in boom)``
    started: float  # when its first line was read
    method: str | None = None
    path: str | None = None
    adjacent: RequestLine | None = None


Event = Startup | RequestLine | Traced | Reloaded


class ConsoleReader:
    """Turns a dev server's output lines into events. ``feed`` takes each plain line
    (stderr lines with ``traceback=True``); ``idle`` ends a traceback when no line
    followed it for a moment; ``close`` ends one at end of output."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque(maxlen=MAX_TRACE_LINES)
        self._in_trace = False
        self._exception_seen = False
        self._started = 0.0
        self._last_time = 0.0
        self._header: tuple[str | None, str | None] = (None, None)
        self._adjacent: RequestLine | None = None
        self._previous = ""  # the stderr line before the current one
        self._previous_request: RequestLine | None = None
        self._since_request = 99  # stderr lines since that request line
        self._recent: deque[str] = deque(maxlen=RECENT_LINES)
        self._recent_exception: tuple[int, str] | None = None  # (line number, exception)
        self._count = 0
        self.startup_seen = False

    @property
    def busy(self) -> bool:
        """A traceback is being read."""
        return self._in_trace

    def feed(self, line: str, now: float, *, traceback: bool = True) -> list[Event]:
        events: list[Event] = []
        if not traceback:  # stdout: request lines and startup lines only
            return self._other(line, events)
        self._count += 1
        if line.strip():
            self._recent.append(line)
            self._since_request += 1
        if self._in_trace:
            if self._continues(line):
                self._lines.append(line)
                self._last_time = now
                return events
            events.extend(self._finish())
        if line in _TB_HEADERS:
            self._begin(line, now)
            return events
        self._other(line, events)
        if line.strip():
            self._previous = line
        return events

    def _other(self, line: str, events: list[Event]) -> list[Event]:
        if not self.startup_seen:
            url = startup_url(line)
            if url is not None:
                self.startup_seen = True
                events.append(Startup(url, one_line(line)))
                return events
        req = request_line(line) if '" ' in line else None
        if req is not None:
            self._previous_request, self._since_request = req, 0
            events.append(req)
        elif _RELOAD.search(line):
            self.startup_seen = False  # the new process prints its address again
            events.append(Reloaded(one_line(line)))
        return events

    def _begin(self, line: str, now: float) -> None:
        self._in_trace, self._exception_seen = True, False
        self._lines.clear()
        self._lines.append(line)
        self._started = self._last_time = now
        flask = _FLASK_HEADER.search(self._previous)
        django = _DJANGO_HEADER.search(self._previous) if flask is None else None
        if flask is not None:
            self._header = (flask["method"], flask["path"])
        elif django is not None:
            self._header = (None, django["path"])
        else:
            self._header = (None, None)
        # Werkzeug prints the request line, then "Error on request:" or the traceback.
        near = self._since_request <= 2  # counting the "Traceback" line itself
        last = self._previous_request
        failed = last is not None and last.status >= 500
        self._adjacent = last if near and failed and self._header == (None, None) else None

    def _continues(self, line: str) -> bool:
        """Whether ``line`` belongs to the traceback being read."""
        if not self._exception_seen:
            if line.startswith("  | "):  # an exception group: its own exception line
                rest = line[4:]
                if rest[:1].strip() and not rest.startswith("Traceback"):
                    self._exception_seen = True
                return True
            if line in _DIVIDERS or not line.strip() or line[0].isspace():
                return True
            if line in _TB_HEADERS:
                return True
            self._exception_seen = True  # "ZeroDivisionError: division by zero"
            return True
        if line in _DIVIDERS:
            self._exception_seen = False  # a chained exception follows
            return True
        # Anything but a new record: the message's next lines, notes, group members.
        return not (line in _TB_HEADERS or _RECORD_START.match(line) or request_line(line))

    def idle(self, now: float) -> list[Event]:
        if not self._in_trace:
            return []
        wait = QUIET if self._exception_seen else STALLED
        if now - self._last_time < wait:
            return []
        return self._finish()

    def close(self) -> list[Event]:
        return self._finish() if self._in_trace else []

    def _finish(self) -> list[Event]:
        self._in_trace = False
        trace = parse_traceback(list(self._lines))
        self._lines.clear()
        self._previous = ""
        if not trace.exception:
            return []
        self._recent_exception = (self._count, trace.exception)
        method, path = self._header
        summary = one_line(summarize(trace))
        return [Traced(trace, summary, self._started, method, path, self._adjacent)]

    def last_words(self) -> str:
        """Why the process ended, as far as its stderr says: the exception of a traceback
        among its last lines, else its last non-blank line."""
        if self._in_trace:
            self._finish()
        if self._recent_exception is not None:
            at, exception = self._recent_exception
            if self._count - at < RECENT_LINES:
                return one_line(exception)
        last = self._recent[-1] if self._recent else ""
        return one_line(last) if _COMPLAINT.search(last) else ""
