"""One log line per exchange, as text or JSON (pure).

Values that came from the network are escaped before they reach the terminal
(flask-cors CVE-2024-1681: log injection through the request path).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, Literal, NamedTuple

from proxy.policy.bounded import remember

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

    def add_note(self, note: str) -> None:
        """Notes accumulate: a later one never hides an earlier one."""
        self.note = f"{self.note}{NOTE_SEPARATOR}{note}" if self.note else note

    def text(self, color: bool = False) -> str:
        return self.template(color).render(self.ms)

    def json(self) -> str:
        return self.template(as_json=True).render(self.ms)

    def template(self, color: bool = False, *, as_json: bool = False) -> LineTemplate:
        """The line with its ``ms`` left open: a preflight answered again from the fast
        lane's known heads logs the same line with its own time (downstream.Replay).

        Most exchanges repeat an earlier one's fields (the same page asks the same
        paths): those lines are escaped and joined once."""
        if len(self.path) > MAX_KEPT_PATH:
            return self._template(color, as_json)
        key = (_line_fields(self), color, as_json)
        line = _templates.get(key)
        if line is None:
            line = remember(_templates, key, self._template(color, as_json), KEPT_TEMPLATES)
        return line

    def _template(self, color: bool, as_json: bool) -> LineTemplate:
        if as_json:
            data = {k: v for k, v in asdict(self).items() if v not in ("", None, ())}
            keys = list(data)
            at = keys.index("ms")  # the fields before ms, and after it, dumped apart
            head = {k: data[k] for k in keys[:at]}  # never empty: status is always there
            tail = {k: data[k] for k in keys[at + 1 :]}
            before = json.dumps(head, ensure_ascii=True)[:-1] + ', "ms": '
            after = ", " + json.dumps(tail, ensure_ascii=True)[1:] if tail else "}"
            return LineTemplate(before, after, True)
        paint = _paint if color else _plain
        status_color = _STATUS_COLORS.get(self.status // 100, "")
        cors_color = _RED if "denied" in self.cors else ""
        before = (
            f"{safe(self.method, 20)} {safe(self.path)} {paint(str(self.status), status_color)} "
            f"origin={safe(self.origin, 120) if self.origin is not None else '-'} "
            + paint(
                f"cors={self.cors}" + (f"[{safe(self.rule, 60)}]" if self.rule else ""), cors_color
            )
            + " "
        )
        after = "ms"
        if not (
            self.reason or self.diagnosis or self.console or self.hints or self.fix or self.repro
        ):
            if self.note:  # the common extra (a preflight's "for PUT"): no list to build
                after += " | " + paint(safe(self.note, MAX_NOTE), _DIM)
            return LineTemplate(before, after, False)
        extras = [(self.reason, cors_color), (self.diagnosis, _RED)]
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
        for command in self.repro:
            after += f"\n    reproduce: {safe(command, 2000)}"
        return LineTemplate(before, after, False)


KEPT_TEMPLATES = 1024  # lines kept by their fields (then forgotten at once)
MAX_KEPT_PATH = 2048  # characters: a longer path's line is built each time (bounds memory)
_templates: dict[tuple[Any, ...], LineTemplate] = {}
# every field but ms, in one C call: the key of a kept line
_line_fields = attrgetter(*(f.name for f in fields(Record) if f.name != "ms"))


class LineTemplate(NamedTuple):
    """A log line around its ``ms`` value."""

    before: str
    after: str
    as_json: bool

    def render(self, ms: float) -> str:
        if self.as_json:
            return f"{self.before}{round(ms, 2)!r}{self.after}"  # json.dumps' float
        return f"{self.before}{ms:.1f}{self.after}"
