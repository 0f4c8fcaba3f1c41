"""What an upstream error response really says, in one line (pure).

Input is the status, two headers and a bounded prefix of the body as received (maybe
compressed: the proxy never decompresses what it forwards). Output is a short,
sanitized summary for the log, e.g. ``NameError: name 'x' is not defined (app.py:12 in
hello)``, or a hint such as "Flask is not in debug mode".
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Final

from proxy.logfmt import safe
from proxy.werkzeug_tb import parse_debugger_page, summarize

MAX_CAPTURE: Final = 1 << 20  # bytes of an error body kept for diagnosis

_GENERIC_TITLE = re.compile(rb"<title>(\d{3}) ([^<]{1,80})</title>", re.I)
_H1 = re.compile(rb"<h1>([^<]{1,200})</h1>\s*<p>([^<]{0,300})", re.I)
NOT_DEBUG_HINT: Final = "Flask is not in debug mode; the traceback is in the Flask console"


@dataclass(frozen=True)
class BodyDiagnosis:
    kind: str  # werkzeug-debugger | werkzeug-generic | json | text
    summary: str
    hint: str | None = None


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace collapsed, control characters escaped, length capped."""
    return safe(" ".join(text.split()), limit)


def decode_body(content_encoding: str | None, body: bytes) -> bytes | None:
    """Undo gzip/deflate of a captured prefix; None when it cannot be decoded."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip", "deflate"):
        return None  # br, zstd: not in the standard library
    try:
        # wbits=47 accepts gzip and zlib headers; a truncated capture yields its prefix.
        return zlib.decompressobj(wbits=47).decompress(body, MAX_CAPTURE)
    except zlib.error:
        try:
            return zlib.decompressobj(wbits=-15).decompress(body, MAX_CAPTURE)  # raw deflate
        except zlib.error:
            return None


def diagnose_body(
    status: int, content_type: str | None, content_encoding: str | None, body: bytes
) -> BodyDiagnosis | None:
    """Explain an error response, or None when the body says nothing useful."""
    raw = decode_body(content_encoding, body)
    if raw is None:
        return None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in ("text/html", "") and b"Werkzeug Debugger" in raw[:4096] + raw[-65536:]:
        trace = parse_debugger_page(raw)
        if trace is not None:
            return BodyDiagnosis("werkzeug-debugger", one_line(summarize(trace)))
    if mime == "text/html" or raw.lstrip()[:15].lower().startswith(b"<!doctype html"):
        return _generic_page(status, raw)
    if mime == "application/json" or mime.endswith("+json"):
        return _json_body(raw)
    if mime.startswith("text/") and raw.strip():
        first = raw.decode("utf-8", errors="replace").strip().splitlines()[0]
        return BodyDiagnosis("text", one_line(first, 200))
    return None


def _generic_page(status: int, raw: bytes) -> BodyDiagnosis | None:
    """Werkzeug's ``HTTPException.get_body``: ``<title>500 Internal Server Error</title>``."""
    title = _GENERIC_TITLE.search(raw[:2048])
    if title is None:
        return None
    h1 = _H1.search(raw[:4096])
    name = title.group(2).decode("utf-8", "replace")
    desc = h1.group(2).decode("utf-8", "replace") if h1 else ""
    summary = one_line(f"{name}: {desc}" if desc else name, 200)
    hint = NOT_DEBUG_HINT if status >= 500 else None
    return BodyDiagnosis("werkzeug-generic", summary, hint)


def _json_body(raw: bytes) -> BodyDiagnosis | None:
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "description", "title"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return BodyDiagnosis("json", one_line(f"{key}: {value}", 200))
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return BodyDiagnosis("json", one_line(f"{key}: {value['message']}", 200))
    return None
