"""Read a Werkzeug debugger page into a ``Trace`` and a one-line summary (pure).

Pure: standard library only (``html``, ``html.parser``, ``re``); no I/O, nothing from the
page is executed or followed. The layout is Werkzeug's ``debug/tbtools.py`` (the same
in 2.0.3 and 3.1.8 apart from details noted inline):

- ``<p class="errormsg">`` and ``<title>`` hold ``format_exception_only()`` of the final
  exception, HTML-escaped. They sit near the top, so they survive a truncated capture.
- The last ``<!-- ... -->`` comment, after ``</html>``, holds the plain-text traceback,
  unescaped, with every run of ``--`` collapsed to ``-``. It is the source of frames.
- The HTML frame list (``div.frame`` with ``cite.filename``, ``em.line``,
  ``code.function``) is the fallback when that comment was cut off.

Frames are only reported from a *complete* frame list: a truncated list would make its
last frame, usually a Flask-internal one, look like the place the error was raised.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = [
    "Frame",
    "Trace",
    "is_debugger_page",
    "parse_debugger_page",
    "parse_traceback",
    "summarize",
]

_MARKERS = ("// Werkzeug Debugger</title>", '<div class="debugger">')
_TITLE_END = "// Werkzeug Debugger</title>"
# Leading spaces are optional: 2.0.x strips the SyntaxError text, dropping its indent.
_FRAME = re.compile(r'^ *File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_TB_HEADER = "Traceback (most recent call last):"
_GROUP_HEADER = "  + Exception Group Traceback (most recent call last):"
_GROUP_PREFIX = "  | "  # lines of the top-level exception group; sub-exceptions nest deeper
_DIVIDERS = frozenset(
    {
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
    }
)
# Library code: installed packages, frozen modules and the standard library itself
# (".../lib/python3.11/json/...", Windows ".../Python311/Lib/json/...").
_LIBRARY = re.compile(
    r"/(?:site|dist)-packages/|^<frozen |/lib(?:64)?/python\d+(?:\.\d+)?t?/|/python\d+/lib/",
)
_PACKAGE_ROOT = re.compile(
    r".*/(?:(?:site|dist)-packages|lib(?:64)?/python[^/]*|python\d+/lib)/", re.IGNORECASE
)
_MESSAGE_LIMIT = 200  # keeps the location visible when the message is a huge repr
# HTMLParser is only a fallback; bound its input so a hostile page cannot make it slow.
_HTML_LIMIT = 512 * 1024
# A "<" that opens no tag is data to HTMLParser, which steps over it one character per
# turn of its loop (2 s for a 512 KiB run of "<"): written as "&lt;" it is the same data,
# read in one piece.
_STRAY_LT = re.compile(r"<(?![A-Za-z/!?])")


@dataclass(frozen=True)
class Frame:
    """One traceback entry; ``function`` is None for a SyntaxError's own location."""

    filename: str
    lineno: int
    function: str | None
    library: bool  # under site-packages/dist-packages or the standard library


@dataclass(frozen=True)
class Trace:
    """The final exception of a chain and its frames, outermost first."""

    exception: str  # first line, e.g. "NameError: name 'x' is not defined"
    frames: tuple[Frame, ...]


def is_debugger_page(text: str) -> bool:
    """True for a page rendered by Werkzeug's debugger (any version since 0.x)."""
    return any(marker in text for marker in _MARKERS)


def is_library(path: str) -> bool:
    """Whether ``path`` is installed or standard-library code rather than the app's."""
    return _LIBRARY.search(path.replace("\\", "/").lower()) is not None


def parse_debugger_page(body: bytes) -> Trace | None:
    """The final exception and its frames, or None when ``body`` is no debugger page.

    Never raises: a truncated or malformed page yields what could be read, at worst a
    ``Trace`` with an empty exception line and no frames.
    """
    text = body.decode("utf-8", errors="replace")
    if not is_debugger_page(text):
        return None
    title = _title(text)
    errormsg = _errormsg(text)
    if title == "Console" and errormsg is None:
        return None  # the interactive console page shares the header but has no error
    from_comment = _from_comment(text)
    if from_comment is not None:
        comment_exc, frames = from_comment
    else:
        comment_exc, frames = "", _from_html(text)
    # The escaped HTML copies are exact; the comment has "--" collapsed to "-".
    exception = _exception_line(errormsg or "") or _exception_line(title) or comment_exc
    return Trace(exception, frames)


def _title(text: str) -> str:
    end = text.find(_TITLE_END)
    start = text.rfind("<title>", 0, end) if end >= 0 else -1
    return html.unescape(text[start + len("<title>") : end]).strip() if start >= 0 else ""


def _errormsg(text: str) -> str | None:
    start = text.find('<p class="errormsg">')
    end = text.find("</p>", start) if start >= 0 else -1
    if end < 0:
        return None  # absent, or cut off mid-message
    return html.unescape(text[start + len('<p class="errormsg">') : end])


def _exception_line(text: str) -> str:
    """``Type: message`` from ``format_exception_only()`` text.

    SyntaxError text starts with its location and source lines (indented, or, in
    2.0.x, stripped to ``File "...", line 1``); notes follow the first line.
    """
    for line in text.splitlines():
        if line.strip() and not line[0].isspace() and not _FRAME.match(line):
            return line.strip()
    return ""


def _from_comment(text: str) -> tuple[str, tuple[Frame, ...]] | None:
    """Exception line and frames of the final block of the plain-text comment."""
    start = text.rfind("<!--")  # the last comment: 2.0.x also has one in <head>
    end = text.rfind("-->")
    if start < 0 or end < start or _TB_HEADER not in text[start:end]:
        return None  # missing or cut off: the HTML list is complete if the comment began
    return _final_block(text[start + 4 : end].splitlines())


def parse_traceback(lines: list[str]) -> Trace:
    """A traceback as Python prints it (``traceback.format_exception``: a dev server's
    console), keeping the final exception of a chain and its frames."""
    exception, frames = _final_block(lines)
    return Trace(exception, frames)


def _final_block(lines: list[str]) -> tuple[str, tuple[Frame, ...]]:
    """Parse ``traceback.format()`` output, keeping only the last exception of a chain.

    Blocks are separated by the chain divider lines, not by ``Traceback (most recent
    call last):``: an exception without a traceback has no header, and a message may
    quote another traceback (multiprocessing's RemoteTraceback does).
    """
    frames: list[Frame] = []
    exception = ""
    prefix = ""
    for raw in lines:
        if raw in _DIVIDERS:
            frames, exception, prefix = [], "", ""
            continue
        if exception:
            continue  # notes, message continuation lines, exception-group members
        if raw == _GROUP_HEADER:
            prefix = _GROUP_PREFIX
            continue
        if prefix:
            if not raw.startswith(prefix):
                continue
            raw = raw[len(prefix) :]
        match = _FRAME.match(raw)
        if match:
            path = match["file"]
            frames.append(Frame(path, int(match["line"]), match["func"], is_library(path)))
        elif raw.strip() and not raw[0].isspace() and raw != _TB_HEADER:
            exception = raw.strip()
    return exception, tuple(frames)


class _FrameCollector(HTMLParser):
    """Fallback: frames of the last exception in the HTML list, and whether it ended."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.frames: list[dict[str, str]] = []
        self.complete = False  # the list's </ul> or the exception text after it was seen
        self._in_list = False
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "ul":
            self._in_list = not self.complete
        elif tag in ("blockquote", "pre") and not self._in_list and self.frames:
            self.complete = True
        elif not self._in_list:
            return
        elif tag == "div" and "exc-divider" in classes:
            self.frames = []  # keep only the final exception's frames
        elif tag == "div" and "frame" in classes:
            self.frames.append({})
        elif tag == "div" and "source" in classes and "library" in classes and self.frames:
            self.frames[-1]["library"] = "1"  # Werkzeug's own sysconfig-based judgement
        elif tag in ("cite", "em", "code"):
            self._field = {"cite": "file", "em": "line", "code": "func"}[tag]

    def handle_endtag(self, tag: str) -> None:
        self._field = None
        if tag == "ul" and self._in_list:
            self._in_list = False
            self.complete = True

    def handle_data(self, data: str) -> None:
        if self._field and self.frames:
            frame = self.frames[-1]
            frame[self._field] = frame.get(self._field, "") + data


def _from_html(text: str) -> tuple[Frame, ...]:
    start = text.find('<div class="traceback')
    if start < 0:
        return ()
    stop = text.find('<div class="plain">', start)
    chunk = text[start : stop if stop >= 0 else start + _HTML_LIMIT][:_HTML_LIMIT]
    parser = _FrameCollector()
    try:
        parser.feed(_STRAY_LT.sub("&lt;", chunk))
    except (AssertionError, ValueError):  # HTMLParser's "should not happen" paths
        return ()
    if not parser.complete:
        return ()
    frames = []
    for found in parser.frames:
        path = found.get("file", "").strip().strip('"')
        line = found.get("line", "").strip()
        if path and line.isdecimal():
            func = found.get("func", "").strip() or None
            library = "library" in found or is_library(path)
            frames.append(Frame(path, int(line), func, library))
    # A SyntaxError's own location is only in the exception text, not in the list.
    _, located = _final_block((_errormsg(text) or "").splitlines())
    return (*frames, *located)


def _tail(path: str) -> str:
    """``jinja2/environment.py`` for an installed module, else the last two parts."""
    path = path.replace("\\", "/")
    root = _PACKAGE_ROOT.match(path)  # match, not search: ".*" anchored once, linear
    if root is not None and root.end() < len(path):
        return path[root.end() :]
    return "/".join(path.rsplit("/", 2)[-2:])


def _where(frame: Frame, name: str) -> str:
    return f"{name}:{frame.lineno}" + (f" in {frame.function}" if frame.function else "")


def summarize(trace: Trace) -> str:
    """``NameError: name 'x' is not defined (app.py:12 in hello)``.

    The location is the innermost application frame, by file name. When the exception
    was raised further in, in library code, that frame follows:
    ``(app.py:12 in view; raised in jinja2/environment.py:1301)``. When no application
    frame exists, the library frame is named as ``(raised in flask/app.py:1511 in
    wsgi_app)`` so it cannot pass for the user's own ``app.py``.
    """
    message = trace.exception or "unknown exception"
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    if not trace.frames:
        return message
    raised = trace.frames[-1]
    app = next((f for f in reversed(trace.frames) if not f.library), None)
    if app is None:
        return f"{message} (raised in {_where(raised, _tail(raised.filename))})"
    location = _where(app, app.filename.replace("\\", "/").rsplit("/", 1)[-1])
    if raised is not app:
        location += f"; raised in {_tail(raised.filename)}:{raised.lineno}"
    return f"{message} ({location})"
