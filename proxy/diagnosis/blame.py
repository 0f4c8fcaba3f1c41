"""Which exchange a traceback on the dev server's console belongs to (pure).

Pure: standard library only; times are passed in. The supervisor tells ``Blame`` when
an exchange begins and ends and what the console said (``console`` events); ``due``
hands back the exchanges whose log line may be written now, with what was found.

A traceback goes to an exchange by, in order: the request the line before it names
(Flask's ``Exception on /api/boom [GET]``, Django's ``Internal Server Error: /boom``);
the request line printed just before it (Werkzeug); the first 5xx request line printed
after it began (Flask without debug, Django, uvicorn); or timing, when only one exchange
could have raised it (it began before the traceback and did not end with a status below
500). Exchanges with the same method and target are interchangeable: the earliest one
gets it. Otherwise each exchange that might have raised it says so instead of a guess.

The log line of an exchange that ended with a 5xx waits for its traceback: until one is
joined to it, or the console has been quiet for ``QUIET`` seconds with no traceback
being read or pending, or at most ``HOLD`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from proxy.diagnosis.console import RequestLine, Traced
from proxy.diagnosis.error_body import NOT_DEBUG_HINT

__all__ = ["HOLD", "QUIET", "Blame", "merge"]

HOLD: Final = 0.5  # seconds a 5xx line waits at most for its traceback
QUIET: Final = 0.1  # seconds of console silence after which no traceback is coming
RECENT: Final = 2.0  # seconds a request line is kept for a traceback that began before it
MAX_PENDING: Final = 64  # tracebacks waiting for a decision (oldest dropped)
MAX_LINES: Final = 256  # request lines kept


@dataclass
class _Exchange:
    key: int
    method: str
    target: str
    started: float
    ended: float | None = None
    status: int | None = None
    text: str = ""  # what was found for its line
    settled: bool = False  # text is final (joined, ambiguous, the child exited)

    @property
    def path(self) -> str:
        return unquote(self.target.split("?", 1)[0])

    def failed(self) -> bool:
        return self.status is not None and self.status >= 500

    def possible(self) -> bool:
        """Could still have raised a traceback: in flight, or ended with a 5xx."""
        return not self.settled and (self.status is None or self.status >= 500)


@dataclass
class _Pending:
    traced: Traced
    completed: float
    candidates: list[_Exchange] = field(default_factory=list)


class Blame:
    def __init__(self, source: str = "the dev server") -> None:
        self.source = source  # "flask": named in the notes
        self._exchanges: dict[int, _Exchange] = {}
        self._pending: list[_Pending] = []
        self._lines: list[tuple[float, RequestLine]] = []
        self._last_output = 0.0

    # -- what happens ---------------------------------------------------------------------

    def begin(self, key: int, method: str, target: str, now: float) -> None:
        self._exchanges[key] = _Exchange(key, method, target, now)

    def end(self, key: int, status: int, now: float) -> bool:
        """The exchange ended; True when its line must wait (``due`` gives it back)."""
        ex = self._exchanges.get(key)
        if ex is None:
            return False
        ex.ended, ex.status = now, status
        if ex.settled or status >= 500:
            return True
        del self._exchanges[key]  # below 500: never the one that raised
        return False

    def forget(self, key: int) -> None:
        """The exchange's line was written by someone else (cut off at shutdown)."""
        self._exchanges.pop(key, None)

    def output(self, now: float) -> None:
        """The dev server printed something (the quiet rule counts from here)."""
        self._last_output = now

    def request_line(self, line: RequestLine, now: float) -> None:
        if line.status >= 500:
            self._lines.append((now, line))
            del self._lines[:-MAX_LINES]

    def traceback(self, traced: Traced, now: float) -> None:
        candidates = [
            ex for ex in self._exchanges.values() if ex.possible() and ex.started <= traced.started
        ]
        if traced.path is not None:
            candidates = [ex for ex in candidates if _same_path(ex, traced.path, traced.method)]
        if traced.adjacent is not None:
            candidates = [ex for ex in candidates if _same_request(ex, traced.adjacent)]
        if not candidates:
            return  # a request that did not go through the proxy
        self._pending.append(_Pending(traced, now, candidates))
        del self._pending[:-MAX_PENDING]

    def child_exited(self, reason: str, now: float) -> None:
        """Every exchange in flight gets the reason its dev server went away."""
        for ex in self._exchanges.values():
            if not ex.settled:
                ex.text = merge(ex.text, f"{self.source} {reason} during this exchange")
                ex.settled = True

    # -- decisions ------------------------------------------------------------------------

    def due(self, now: float, *, reading: bool = False) -> list[tuple[int, str]]:
        """(key, what was found) for each ended exchange whose line may go out now.
        ``reading``: a traceback is being read on the console right now."""
        self._decide(now)
        self._lines = [(t, line) for t, line in self._lines if now - t < RECENT]
        out = []
        quiet = now - self._last_output >= QUIET and not reading and not self._pending
        for ex in list(self._exchanges.values()):
            if ex.ended is None:
                continue
            waited = now - ex.ended
            if ex.settled or waited >= HOLD or (quiet and waited >= QUIET):
                out.append((ex.key, ex.text))
                del self._exchanges[ex.key]
        return out

    def next_check(self, now: float) -> float | None:
        """When ``due`` may have something new without another event, or None."""
        times = [ex.ended + HOLD for ex in self._exchanges.values() if ex.ended is not None]
        times += [p.completed + HOLD for p in self._pending]
        if not times:
            return None
        return min(min(times), now + QUIET)

    def drain(self) -> list[tuple[int, str]]:
        """Every ended exchange, now (shutdown)."""
        self._decide(float("inf"))
        out = [(ex.key, ex.text) for ex in self._exchanges.values() if ex.ended is not None]
        for key, _ in out:
            del self._exchanges[key]
        return out

    def _decide(self, now: float) -> None:
        for pending in list(self._pending):
            if self._settle(pending, now):
                self._pending.remove(pending)

    def _settle(self, pending: _Pending, now: float) -> bool:
        """Join ``pending`` to its exchange when that is known; True when done with it."""
        candidates = [ex for ex in pending.candidates if ex.possible()]
        if not candidates:
            return True
        summary = pending.traced.summary
        if len(candidates) == 1:
            return _join(candidates[0], summary)
        for at, line in self._lines:  # the first 5xx request line printed after it began
            if at < pending.traced.started:
                continue
            same = [ex for ex in candidates if _same_request(ex, line)]
            if same:
                self._lines.remove((at, line))
                return _join(min(same, key=lambda ex: ex.started), summary)
        if len({(ex.method, ex.target) for ex in candidates}) == 1:
            failed = [ex for ex in candidates if ex.failed()]
            if failed:  # identical requests: interchangeable
                return _join(min(failed, key=lambda ex: ex.started), summary)
        waited = now - pending.completed >= HOLD or any(
            ex.ended is not None and now - ex.ended >= HOLD for ex in candidates
        )
        if not waited:
            return False
        failed = [ex for ex in candidates if ex.failed()]
        still = [ex for ex in candidates if ex.status is None]
        if len(failed) == 1 and not still:
            return _join(failed[0], summary)  # timing: the only one that failed
        names = ", ".join(f"{ex.method} {ex.target}" for ex in candidates[:4])
        more = f" and {len(candidates) - 4} more" if len(candidates) > 4 else ""
        note = (
            f"{self.source} printed a traceback while {len(candidates)} exchanges were in "
            f"flight ({names}{more}); which one raised it cannot be told: {summary}"
        )
        for ex in candidates:
            ex.text = merge(ex.text, note)
        return True


def _join(ex: _Exchange, summary: str) -> bool:
    ex.text = merge(ex.text, summary)
    ex.settled = True
    return True


def _same_path(ex: _Exchange, path: str, method: str | None) -> bool:
    if method is not None and method != ex.method:
        return False
    return _ends_alike(unquote(path), ex.path)


def _same_request(ex: _Exchange, line: RequestLine) -> bool:
    return line.method == ex.method and _ends_alike(unquote(line.target), unquote(ex.target))


def _ends_alike(upstream: str, client: str) -> bool:
    """The upstream saw ``client``'s target, maybe under the upstream URL's path prefix."""
    return upstream == client or (upstream.endswith(client) and client.startswith("/"))


def merge(diagnosis: str, found: str) -> str:
    """An exchange's diagnosis with what the console said. The generic error page's
    hint ("the traceback is in the Flask console") gives way to the traceback itself;
    the same words from the debugger page are not repeated."""
    if not diagnosis or NOT_DEBUG_HINT in diagnosis:
        return found
    if not found or found in diagnosis or diagnosis in found:
        return diagnosis if len(diagnosis) >= len(found) else found
    return f"{diagnosis}; {found}"
