"""The differential matrix: the same requests to cors-proxy and to an export's engine,
judged by the browser oracle (what Chromium would let the page see)."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxy.diagnosis.oracle import Exchange, evaluate, exposed_headers, header_value

# Response fields of the upstream app that scripts may or may not be allowed to read.
PROBED_HEADERS = frozenset({"x-request-id", "x-secret"})
REFUSED_KINDS = frozenset({"refused-method", "refused-header", "lowercase-method"})


@dataclass(frozen=True)
class Case:
    kind: str  # simple | credentials | no-origin | preflight | refused-method | ...
    path: str
    origin: str | None
    method: str = "GET"  # the actual method; for a preflight, Access-Control-Request-Method
    request_headers: tuple[str, ...] = ()  # unsafe names (a preflight's ACRH)
    credentials: bool = False

    @property
    def preflight(self) -> bool:
        return self.kind in ("preflight", *REFUSED_KINDS)

    def __str__(self) -> str:
        extra = f" {','.join(self.request_headers)}" if self.request_headers else ""
        return f"{self.kind} {self.method}{extra} {self.path} origin={self.origin}"


@dataclass(frozen=True)
class Seen:
    status: int
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str
    exposed: frozenset[str]
    vary_origin: bool

    def __str__(self) -> str:
        what = "allowed" if self.allowed else f"blocked ({self.code})"
        return f"{what}, exposed {sorted(self.exposed)}, vary-origin {self.vary_origin}"


def send(base: str, case: Case) -> Seen:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers: dict[str, str] = {}
    if case.origin is not None:
        headers["Origin"] = case.origin
    if case.preflight:
        headers["Access-Control-Request-Method"] = case.method
        if case.request_headers:
            headers["Access-Control-Request-Headers"] = ",".join(case.request_headers)
        method = "OPTIONS"
    else:
        method = case.method
        for name in case.request_headers:
            headers[name] = "1"
        if case.credentials:
            headers["Cookie"] = "session=1"
    try:
        conn.request(method, case.path, headers=headers)
        response = conn.getresponse()
        response.read()
        return Seen(response.status, tuple(response.getheaders()))
    finally:
        conn.close()


def verdict(base: str, case: Case, seen: Seen) -> Verdict:
    vary = header_value(seen.headers, "Vary") or ""
    vary_origin = "origin" in {t.strip().lower() for t in vary.split(",")}
    if case.origin is None:
        return Verdict(True, "", frozenset(), vary_origin)
    ex = Exchange(
        url=base + case.path,
        origin=case.origin,
        method=case.method,
        unsafe_header_names=tuple(h.lower() for h in case.request_headers),
        credentials=case.credentials,
        preflight=case.preflight,
    )
    v = evaluate(ex, seen.status, seen.headers)
    exposed: frozenset[str] = frozenset()
    if v.allowed and not case.preflight:
        exposed = exposed_headers(seen.headers, case.credentials) & PROBED_HEADERS
    return Verdict(v.allowed, v.code, exposed, vary_origin)


def differences(
    case: Case, proxy: Verdict, target: Verdict, origin_ok: bool, refused_400: bool = False
) -> list[str]:
    """Where the target's verdict differs from the proxy's ([] when the same).

    ``origin_ok``: a rule accepts the case's origin on its path. ``refused_400``: the
    target declared that it answers a preflight refused for its method or headers alone
    with 400 (Starlette): it blocks too, with another console message, so for those only
    the verdict itself is compared."""
    out = []
    refused_alone = refused_400 and case.preflight and origin_ok and not proxy.allowed
    if proxy.allowed != target.allowed:
        out.append(f"allowed {proxy.allowed} -> {target.allowed}")
    elif not refused_alone and proxy.code != target.code:
        out.append(f"code {proxy.code} -> {target.code}")
    if proxy.exposed != target.exposed:
        out.append(f"exposed {sorted(proxy.exposed)} -> {sorted(target.exposed)}")
    if proxy.vary_origin and not target.vary_origin:
        out.append("Vary: Origin missing")
    return out


def looser(proxy: Verdict, target: Verdict) -> bool:
    """The target lets the page do or read more than the proxy."""
    return (target.allowed and not proxy.allowed) or not target.exposed <= proxy.exposed


def build(
    allowed: dict[str, list[str]],
    refused: list[str],
    *,
    errors: list[str],
    good_method: str,
    good_headers: tuple[str, ...],
) -> list[Case]:
    """``allowed``: path -> origins to try there (allowed or not: the proxy decides)."""
    cases: list[Case] = []
    for path, origins in allowed.items():
        for origin in [*origins, *refused]:
            cases += [
                Case("simple", path, origin),
                Case("credentials", path, origin, credentials=True),
                Case("preflight", path, origin, good_method, good_headers),
                Case("refused-method", path, origin, "PROPFIND"),
                Case("refused-header", path, origin, good_method, ("x-not-allowed",)),
            ]
        cases += [Case("no-origin", path, None)]
        first = origins[0]
        cases += [
            Case("lowercase-method", path, first, good_method.lower()),
            Case("preflight", path, first, "GET", ("authorization",)),
            Case("credentials", path, first, "GET", ("authorization",), credentials=True),
        ]
    for path in errors:
        for origin in [*next(iter(allowed.values()))[:1], *refused[:1]]:
            cases += [
                Case("simple", path, origin),
                Case("credentials", path, origin, credentials=True),
            ]
    return cases


def upgrade(base: str, origin: str | None, path: str = "/api/hello") -> int:
    """The status of a WebSocket upgrade request (the upstream speaks no WebSocket: only
    whether the server refuses it with 403 matters)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status
    finally:
        conn.close()
