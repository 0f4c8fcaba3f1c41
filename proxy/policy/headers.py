"""Header plans for both directions of a forwarded exchange (pure).

Headers travel as ``list[tuple[str, str]]`` so repeated fields (``Set-Cookie``, ``Vary``)
survive in order and unchanged. Hop-by-hop rules: RFC 9110 §7.6.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from proxy.policy.cors import ActualDecision, expose_all_value
from proxy.policy.origins import Origin

HeaderList = list[tuple[str, str]]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _connection_tokens(headers: Sequence[tuple[str, str]], lows: list[str]) -> set[str]:
    """Field names listed in ``Connection`` (hop-by-hop too); ``lows``: the names
    lower-cased once, shared by every pass over one header list."""
    tokens: set[str] = set()
    if "connection" in lows:
        for low, (_, value) in zip(lows, headers, strict=True):
            if low == "connection":
                for token in value.lower().split(","):
                    tokens.add(token.strip())
        tokens.discard("")
    return tokens


# What each pass does with a field, by lower-cased name; a name not listed is copied.
# One dict lookup per field instead of a chain of comparisons (the hot path).
_DROP, _HOST, _FORWARDED, _VARY, _COOKIE, _LOCATION = range(6)
_REQUEST_KINDS: Final = {
    **dict.fromkeys(HOP_BY_HOP, _DROP),
    "expect": _DROP,  # the proxy answers 100-continue itself
    "host": _HOST,
    **dict.fromkeys(("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"), _FORWARDED),
}
_RESPONSE_KINDS: Final = {
    **dict.fromkeys(HOP_BY_HOP, _DROP),
    "vary": _VARY,
    "set-cookie": _COOKIE,
    "location": _LOCATION,
    "content-location": _LOCATION,
}


def upstream_request_headers(
    headers: Sequence[tuple[str, str]],
    *,
    client_ip: str,
    scheme: str,
    upstream_authority: str | None,
) -> HeaderList:
    """Headers to send upstream (a new list: the caller's to change).

    Drops hop-by-hop fields and those named in ``Connection``, and ``Expect`` (the proxy
    answers 100-continue itself). Appends to ``X-Forwarded-For``/``-Proto``/``-Host`` the
    way a chain of proxies does, so Werkzeug's ProxyFix(x_for=1, x_proto=1, x_host=1)
    reads this hop's values. ``upstream_authority`` set means ``host_header: upstream``.
    """
    lows = [name.lower() for name, _ in headers]
    named = _connection_tokens(headers, lows)
    kinds = _REQUEST_KINDS
    out: HeaderList = []
    forwarded: dict[str, str] = {}
    host = ""
    for low, field in zip(lows, headers, strict=True):
        kind = kinds.get(low)
        if kind == _DROP or (named and low in named):
            continue
        if kind is None:
            if not low.startswith("proxy-"):
                out.append(field)
        elif kind == _HOST:
            host = field[1]
            if upstream_authority is None:
                out.append(field)
        else:
            forwarded[low] = f"{forwarded[low]}, {field[1]}" if low in forwarded else field[1]
    if upstream_authority is not None:
        out.append(("Host", upstream_authority))
    for low, label, value in (
        ("x-forwarded-for", "X-Forwarded-For", client_ip),
        ("x-forwarded-proto", "X-Forwarded-Proto", scheme),
        ("x-forwarded-host", "X-Forwarded-Host", host),
    ):
        if not value:
            continue
        prior = forwarded.get(low)
        out.append((label, f"{prior}, {value}" if prior else value))
    return out


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    headers: HeaderList  # what goes to the client before CORS headers are added
    names: list[str]  # the names in ``headers``, lower-cased (for the passes that follow)
    upstream_cors: HeaderList  # the upstream's own Access-Control-* fields, as received
    vary: list[str]  # tokens of every upstream Vary line
    cookies: list[str]  # the values of the Set-Cookie lines, in order
    locations: bool  # a Location or Content-Location is among ``headers``


def downstream_response_headers(
    headers: Sequence[tuple[str, str]], *, strip_cors: bool
) -> ResponsePlan:
    """Filter upstream response headers; Vary is pulled out to be merged later."""
    lows = [name.lower() for name, _ in headers]
    named = _connection_tokens(headers, lows)
    kinds = _RESPONSE_KINDS
    out: HeaderList = []
    names: list[str] = []
    cors: HeaderList = []
    vary: list[str] = []
    cookies: list[str] = []
    locations = False
    for low, field in zip(lows, headers, strict=True):
        kind = kinds.get(low)
        if kind == _DROP or (named and low in named):
            continue
        if kind is None:
            if low.startswith("proxy-"):
                continue
            if low.startswith("access-control-"):
                cors.append(field)
                if strip_cors:
                    continue
        elif kind == _VARY:
            vary.extend(t.strip() for t in field[1].split(",") if t.strip())
            continue
        elif kind == _COOKIE:
            cookies.append(field[1])
        else:
            locations = True
        out.append(field)
        names.append(low)
    return ResponsePlan(out, names, cors, vary, cookies, locations)


class ResponseHead(NamedTuple):
    """The fields that go to the client for one upstream head and CORS decision."""

    fields: tuple[tuple[str, str], ...]  # the upstream's, filtered, then CORS, then Vary
    cookies: tuple[str, ...]  # the upstream's Set-Cookie values, in order
    upstream_cors: tuple[tuple[str, str], ...]  # its own Access-Control-* fields
    size: int  # characters in the fields (kept heads are small; the inspector asks)


def response_head(
    headers: Sequence[tuple[str, str]],
    decision: ActualDecision,
    *,
    override: bool,
    upstream_origins: frozenset[str],
    client_origin: str,
) -> ResponseHead:
    """The response head's fields: hop-by-hop dropped, an absolute ``Location`` at the
    upstream pointed back at ``client_origin``, the decision's CORS headers added unless
    the upstream sent its own and ``override`` is off, and one merged ``Vary``."""
    plan = downstream_response_headers(headers, strip_cors=override)
    out = plan.headers
    if plan.locations:
        for i, (name, value) in enumerate(out):
            if plan.names[i] in ("location", "content-location"):
                out[i] = (name, rewrite_location(value, upstream_origins, client_origin))
    if decision.allowed and (override or not plan.upstream_cors):
        exposed = expose_all_value([n for n, _ in out]) if decision.expose_all else None
        out.extend(decision.headers)
        if exposed:
            out.append(("Access-Control-Expose-Headers", exposed))
    vary = merge_vary(plan.vary, "Origin" if decision.vary else None)
    if vary:
        out.append(("Vary", vary))
    size = sum(len(name) + len(value) for name, value in out)
    return ResponseHead(tuple(out), tuple(plan.cookies), tuple(plan.upstream_cors), size)


def merge_vary(tokens: Sequence[str], add: str | None) -> str | None:
    """One ``Vary`` value: upstream tokens in order, ``add`` appended once; ``*`` wins."""
    if not tokens:
        return add  # the common case: no Vary from the upstream
    seen: dict[str, str] = {}
    for t in (*tokens, *([add] if add else [])):
        seen.setdefault(t.lower(), t)
    if not seen:
        return None
    if "*" in seen:
        return "*"
    return ", ".join(seen.values())


def rewrite_location(location: str, upstream_origins: Iterable[str], client_origin: str) -> str:
    """Point an absolute Location at the upstream back at the address the client used.

    Without this a browser following Flask's ``redirect(url_for(..., _external=True))``
    leaves the proxy's origin, gets ``Origin: null`` and no CORS headers (docs/cors-notes.md §7).
    """
    if "://" not in location and not location.startswith("//"):
        return location  # relative: resolved against the proxy's URL already
    parts = Origin.parse(location if "://" in location else "http:" + location)
    if parts is None or not parts.port_in_range or parts.serialized not in upstream_origins:
        return location
    tail = location[location.index("//") + 2 :]
    slash = tail.find("/")
    path = tail[slash:] if slash >= 0 else ""
    q = tail.find("?")
    if slash < 0 and q >= 0:
        path = tail[q:]
    return client_origin + path
