"""What an upstream error response really says, in one line (pure).

Pure: standard library only (``json``, ``re``, ``zlib``, ``html``); no I/O, no clock,
no logging. Input is the status, two response headers and a bounded prefix of the body
as it came off the wire: maybe compressed, because the proxy forwards bytes untouched
(it never decompresses). Output is a sanitized one-line summary such as
``NameError: name 'x' is not defined (app.py:12 in hello)``, plus a hint when the body
explains where the real error is, e.g. that Flask is not in debug mode.
"""

from __future__ import annotations

import html
import json
import re
import zlib
from dataclasses import dataclass
from typing import Final

from proxy.diagnosis.werkzeug_page import parse_debugger_page, summarize

__all__ = ["MAX_CAPTURE", "NOT_DEBUG_HINT", "BodyDiagnosis", "diagnose_body", "one_line"]

MAX_CAPTURE: Final = 1 << 20  # bytes of an error body the forwarder keeps for diagnosis
NOT_DEBUG_HINT: Final = "Flask is not in debug mode; the traceback is in the Flask console"

# Werkzeug's HTTPException.get_body(): "<title>500 Internal Server Error</title>" then
# "<h1>Internal Server Error</h1>" and "<p>description</p>" (2.0.x to 3.x). The h1 must
# repeat the title's name: nginx and others put the code in their <h1>.
_GENERIC = re.compile(
    r"<title>(?P<code>\d{3}) (?P<name>[^<\n]{1,80})</title>\s*<h1>(?P=name)</h1>\s*"
    r"(?:<p>(?P<desc>[^<]{0,1000}))?",
)
_DEFAULT_500 = "The server encountered an internal error"  # InternalServerError's text
_ANY_TITLE = re.compile(r"<title[^>]*>(?P<title>[^<]{1,300})</title>", re.IGNORECASE)
_JSON_KEYS = ("error", "message", "detail", "title", "description")
_HEAD = 8192  # titles and generic pages live at the very top
# one_line() looks at no more than this many characters per character of output.
_SCAN_FACTOR = 4
_SCAN_SLACK = 256


@dataclass(frozen=True)
class BodyDiagnosis:
    """What an error body says. ``kind`` is one of ``werkzeug-debugger``,
    ``werkzeug-generic``, ``json``, ``text`` or ``unknown`` (an HTML page known only by
    its title, or a body that could not be decompressed)."""

    kind: str
    summary: str  # one line, sanitized
    hint: str | None = None


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters.

    Line breaks (including U+2028/U+2029/NEL) and runs of whitespace become one space,
    so a value can never start a forged log line (flask-cors CVE-2024-1681); terminal
    escapes and other unprintable characters are removed; an overlong result ends in
    ``...``.
    """
    head = text[: _SCAN_FACTOR * max(limit, 0) + _SCAN_SLACK]  # bounded work on huge input
    # Whitespace (incl. U+2028, NEL) becomes a space; every other unprintable character
    # (C0/C1 controls such as ESC, bidi and zero-width controls, surrogates, unassigned
    # code points) is removed.
    kept = "".join(" " if c.isspace() else c for c in head if c.isspace() or c.isprintable())
    flat = " ".join(kept.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 3] + "..." if limit > 3 else flat[:limit]


def diagnose_body(
    status: int, content_type: str | None, content_encoding: str | None, body: bytes
) -> BodyDiagnosis | None:
    """Explain an error response (status >= 400), or None when the body says nothing useful.

    Recognises, in order: Werkzeug's debugger page, Werkzeug's generic error page (with
    the hint that Flask is not in debug mode), any other HTML page by its ``<title>``,
    a JSON object with an ``error``/``message``/``detail`` string, and the first line of
    ``text/plain``. Never raises, whatever the bytes.
    """
    if status < 400 or not body:
        return None
    raw = _decode(content_encoding, body[:MAX_CAPTURE])
    if isinstance(raw, str):
        return BodyDiagnosis("unknown", raw)
    if not raw.strip():
        return None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in ("", "text/html", "application/xhtml+xml"):
        trace = parse_debugger_page(raw)
        if trace is not None:
            summary = one_line(summarize(trace)) or "unreadable exception line"
            return BodyDiagnosis("werkzeug-debugger", summary)
        head = raw[:_HEAD].decode("utf-8", errors="replace")
        found = _generic_page(head) or _titled_page(head)
        if found is not None or mime:
            return found  # an HTML page with neither is not worth a guess
    if mime == "application/json" or mime.endswith("+json"):
        return _json_body(raw)
    if not mime and raw.lstrip()[:1] == b"{":  # Flask's jsonify always sets the type;
        return _json_body(raw)  # others may not
    if mime == "text/plain":
        return _text_body(raw)
    return None


def _decode(content_encoding: str | None, body: bytes) -> bytes | str:
    """Undo gzip/deflate of a captured prefix, or say (as a str) why that failed."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    for coding in reversed([c for c in codings if c not in ("", "identity")]):
        if coding not in ("gzip", "x-gzip", "deflate"):
            return f"error body is {one_line(coding, 20)}-compressed; not decoded"
        try:
            # wbits=47 detects gzip and zlib headers. decompress() with a max_length
            # returns what a truncated capture holds and bounds a decompression bomb.
            body = zlib.decompressobj(wbits=47).decompress(body, MAX_CAPTURE)
        except zlib.error:
            try:  # "deflate" sent as raw deflate without the zlib header happens
                body = zlib.decompressobj(wbits=-15).decompress(body, MAX_CAPTURE)
            except zlib.error:
                return f"error body is not valid {coding}"
    return body


def _generic_page(head: str) -> BodyDiagnosis | None:
    match = _GENERIC.search(head)
    if match is None:
        return None
    name = html.unescape(match["name"])
    desc = html.unescape(match["desc"] or "")  # up to the first tag, e.g. a <br>
    summary = one_line(f"{match['code']} {name}" + (f": {desc}" if desc.strip() else ""))
    # Only an unhandled exception gives the stock 500 text; abort(503) has no traceback.
    unhandled = match["code"] == "500" and desc.startswith(_DEFAULT_500)
    return BodyDiagnosis("werkzeug-generic", summary, NOT_DEBUG_HINT if unhandled else None)


def _titled_page(head: str) -> BodyDiagnosis | None:
    match = _ANY_TITLE.search(head)
    title = one_line(html.unescape(match["title"])) if match else ""
    return BodyDiagnosis("unknown", title) if title else None


def _json_body(raw: bytes) -> BodyDiagnosis | None:
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        return None
    if not isinstance(data, dict):
        return None
    for key in _JSON_KEYS:
        value = data.get(key)
        if isinstance(value, dict):  # {"error": {"message": "...", "code": 7}}
            value = value.get("message")
        if isinstance(value, str) and one_line(value):
            return BodyDiagnosis("json", one_line(f"{key}: {value}"))
    return None


def _text_body(raw: bytes) -> BodyDiagnosis | None:
    text = raw[:_HEAD].decode("utf-8", errors="replace")
    lines = (one_line(line, 200) for line in text.splitlines())
    first = next((line for line in lines if line), "")  # NUL padding is no message
    return BodyDiagnosis("text", first) if first else None
