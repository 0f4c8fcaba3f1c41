"""What the browser will do with an exchange, and what to tell the developer (pure).

The forwarder hands ``Explainer.explain`` what it saw on both sides of one exchange (a
``Seen``); the answer (an ``Explanation``) is what the log record gets. This module is
the glue between the browser oracle (``oracle``), the near-miss hints (``near_miss``),
the cookie doctor (``cookies``), the error-page reader (``error_body``) and the
impostor check (``unreachable``); it never decides anything about the exchange.

An ``Explainer`` remembers what it has said (an upstream CORS value it replaced, a cookie
problem, the long note on a path's error status, the error it last diagnosed), so a page
that polls does not get the same paragraph on every line, and which cookies the browser
refused, so a later 401/403 without them can say so. Clients choose some of those
values (``Origin``, ``Host``, the path), so that memory is bounded in bytes, the oldest
forgotten first:

- each table of things said (``Once``) keeps ``MAX_REMEMBERED`` keys of at most
  ``MAX_KEY_CHARS`` characters in all (a longer key is kept as its 32-character digest):
  under ``ONCE_BYTES`` (512 KiB) however long the values;
- the refused cookies (``RefusedCookies``) keep ``MAX_PAGES`` (page, proxy) origin pairs
  of ``MAX_COOKIES_KEPT`` cookies each, every string in them cut short: under
  ``REFUSED_COOKIES_BYTES`` (4 MiB);
- ``last_error`` is one diagnosis (its length is the error body's bound).

``tests/diagnosis/test_explain.py`` fills each with the longest, widest values
(4 bytes a character) and measures the memory they hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from proxy.diagnosis.cookies import CookieVerdict, diagnose_set_cookie
from proxy.diagnosis.error_body import diagnose_body
from proxy.diagnosis.near_miss import near_misses
from proxy.diagnosis.oracle import Exchange, evaluate
from proxy.diagnosis.unreachable import impostor
from proxy.log.record import BrowserVerdict, Record
from proxy.policy.cors import CorsRule

MAX_REMEMBERED: Final = 256  # entries per table of things already said
MAX_KEY_CHARS: Final = 256  # characters of a key, all parts; longer: a 32-character digest
MAX_PAGES: Final = 64  # (page origin, proxy origin) pairs whose refused cookies are kept
MAX_COOKIES_KEPT: Final = 16  # refused cookies remembered per page and proxy origin
ONCE_BYTES: Final = 512 * 1024  # the most one Once holds (the module doc)
REFUSED_COOKIES_BYTES: Final = 4 * 1024 * 1024  # the most RefusedCookies holds
_SHOWN_VALUE: Final = 120  # characters of an upstream header value quoted in a note
_SHOWN_PATH: Final = 200  # characters of a path kept with a refused cookie
_SHOWN_WHY: Final = 300  # characters of the reason kept with a refused cookie


@dataclass(slots=True)
class Seen:
    """What the forwarder saw of one exchange, on both sides."""

    method: str  # the request's; for a preflight, its Access-Control-Request-Method
    url: str  # what the page fetched: the proxy's scheme and Host, and the raw path
    origin: str | None  # the request's Origin (repeated lines joined)
    client_origin: str  # the proxy's own origin as the page addressed it
    request_headers: Container[str]  # case-insensitive names, for the credentials guess
    rule: CorsRule | None  # the rule the decision names
    allowed: bool  # the proxy's CORS decision
    origin_allowed: bool  # the rule accepts the origin (a preflight may still be refused)
    fix: str  # the decision's YAML change, when the proxy's rules refused
    status: int  # what the client got
    response_headers: Sequence[tuple[str, str]]  # what the client got
    preflight: bool = False  # the proxy answered a preflight
    unsafe_headers: tuple[str, ...] = ()  # a preflight's Access-Control-Request-Headers
    override: bool = True  # upstream_cors: override
    upstream_headers: Sequence[tuple[str, str]] = ()  # as the upstream sent them
    upstream_cors: Sequence[tuple[str, str]] = ()  # its own Access-Control-* fields
    cookies: Sequence[str] = ()  # its Set-Cookie values
    body: bytes | None = None  # the start of an error body (4xx/5xx), else None
    upstream_port: int = 0
    retried: bool = False  # served after waiting for the upstream to come back
    sent_cookies: str = ""  # the request's Cookie field ("" when it had none)

    @property
    def path(self) -> str:
        """The path the page fetched, without its query."""
        return self.url[len(self.client_origin) :].partition("?")[0]


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the log record gets; empty fields leave the record as it is."""

    verdict: BrowserVerdict | Literal[""] = ""
    console: str = ""  # Chromium's console text for a blocked exchange
    hints: tuple[str, ...] = ()  # near misses, causes, cookie problems
    fix: str = ""  # the YAML change, when the proxy's rules are the cause
    diagnosis: str = ""  # the upstream's real error
    notes: tuple[str, ...] = ()  # each said once, in the order they arose

    def apply(self, rec: Record) -> None:
        if self.verdict:
            rec.verdict = self.verdict
        if self.console:
            rec.console = self.console
        if self.fix:
            rec.fix = self.fix
        if self.diagnosis:
            rec.diagnosis = self.diagnosis
        rec.hints += self.hints
        for note in self.notes:
            rec.add_note(note)


NOTHING: Final = Explanation()


class Once:
    """Keys already seen, the oldest forgotten past ``limit`` entries."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self.limit = limit
        self._keys: dict[Hashable, None] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (again after it was forgotten)."""
        key = _bounded(key)
        if key in self._keys:
            return False
        if len(self._keys) >= self.limit:
            del self._keys[next(iter(self._keys))]
        self._keys[key] = None
        return True


def _bounded(key: Hashable) -> Hashable:
    """``key``, or its digest when its parts (strings, numbers) are longer than
    ``MAX_KEY_CHARS`` characters in all."""
    parts = key if isinstance(key, tuple) else (key,)
    if sum(len(p) if isinstance(p, str) else 1 for p in parts) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        text = part if isinstance(part, str) else repr(part)
        digest.update(b"%d:" % len(text) + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class RefusedCookie:
    """A cookie the browser did not keep (or keeps but does not send back)."""

    set_by: str  # the path whose response set it
    fate: str  # "did not store it" | "stores it but does not send it back"
    why: str  # the cookie doctor's first reason


class RefusedCookies:
    """Cookies the browser refused, per (page origin, proxy origin): at most ``limit``
    pairs (the oldest forgotten first) and ``MAX_COOKIES_KEPT`` names each, a name at
    most ``MAX_KEY_CHARS`` characters (under ``REFUSED_COOKIES_BYTES`` in all)."""

    def __init__(self, limit: int = MAX_PAGES) -> None:
        self.limit = limit
        self._pairs: dict[Hashable, dict[str, RefusedCookie]] = {}

    def __len__(self) -> int:
        return len(self._pairs)

    def remember(self, pair: tuple[str, str], name: str, refused: RefusedCookie | None) -> None:
        """Note what became of cookie ``name`` (None: the browser keeps and sends it)."""
        name = name[:MAX_KEY_CHARS]
        key = _bounded(pair)
        names = self._pairs.get(key)
        if refused is None:
            if names is not None:
                names.pop(name, None)
            return
        if names is None:
            if len(self._pairs) >= self.limit:
                del self._pairs[next(iter(self._pairs))]
            names = self._pairs[key] = {}
        names.pop(name, None)
        if len(names) >= MAX_COOKIES_KEPT:
            del names[next(iter(names))]
        names[name] = refused

    def missing(self, pair: tuple[str, str], sent: str) -> list[tuple[str, RefusedCookie]]:
        """The refused cookies of ``pair`` that the Cookie field ``sent`` lacks."""
        names = self._pairs.get(_bounded(pair))
        if not names:
            return []
        have = {part.partition("=")[0].strip() for part in sent.split(";")}
        return [(name, refused) for name, refused in names.items() if name not in have]


@dataclass
class Explainer:
    """Explains exchanges; owns what has been said already (one per forwarder)."""

    conflicts_said: Once = field(default_factory=Once)  # upstream CORS values replaced
    cookies_said: Once = field(default_factory=Once)  # cookie problems
    long_notes_said: Once = field(default_factory=Once)  # (path, status) of the CORS note
    refused_cookies: RefusedCookies = field(default_factory=RefusedCookies)
    # The upstream error diagnosed last and how many times in a row (a page that polls
    # an endpoint with a syntax error gets it on every line): one string, not a table.
    last_error: tuple[str, int] = ("", 0)

    @staticmethod
    def quiet(
        allowed: bool,
        override: bool,
        status: int,
        upstream_cors: Sequence[object],
        cookies: Sequence[object],
        retried: bool,
    ) -> bool:
        """True when ``explain`` would say nothing about a forwarded exchange, asked
        before a ``Seen`` is built: most exchanges are this one (the hot path)."""
        return (
            allowed
            and override
            and status < 400
            and not upstream_cors
            and not cookies
            and not retried
        )

    def explain(self, seen: Seen) -> Explanation:
        """The browser's verdict, hints, diagnosis and notes for one exchange."""
        cross_origin = seen.origin is not None and seen.origin != seen.client_origin
        if self.quiet(
            seen.allowed,
            seen.override,
            seen.status,
            seen.upstream_cors,
            seen.cookies if cross_origin else (),
            seen.retried,
        ):
            return NOTHING
        verdict: BrowserVerdict | Literal[""] = ""
        console = fix = diagnosis = ""
        hints: list[str] = []
        notes: list[str] = []
        if seen.allowed and seen.override and seen.upstream_cors:
            conflict = self._conflict(seen)
            if conflict:
                notes.append(conflict)
        if cross_origin or seen.preflight:
            # With override our headers are right by construction (and tested in
            # Chromium): only refusals and the upstream's own headers need the oracle.
            if not seen.allowed or not seen.override:
                verdict, console, found, fix = _browser_view(seen)
                hints += found
            if seen.cookies and seen.allowed:
                hints += self._cookies(seen)
            if seen.status in (401, 403) and seen.allowed and seen.origin is not None:
                hints += self._cookie_follow_up(seen)
        if seen.retried:
            notes.append("served after waiting for the upstream to come back")
        if seen.body is not None:
            diagnosis, note = _upstream_error(seen)
            diagnosis = self._summarise(diagnosis)
            if note:
                if self.long_notes_said.first((seen.path, seen.status)):
                    notes.append(note)  # in full once per path and status
                else:
                    notes.append(f"without cors-proxy: a CORS error, not this {seen.status}")
        return Explanation(verdict, console, tuple(hints), fix, diagnosis, tuple(notes))

    def _summarise(self, diagnosis: str) -> str:
        """The diagnosis in full, or shortened when it repeats the one before it."""
        if not diagnosis:
            return ""
        last, times = self.last_error
        if diagnosis != last:
            self.last_error = (diagnosis, 1)
            return diagnosis
        self.last_error = (last, times + 1)
        return (
            f"again: {_headline(diagnosis)} ({_ordinal(times + 1)} time in a row; the first"
            " of these lines has the details)"
        )

    def _cookie_follow_up(self, seen: Seen) -> list[str]:
        """A 401/403 to a request without a cookie the browser refused earlier."""
        assert seen.origin is not None
        pair = (seen.origin, seen.client_origin)
        return [
            f"this {seen.status} may be that cookie's doing: the request carries no cookie"
            f" {name!r}, and the browser {refused.fate} when the answer to {refused.set_by}"
            f" set it ({refused.why})"
            for name, refused in self.refused_cookies.missing(pair, seen.sent_cookies)
        ]

    def _conflict(self, seen: Seen) -> str:
        ours = {name.lower(): value for name, value in seen.response_headers}
        changes = []
        for name, value in seen.upstream_cors:
            if not self.conflicts_said.first((name.lower(), value)):
                continue  # said once per distinct value
            mine = ours.get(name.lower())
            now = "removed" if mine is None else f"replaced with {_quoted(mine)}"
            changes.append(f"{name}: {_quoted(value)} {now}")
        if not changes:
            return ""
        return (
            f"upstream also sends its own CORS headers: {'; '.join(changes)} "
            "(upstream_cors: override; turn off the app's own CORS, e.g. flask-cors, "
            "or set upstream_cors: preserve)"
        )

    def _cookies(self, seen: Seen) -> list[str]:
        assert seen.origin is not None
        rule = seen.rule
        pair = (seen.origin, seen.client_origin)
        out = []
        for value in seen.cookies:
            c = diagnose_set_cookie(
                value,
                page_origin=seen.origin,
                proxy_origin=seen.client_origin,
                credentials_allowed=bool(rule and rule.allow_credentials),
                rule=rule.name if rule else None,
            )
            refused = None
            if not c.sent_back:
                fate = "did not store it" if not c.stored else "stores it but does not send it"
                why = c.problems[0].removeprefix(f"cookie {c.name}: ") if c.problems else ""
                refused = RefusedCookie(seen.path[:_SHOWN_PATH], fate, why[:_SHOWN_WHY])
            self.refused_cookies.remember(pair, c.name, refused)
            problem = _cookie_problem(c)
            if problem and self.cookies_said.first(problem):  # once per distinct problem
                out.append(problem)
        return out


def _browser_view(seen: Seen) -> tuple[BrowserVerdict, str, list[str], str]:
    """What Chromium decides, its console text, the hints and the fix for a block."""
    ex = Exchange(
        seen.url,
        seen.origin or "",
        seen.method,
        seen.unsafe_headers,
        not seen.preflight and credentials_mode(seen.request_headers),
        seen.preflight,
    )
    v = evaluate(ex, seen.status, seen.response_headers)
    if v.allowed:
        return "allowed", "", [], ""
    hints: list[str] = []
    if not seen.origin_allowed:  # else a near miss would deny what the rule accepts
        hints = near_misses(seen.origin or "", seen.rule.origins if seen.rule else ())
    if v.cause and not hints:
        hints = [v.cause]
    return "blocked", v.console, hints, seen.fix


def _upstream_error(seen: Seen) -> tuple[str, str]:
    """The upstream's real error (from its error page) and what the browser would have
    reported without the proxy."""
    assert seen.body is not None

    def header(name: str) -> str | None:
        return next((v for n, v in seen.upstream_headers if n.lower() == name), None)

    other = impostor(header("server"), seen.upstream_port)
    if other is not None:  # not the app at all: nothing else here is worth saying
        return other, ""
    diagnosis = ""
    found = diagnose_body(
        seen.status, header("content-type"), header("content-encoding"), seen.body
    )
    if found is not None:
        summary = found.summary
        if found.hint and found.kind == "werkzeug-generic":
            summary = summary.split(":", 1)[0]  # the stock description adds nothing
        diagnosis = summary + (f" ({found.hint})" if found.hint else "")
    upstream_acao = any(n.lower() == "access-control-allow-origin" for n, _ in seen.upstream_cors)
    note = ""
    if seen.allowed and not upstream_acao:
        note = (
            "without cors-proxy the browser would have reported a CORS error "
            "(the upstream sent no Access-Control-Allow-Origin) instead of this "
            f"{seen.status}"
        )
    return diagnosis, note


def _quoted(value: str) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 4] + "...'"


def credentials_mode(headers: Container[str]) -> bool:
    """A guess at fetch's credentials mode: cookies or auth were sent, so 'include'.
    ``headers``: a case-insensitive mapping of the request's fields."""
    return "Cookie" in headers or "Authorization" in headers


def cookie_problems(
    set_cookies: Sequence[str],
    *,
    page_origin: str,
    proxy_origin: str,
    credentials_allowed: bool,
    rule: str | None,
) -> list[str]:
    """One message per Set-Cookie the browser will drop or not send back, with the fixes
    (the log says each once; the inspector shows them on every exchange)."""
    verdicts = (
        diagnose_set_cookie(
            value,
            page_origin=page_origin,
            proxy_origin=proxy_origin,
            credentials_allowed=credentials_allowed,
            rule=rule,
        )
        for value in set_cookies
    )
    return [problem for c in verdicts if (problem := _cookie_problem(c))]


def _cookie_problem(c: CookieVerdict) -> str:
    """One message for a Set-Cookie the browser will drop or not send back, with the
    fixes; "" when the browser keeps and sends it."""
    if not c.problems:
        return ""
    fate = "not stored" if not c.stored else "stored but not sent back"
    prefix = f"cookie {c.name}: "
    detail = "; ".join(
        (p.removeprefix(prefix) + (f" (fix: {f})" if f else ""))
        for p, f in zip(c.problems, c.fixes, strict=False)
    )
    return f"cookie {c.name!r} {fate}: {detail}"


def _headline(diagnosis: str) -> str:
    """``NameError`` of ``NameError: name 'x' is not defined (app.py:3 in f)``."""
    return diagnosis.split(":", 1)[0].split(" (", 1)[0][:80]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
