"""What the browser will do with an exchange, and what to change (pure).

Glue between the policy's decisions and the browser oracle (``verdict``), the near-miss
hints (``hints``) and the cookie doctor (``cookies``): the forwarder hands in what it
saw on both sides, this module returns the words for the log line.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from proxy.diagnosis.cookies import diagnose_set_cookie
from proxy.diagnosis.near_miss import near_misses
from proxy.diagnosis.oracle import Exchange, evaluate
from proxy.policy.fetch import SAFELISTED_METHODS


@dataclass(frozen=True)
class Advice:
    verdict: str  # "allowed" | "blocked"
    console: str  # Chromium's console text for a blocked exchange
    hints: tuple[str, ...]  # near misses and causes
    fix: str  # the YAML change, when the proxy's rules are the cause


def credentials_mode(headers: Container[str]) -> bool:
    """A guess at fetch's credentials mode: cookies or auth were sent, so 'include'.
    ``headers``: a case-insensitive mapping of the request's fields."""
    return "Cookie" in headers or "Authorization" in headers


def advise(
    *,
    url: str,
    origin: str,
    method: str,
    unsafe_header_names: tuple[str, ...],
    credentials: bool,
    preflight: bool,
    status: int,
    response_headers: Sequence[tuple[str, str]],
    configured_origins: Sequence[str],
    fix: str = "",
) -> Advice:
    """Evaluate the response as Chromium would; explain a block."""
    ex = Exchange(url, origin, method, unsafe_header_names, credentials, preflight)
    v = evaluate(ex, status, response_headers)
    if v.allowed:
        return Advice("allowed", "", (), "")
    hints = tuple(near_misses(origin, configured_origins))
    if v.cause and not hints:
        hints = (v.cause,)
    return Advice("blocked", v.console, hints, fix)


def preflight_needed(method: str, unsafe_header_names: Sequence[str]) -> bool:
    return method not in SAFELISTED_METHODS or bool(unsafe_header_names)


def cookie_problems(
    set_cookies: Sequence[str],
    *,
    page_origin: str,
    proxy_origin: str,
    credentials_allowed: bool,
    rule: str | None,
) -> list[str]:
    """One message per Set-Cookie the browser will drop or not send back, with the fix."""
    out = []
    for value in set_cookies:
        c = diagnose_set_cookie(
            value,
            page_origin=page_origin,
            proxy_origin=proxy_origin,
            credentials_allowed=credentials_allowed,
            rule=rule,
        )
        if not c.problems:
            continue
        fate = "not stored" if not c.stored else "stored but not sent back"
        prefix = f"cookie {c.name}: "
        detail = "; ".join(
            (p.removeprefix(prefix) + (f" (fix: {f})" if f else ""))
            for p, f in zip(c.problems, c.fixes, strict=False)
        )
        out.append(f"cookie {c.name!r} {fate}: {detail}")
    return out
