"""The last N exchanges, as the forwarder saw them (pure).

Capturing is on the hot path, so it keeps references, never copies or text: one tuple
appended to a bounded deque and a few counters. What the page shows of an exchange is
built from its entry only when someone asks (``proxy.inspector.view``).

Memory is bounded in bytes: a kept exchange is its ``Record`` and its two header lists,
never a body. The header lists handed to ``add`` are at most ``MAX_HEAD_BYTES`` each
(the fast lane's heads are smaller by construction; anything else goes through
``bounded_fields`` first), and a record whose text can outgrow its request head (the
browser's words, hints, curl commands) is kept as a trimmed copy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from itertools import islice
from typing import Protocol

from proxy.log.record import Record

MAX_HEAD_BYTES = 16384  # bytes of text per header list kept (the fast lane's MAX_HEAD)
MAX_FIELDS = 100  # header fields kept per list
MAX_VALUE = 4096  # bytes per header value kept
# Bytes of text per record field kept (an ASCII character is one; any other counts as
# four); a record with more is kept as a trimmed copy.
MAX_PATH = 2048
MAX_ORIGIN = 512
MAX_TEXT = 1024  # reason, note, fix, each hint
MAX_DIAGNOSIS = 2048
MAX_CONSOLE = 4096  # Chromium's words hold the URL and the origin
MAX_HINTS = 8
MAX_ORIGINS = 64  # distinct origins counted one by one; the rest count as "other"
OTHER = "(other origins)"

Fields = Sequence[tuple[str, str]]


class HeaderItems(Protocol):
    """A request's headers as the servers hand them over (a multidict)."""

    def items(self) -> Iterable[tuple[str, str]]: ...


# id, when it ended (time.monotonic(), which the forwarder reads anyway), ms, the record,
# request headers, response headers (None: no response was sent, e.g. the client went
# away first)
Entry = tuple[int, float, float, Record, "HeaderItems | Fields", "Fields | None"]


class Counts:
    """Exchanges, blocked ones and upstream errors (status >= 500) of one origin."""

    __slots__ = ("blocked", "errors", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.blocked = 0
        self.errors = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "blocked": self.blocked, "errors": self.errors}


class Ring:
    """The last ``keep`` exchanges and the counts since the last ``clear``."""

    def __init__(self, keep: int) -> None:
        self.entries: deque[Entry] = deque(maxlen=keep)
        self.last_id = 0  # ids grow for the process's life: a page asks "after id N"
        self.origins: dict[str | None, Counts] = {}  # the totals are their sums
        # Called after each capture while someone listens (the page's events); None
        # otherwise, so an exchange nobody watches costs no call.
        self.wake: Callable[[], None] | None = None

    @property
    def keep(self) -> int:
        return self.entries.maxlen or 0

    def resize(self, keep: int) -> None:
        if keep != self.keep:
            self.entries = deque(self.entries, maxlen=keep)

    def add(
        self,
        rec: Record,
        request: HeaderItems | Fields,
        response: Fields | None,
        ended: float,
        ms: float | None = None,
    ) -> None:
        """Keep one exchange (the hot path: references and counters only). Both header
        lists must be within ``MAX_HEAD_BYTES`` (see the module doc); ``ended`` is
        ``time.monotonic()`` at its end. ``ms``: a preflight answered again from an
        earlier decision, its record shared, with its own time.

        A record's text grows with the request head (at most the fast lane's 16 KiB)
        only when the oracle or the cookie doctor spoke: then it is kept trimmed."""
        blocked = rec.verdict == "blocked"
        if blocked or rec.hints or rec.repro:
            rec = bounded_record(rec)
        self.last_id = n = self.last_id + 1
        self.entries.append((n, ended, rec.ms if ms is None else ms, rec, request, response))
        counts = self.origins.get(rec.origin)
        if counts is None:
            counts = self._origin(rec.origin)
        counts.requests += 1
        if blocked:
            counts.blocked += 1
        if rec.status >= 500:
            counts.errors += 1
        if self.wake is not None:
            self.wake()

    def again(
        self,
        rec: Record,
        request: HeaderItems | Fields,
        response: Fields | None,
        ended: float,
        ms: float,
    ) -> None:
        """``add`` for a preflight the fast lane answered again from an earlier 204: the
        same (allowed) record, its own time; nothing to trim, nothing blocked."""
        self.last_id = n = self.last_id + 1
        self.entries.append((n, ended, ms, rec, request, response))
        counts = self.origins.get(rec.origin)
        if counts is None:
            counts = self._origin(rec.origin)
        counts.requests += 1
        if self.wake is not None:
            self.wake()

    def _origin(self, origin: str | None) -> Counts:
        key = origin if len(self.origins) < MAX_ORIGINS else OTHER
        if origin is not None and len(origin) > MAX_ORIGIN:
            key = OTHER
        counts = self.origins.get(key)
        if counts is None:
            counts = self.origins[key] = Counts()
        return counts

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.origins.values():
            total.requests += counts.requests
            total.blocked += counts.blocked
            total.errors += counts.errors
        return total

    def clear(self) -> None:
        self.entries.clear()
        self.origins = {}

    def window(self, lo: int, hi: int) -> list[Entry]:
        """The kept entries with ids from ``lo`` to ``hi``, oldest first."""
        entries = self.entries
        if not entries or hi < lo:
            return []
        last = entries[-1][0]
        lo, hi = max(lo, entries[0][0]), min(hi, last)
        if hi < lo:
            return []
        found = list(islice(reversed(entries), last - hi, last - lo + 1))
        found.reverse()
        return found

    def get(self, entry_id: int) -> Entry | None:
        entries = self.entries
        if not entries or not entries[0][0] <= entry_id <= entries[-1][0]:
            return None
        return entries[entry_id - entries[0][0]]  # ids in the ring are consecutive


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    """At most ``limit`` bytes of memory: a character outside ASCII may take four."""
    if not text.isascii():
        limit //= 4
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_record(rec: Record) -> Record:
    """A copy of ``rec`` within the limits above (the curl commands are left out: the
    page makes its own from the kept headers)."""
    return replace(
        rec,
        method=_cut(rec.method, 64),
        path=_cut(rec.path, MAX_PATH),
        origin=None if rec.origin is None else _cut(rec.origin, MAX_ORIGIN),
        rule=None if rec.rule is None else _cut(rec.rule, 256),
        reason=_cut(rec.reason),
        diagnosis=_cut(rec.diagnosis, MAX_DIAGNOSIS),
        note=_cut(rec.note),
        console=_cut(rec.console, MAX_CONSOLE),
        hints=tuple(_cut(h) for h in rec.hints[:MAX_HINTS]),
        fix=_cut(rec.fix),
        repro=(),
    )


def bounded_fields(fields: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """At most ``MAX_FIELDS`` fields and ``MAX_HEAD_BYTES`` bytes of text: long values
    are cut (and end with "…"), fields past the budget are dropped."""
    out: list[tuple[str, str]] = []
    budget = MAX_HEAD_BYTES
    for name, value in fields:
        if len(out) >= MAX_FIELDS or budget <= 0:
            break
        name = _cut(name, 256)
        value = _cut(value, min(max(budget - _cost(name), 4), MAX_VALUE))
        out.append((name, value))
        budget -= _cost(name) + _cost(value)
    return tuple(out)


def _cost(text: str) -> int:
    """Bytes of memory ``text`` may take beyond its object (1 per ASCII character, else
    up to 4)."""
    return len(text) if text.isascii() else 4 * len(text)


def fields_size(fields: Iterable[tuple[str, str]]) -> int:
    return sum(_cost(name) + _cost(value) for name, value in fields)
