"""One log line per exchange, as text or JSON (pure).

Values that came from the network are escaped before they reach the terminal
(flask-cors CVE-2024-1681: log injection through the request path).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe(text: str, limit: int = 300) -> str:
    """One printable line: control characters escaped, length capped."""
    if text.isascii() and text.isprintable():
        out = text  # the common case, without the regex (it runs 5 times per log line)
    else:
        out = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


_RED, _GREEN, _DIM = "\x1b[31m", "\x1b[32m", "\x1b[2m"
_STATUS_COLORS = {2: _GREEN, 3: "\x1b[36m", 4: "\x1b[33m", 5: _RED}


def _paint(text: str, color: str) -> str:
    return f"{color}{text}\x1b[0m" if color else text


def _plain(text: str, color: str) -> str:
    return text


# The CORS decision's word on the line (``cors=allowed[frontend]``).
CorsWord = Literal[
    "allowed",  # forwarded; the origin is allowed by the rule named
    "denied",  # forwarded without CORS headers: the rule does not allow the origin
    "no-origin",  # forwarded; the request had no Origin (same-origin, curl)
    "no-rule",  # forwarded; no rule covers the path
    "preflight-ok",  # a preflight the proxy answered with 204
    "preflight-denied",  # a preflight the proxy refused
    "ws",  # a WebSocket bridged (or being bridged)
    "ws-denied",  # a WebSocket refused for its Origin
]
# What Chromium does with a cross-origin exchange ("" when not evaluated).
BrowserVerdict = Literal["allowed", "blocked"]
NOTE_SEPARATOR = " | "  # between notes in ``Record.note``
MAX_NOTE = 1000  # characters of the notes on a text line (each other extra: 500)


@dataclass(slots=True)
class Record:
    method: str
    path: str
    status: int
    origin: str | None
    cors: CorsWord
    rule: str | None
    ms: float
    reason: str = ""  # why CORS was denied, or what went wrong
    diagnosis: str = ""  # the upstream's real error, e.g. a Werkzeug one-liner
    note: str = ""  # notes on the exchange, in order, joined by NOTE_SEPARATOR
    verdict: BrowserVerdict | Literal[""] = ""  # the browser's, on a cross-origin exchange
    console: str = ""  # for a blocked one, the text Chromium prints in its console
    hints: tuple[str, ...] = ()  # near misses, causes, cookie problems
    fix: str = ""  # the YAML change that would let it through
    repro: tuple[str, ...] = ()  # curl commands reproducing a blocked exchange (--explain)
    report: str = ""  # what report-only (candidate) rules would have blocked

    def add_note(self, note: str) -> None:
        """Notes accumulate: a later one never hides an earlier one."""
        self.note = f"{self.note}{NOTE_SEPARATOR}{note}" if self.note else note

    def text(self, color: bool = False) -> str:
        return self.template(color).render(self.ms)

    def json(self) -> str:
        return self.template(as_json=True).render(self.ms)

    def start(self, color: bool = False, *, as_json: bool = False) -> LineStart:
        """The line's request part, around its status: the fields a request head fixes
        (method, path, origin, CORS word, rule), escaped once. The fast lane's request
        cache keeps one per head (proxy/generation.py), so a repeated request's line
        costs a few joins."""
        if as_json:
            pre = [(k, v) for k, v in (("method", self.method), ("path", self.path)) if v]
            post = [
                (k, v)
                for k, v in (("origin", self.origin), ("cors", self.cors), ("rule", self.rule))
                if v not in _EMPTY
            ]
            return LineStart(
                "{" + "".join(f"{_dumps(k)}: {_dumps(v)}, " for k, v in pre) + '"status": ',
                "".join(f", {_dumps(k)}: {_dumps(v)}" for k, v in post) + ', "ms": ',
            )
        paint = _paint if color else _plain
        cors_color = _RED if "denied" in self.cors else ""
        return LineStart(
            f"{safe(self.method, 20)} {safe(self.path)} ",
            f" origin={safe(self.origin, 120) if self.origin is not None else '-'} "
            + paint(
                f"cors={self.cors}" + (f"[{safe(self.rule, 60)}]" if self.rule else ""), cors_color
            )
            + " ",
        )

    def template(
        self, color: bool = False, *, as_json: bool = False, start: LineStart | None = None
    ) -> LineTemplate:
        """The line with its ``ms`` left open (an allowed preflight answered again from
        the fast lane's request cache logs the same line with its own time); ``start``:
        this record's ``start(color, as_json=as_json)``, made before."""
        if start is None:
            start = self.start(color, as_json=as_json)
        if as_json:
            tail = {k: v for k in _TAIL if (v := getattr(self, k)) not in _EMPTY}
            after = ", " + json.dumps(tail, ensure_ascii=True)[1:] if tail else "}"
            return LineTemplate(f"{start.before}{self.status}{start.after}", after, True)
        status = str(self.status)
        if color:
            status = _paint(status, _STATUS_COLORS.get(self.status // 100, ""))
        before = f"{start.before}{status}{start.after}"
        paint = _paint if color else _plain
        after = "ms"
        if not (
            self.reason
            or self.diagnosis
            or self.console
            or self.hints
            or self.fix
            or self.repro
            or self.report
        ):
            if self.note:  # the common extra (a preflight's "for PUT"): no list to build
                after += " | " + paint(safe(self.note, MAX_NOTE), _DIM)
            return LineTemplate(before, after, False)
        extras = [(self.reason, _RED if "denied" in self.cors else ""), (self.diagnosis, _RED)]
        if self.console:
            extras.append((f"browser: {self.console}", _RED))
        extras += [(h, _DIM) for h in self.hints]
        if self.fix:
            extras.append((f"fix: {self.fix}", _GREEN))
        for extra, tone in extras:
            if extra:
                after += " | " + paint(safe(extra, 500), tone)
        if self.note:
            after += " | " + paint(safe(self.note, MAX_NOTE), _DIM)
        if self.report:
            after += " | " + paint(safe(self.report, 500), "\x1b[33m")
        for command in self.repro:
            after += f"\n    reproduce: {safe(command, 2000)}"
        return LineTemplate(before, after, False)


_EMPTY = ("", None, ())  # fields a JSON line leaves out
# the JSON fields after ms, in the record's order
_NAMES = tuple(f.name for f in fields(Record))
_TAIL = _NAMES[_NAMES.index("ms") + 1 :]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)


class LineStart(NamedTuple):
    """A log line's request part: the text before its status, and after it up to ``ms``."""

    before: str
    after: str


class LineTemplate(NamedTuple):
    """A log line around its ``ms`` value."""

    before: str
    after: str
    as_json: bool

    def render(self, ms: float) -> str:
        if self.as_json:
            return f"{self.before}{round(ms, 2)!r}{self.after}"  # json.dumps' float
        return f"{self.before}{ms:.1f}{self.after}"
