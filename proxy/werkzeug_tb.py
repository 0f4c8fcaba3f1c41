"""Read a Werkzeug debugger page into a one-line summary (pure).

The page (``werkzeug/debug/tbtools.py``) carries the outermost exception line in its
``<title>`` and, after ``</html>``, a ``<!-- ... -->`` comment holding the plain-text
traceback. The comment is the reliable source of frames; the HTML frame list is the
fallback when a capture was cut short. Nothing from the page is executed or followed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

_TITLE = re.compile(r"<title>(.*?)//\s*Werkzeug Debugger", re.S)
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_TB_HEADER = "Traceback (most recent call last):"
_LIBRARY_MARKERS = ("/site-packages/", "/dist-packages/", "\\site-packages\\", "<frozen ")
_STDLIB = re.compile(r"[/\\]lib[/\\]python\d+(?:\.\d+)?[/\\](?!site-packages)")


@dataclass(frozen=True)
class Frame:
    filename: str
    lineno: int
    function: str | None
    library: bool


@dataclass(frozen=True)
class Trace:
    exception: str
    frames: tuple[Frame, ...]


def is_debugger_page(text: str) -> bool:
    return "// Werkzeug Debugger</title>" in text or '<div class="debugger">' in text


def _is_library(path: str) -> bool:
    return any(m in path for m in _LIBRARY_MARKERS) or _STDLIB.search(path) is not None


def parse_debugger_page(body: bytes) -> Trace | None:
    """The final exception and its frames, or None when ``body`` is no debugger page."""
    text = body.decode("utf-8", errors="replace")
    if not is_debugger_page(text):
        return None
    title = _TITLE.search(text)
    message = html.unescape(title.group(1)).strip() if title else ""
    title_line = message.splitlines()[0] if message else ""
    found = _from_comment(text) or _from_html(text)
    exception, frames = found
    return Trace(exception or title_line, frames)


def _from_comment(text: str) -> tuple[str, tuple[Frame, ...]] | None:
    start = text.rfind("<!--")  # the last comment: 2.0.x also has one in <head>
    end = text.rfind("-->")
    if start < 0 or end <= start or _TB_HEADER not in text[start:end]:
        return None
    block = text[start + 4 : end].split(_TB_HEADER)[-1]  # the final exception of a chain
    frames: list[Frame] = []
    exception = ""
    for line in block.splitlines():
        m = _FRAME.match(line)
        if m:
            path = m.group("file")
            frames.append(Frame(path, int(m.group("line")), m.group("func"), _is_library(path)))
            exception = ""
        elif line.strip() and not line.startswith(" ") and not exception:
            exception = line.strip()  # "Type: message", the first line after the frames
    return exception, tuple(frames)


class _FrameCollector(HTMLParser):
    """Fallback: frames from ``cite.filename``/``em.line``/``code.function`` per div.frame."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.frames: list[dict[str, str]] = []
        self.errormsg = ""
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "div" and "exc-divider" in cls:
            self.frames = []  # keep only the final exception's frames
        elif tag == "div" and cls.split() == ["frame"]:
            self.frames.append({})
        elif tag == "cite" and "filename" in cls:
            self._field = "file"
        elif tag == "em" and "line" in cls:
            self._field = "line"
        elif tag == "code" and "function" in cls:
            self._field = "func"
        elif tag == "p" and "errormsg" in cls:
            self._field = "errormsg"

    def handle_endtag(self, tag: str) -> None:
        self._field = None

    def handle_data(self, data: str) -> None:
        if self._field == "errormsg":
            self.errormsg += data
        elif self._field and self.frames:
            self.frames[-1][self._field] = self.frames[-1].get(self._field, "") + data


def _from_html(text: str) -> tuple[str, tuple[Frame, ...]]:
    parser = _FrameCollector()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError):
        pass  # a truncated or odd page: keep what was read
    frames = []
    for f in parser.frames:
        path = f.get("file", "").strip().strip('"')
        line = f.get("line", "").strip()
        if path and line.isdigit():
            func = f.get("func", "").strip() or None
            frames.append(Frame(path, int(line), func, _is_library(path)))
    first = parser.errormsg.strip().splitlines()
    return (first[0] if first else ""), tuple(frames)


def _short(path: str) -> str:
    return re.split(r"[/\\]", path)[-1]


def summarize(trace: Trace) -> str:
    """``NameError: name 'x' is not defined (app.py:12 in hello)``.

    The location is the innermost application frame; when the exception was raised in a
    library frame, that frame is added (``; raised in jinja2/environment.py:1301``).
    """
    if not trace.frames:
        return trace.exception
    app = next((f for f in reversed(trace.frames) if not f.library), None)
    raised = trace.frames[-1]
    where = app or raised
    loc = f"{_short(where.filename)}:{where.lineno}" + (
        f" in {where.function}" if where.function else ""
    )
    if app is not None and raised is not app:
        parts = re.split(r"[/\\]", raised.filename)
        tail = "/".join(parts[-2:]) if len(parts) > 1 else parts[-1]
        loc += f"; raised in {tail}:{raised.lineno}"
    return f"{trace.exception} ({loc})"
