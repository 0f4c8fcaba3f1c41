"""The CORS policy: rules compiled once per config, decisions per request (pure).

What is fixed per rule (header tuples, compiled matchers) is built in ``CorsPolicy``'s
constructor, as Starlette's CORSMiddleware does; per request only the origin-dependent
part is computed. Nothing here keeps state between calls (the proxy caches decisions per
config generation, in proxy/generation.py): every decision returns fresh tuples.

Spec references: Fetch "CORS protocol" (https://fetch.spec.whatwg.org/#http-cors-protocol)
and docs/cors-notes.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from proxy.policy.fetch import (
    FORBIDDEN_RESPONSE_HEADERS,
    SAFELISTED_REQUEST_HEADERS,
    SAFELISTED_RESPONSE_HEADERS,
    is_token,
)
from proxy.policy.origins import compile_glob, is_glob, is_serialized_origin

Headers = tuple[tuple[str, str], ...]

PROXY_ERROR_HEADER: Final = "X-Cors-Proxy-Error"


@dataclass(frozen=True)
class CorsRule:
    """One rule from the config, already validated and normalized."""

    name: str
    paths: tuple[str, ...] = ()  # globs on the decoded path; () = every path
    origins: tuple[str, ...] = ()  # exact, "*", "null" or one-label globs
    origin_regex: str | None = None  # full match
    allow_methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: tuple[str, ...] = ()  # lower-case; ("*",) = mirror the request
    expose_headers: tuple[str, ...] = ()  # ("*",) = every non-safelisted response header
    allow_credentials: bool = False
    max_age: int | None = None
    allow_private_network: bool = False
    report_only: bool = False  # not enforced: answered loosely, what it would block logged


@dataclass(frozen=True)
class PreflightDecision:
    """The proxy's answer to a preflight.

    Three kinds: allowed (204 with the rule's headers); refused for a method or request
    header the rule does not allow although it accepts the origin (204 naming the origin
    with the rule's own lists and Max-Age 0, so the browser's console names the method
    or header: docs/cors-notes.md §4); refused otherwise (403, no Access-Control-*)."""

    allowed: bool
    status: int  # 204, or 403
    headers: Headers
    reason: str  # "" when allowed; the 403 body, X-Cors-Proxy-Error and the log's words
    rule: str | None  # the rule that decided, or the first whose paths match
    fix: str = ""  # which YAML key to change, with the value
    origin_allowed: bool = False  # the named rule accepts the origin
    matched: CorsRule | None = field(default=None, compare=False)  # the rule named


@dataclass(frozen=True)
class ActualDecision:
    """CORS headers for a forwarded (non-preflight) response."""

    allowed: bool
    headers: Headers  # Access-Control-* to add; empty when not allowed
    rule: str | None  # the rule that decided, or the first whose paths match
    reason: str  # why not allowed, for the log
    vary: bool  # whether the response must carry Vary: Origin
    expose_all: bool = False  # expose every non-safelisted response header name
    fix: str = ""  # for a refused origin: the YAML change that would allow it
    # The rule named (kept out of equality and hashing: decisions are cache keys).
    matched: CorsRule | None = field(default=None, compare=False)


def path_glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters, ``/`` included; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


@dataclass
class _Compiled:
    rule: CorsRule
    index: int
    paths: re.Pattern[str] | None
    exact: frozenset[str]
    any_origin: bool
    null: bool
    globs: tuple[re.Pattern[str], ...]
    regex: re.Pattern[str] | None
    any_method: bool
    methods: frozenset[str]
    any_header: bool
    header_names: frozenset[str]
    # Ready-made header values, built once.
    acam: str
    acah: str
    expose_all: bool
    aceh: str
    aceh_error: str
    max_age: str | None


def _compile(index: int, rule: CorsRule) -> _Compiled:
    paths = (
        re.compile("|".join(f"(?:{path_glob(p).pattern})" for p in rule.paths))
        if rule.paths
        else None
    )
    expose = tuple(h for h in rule.expose_headers if h != "*")
    allow_headers = tuple(h for h in rule.allow_headers if h != "*")
    # Safelisted names go into ACAH explicitly: with credentials, "*" would be literal.
    acah_names = list(allow_headers)
    acah_names += sorted(SAFELISTED_REQUEST_HEADERS - {h.lower() for h in allow_headers})
    return _Compiled(
        rule=rule,
        index=index,
        paths=paths,
        exact=frozenset(o for o in rule.origins if o not in ("*", "null") and not is_glob(o)),
        any_origin="*" in rule.origins,
        null="null" in rule.origins,
        globs=tuple(compile_glob(o) for o in rule.origins if is_glob(o)),
        regex=re.compile(rule.origin_regex) if rule.origin_regex else None,
        any_method="*" in rule.allow_methods,
        methods=frozenset(rule.allow_methods),
        any_header="*" in rule.allow_headers,
        header_names=frozenset(h.lower() for h in allow_headers) | SAFELISTED_REQUEST_HEADERS,
        acam=", ".join(m for m in rule.allow_methods if m != "*"),
        acah=", ".join(acah_names),
        expose_all="*" in rule.expose_headers,
        aceh=", ".join(expose),
        aceh_error=", ".join(
            (*expose, PROXY_ERROR_HEADER)
            if PROXY_ERROR_HEADER.lower() not in {e.lower() for e in expose}
            else expose
        ),
        max_age=str(rule.max_age) if rule.max_age is not None else None,
    )


class CorsPolicy:
    """All rules of one config generation. Build once; query per request."""

    def __init__(self, rules: Sequence[CorsRule]) -> None:
        self.rules = tuple(rules)
        self._compiled = tuple(_compile(i, r) for i, r in enumerate(self.rules))

    def __repr__(self) -> str:
        return f"CorsPolicy({[r.name for r in self.rules]!r})"

    # -- matching -------------------------------------------------------------------

    def _select(self, raw_path: str, origin: str | None) -> tuple[_Compiled | None, bool]:
        """The first rule whose paths match and whose origins accept ``origin``, and
        True; else the first rule whose paths match (None when none does), and False."""
        first = None
        path = None
        for c in self._compiled:
            if c.paths is not None:
                if path is None:
                    path = unquote(raw_path.partition("?")[0], errors="surrogateescape")
                if c.paths.fullmatch(path) is None:
                    continue
            if origin is not None and self._origin_allowed(c, origin):
                return c, True
            if first is None:
                first = c
                if origin is None:
                    break
        return first, False

    def rule_for(self, raw_path: str, origin: str | None = None) -> CorsRule | None:
        """The rule that decides for ``origin`` on ``raw_path`` (the first rule whose paths
        match and whose origins accept it), else the first rule whose paths match."""
        c, _ = self._select(raw_path, origin)
        return c.rule if c else None

    @staticmethod
    def _origin_allowed(c: _Compiled, origin: str) -> bool:
        if origin == "null":
            return c.null  # never through "*", globs or regexes (docs/cors-notes.md §2)
        if origin in c.exact:
            return True
        if not is_serialized_origin(origin):
            return False  # only ever reflect what a browser could have sent
        return (
            c.any_origin
            or any(g.fullmatch(origin) for g in c.globs)
            or (c.regex is not None and c.regex.fullmatch(origin) is not None)
        )

    def origin_allowed(self, raw_path: str, origin: str) -> bool:
        """Whether a rule whose paths match ``raw_path`` accepts ``origin``."""
        return self._select(raw_path, origin)[1]

    @staticmethod
    def _acao(c: _Compiled, origin: str) -> str:
        # "*" only where it means "any origin" to the browser: without credentials.
        if c.any_origin and not c.rule.allow_credentials and origin != "null":
            return "*"
        return origin

    # -- preflight ------------------------------------------------------------------

    def preflight(
        self,
        *,
        path: str,
        origin: str,
        request_method: str,
        request_headers: str | None,
        private_network: bool = False,
    ) -> PreflightDecision:
        """Answer an OPTIONS request carrying Origin and Access-Control-Request-Method."""
        method = request_method
        c, accepted = self._select(path, origin)
        vary = (("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),)
        if c is None:
            return _deny(
                vary,
                None,
                f"no rule matches the path {_show(path)}",
                f"add a rule whose paths cover {_show(path.partition('?')[0])}",
            )
        name = c.rule.name
        at = f"rules[{c.index}]"
        if not accepted:
            return _deny(
                vary,
                name,
                f"origin {_show(origin)} is not allowed by rule {name!r}",
                _origin_fix(at, origin),
                c.rule,
            )
        if not is_token(method):
            return _deny(
                vary,
                name,
                f"Access-Control-Request-Method {_show(method)} is not a method",
                "",
                c.rule,
                origin_allowed=True,
            )
        if not c.any_method and method not in c.methods:
            return self._refuse(
                c,
                origin,
                vary,
                f"method {method} is not in allow_methods of rule {name!r} "
                f"(methods are case-sensitive; allowed: {c.acam})",
                f"add {method} to {at}.allow_methods",
            )
        names = _parse_list(request_headers or "")
        if names is None:
            return _deny(
                vary,
                name,
                f"Access-Control-Request-Headers {_show(request_headers)} is malformed",
                "",
                c.rule,
                origin_allowed=True,
            )
        if not c.any_header:
            refused = [n for n in names if n not in c.header_names]
            if refused:
                return self._refuse(
                    c,
                    origin,
                    vary,
                    f"request header(s) {', '.join(refused)} not in allow_headers of rule {name!r}",
                    f"add {', '.join(refused)} to {at}.allow_headers",
                )
        if private_network and not c.rule.allow_private_network:
            return _deny(
                vary,
                name,
                f"private network access requested; rule {name!r} has allow_private_network: false",
                f"set {at}.allow_private_network: true",
                c.rule,
                origin_allowed=True,
            )
        headers = self._origin_headers(c, origin)
        # A wildcard is mirrored, never sent as "*": with credentials "*" is a literal
        # name, and "*" never covers Authorization (Fetch: CORS non-wildcard header).
        acam = method if c.any_method else c.acam
        if acam:
            headers.append(("Access-Control-Allow-Methods", acam))
        acah = ", ".join(names) if c.any_header else c.acah
        if acah:
            headers.append(("Access-Control-Allow-Headers", acah))
        if c.max_age is not None:
            headers.append(("Access-Control-Max-Age", c.max_age))
        if private_network:
            headers.append(("Access-Control-Allow-Private-Network", "true"))
        headers.extend(vary)
        return PreflightDecision(True, 204, tuple(headers), "", name, "", True, c.rule)

    def _origin_headers(self, c: _Compiled, origin: str) -> list[tuple[str, str]]:
        headers = [("Access-Control-Allow-Origin", self._acao(c, origin))]
        if c.rule.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def _refuse(
        self, c: _Compiled, origin: str, vary: Headers, reason: str, fix: str
    ) -> PreflightDecision:
        """A method or request header the rule does not allow, from an origin it accepts:
        204 naming the origin, with the rule's own lists (never the refused item, never
        "*") and Max-Age 0, so the browser blocks and its console names the method or
        header, not the origin (docs/cors-notes.md §4). The reason goes in
        X-Cors-Proxy-Error, which DevTools shows on the preflight."""
        headers = self._origin_headers(c, origin)
        if c.acam:
            headers.append(("Access-Control-Allow-Methods", c.acam))
        headers.append(("Access-Control-Allow-Headers", c.acah))
        headers.append(("Access-Control-Max-Age", "0"))
        headers.append((PROXY_ERROR_HEADER, reason))
        headers.extend(vary)
        return PreflightDecision(False, 204, tuple(headers), reason, c.rule.name, fix, True, c.rule)

    # -- actual requests ------------------------------------------------------------

    def actual(self, *, path: str, origin: str | None, error: bool = False) -> ActualDecision:
        """CORS headers for a forwarded response (``error``: the proxy's own 502/504)."""
        c, accepted = self._select(path, origin)
        if c is None:
            return ActualDecision(False, (), None, "no rule matches this path", vary=False)
        name = c.rule.name
        if origin is None:
            return ActualDecision(False, (), name, "no Origin header", vary=True, matched=c.rule)
        if not accepted:
            return ActualDecision(
                False,
                (),
                name,
                f"origin {_show(origin)} is not allowed by rule {name!r}",
                True,
                fix=_origin_fix(f"rules[{c.index}]", origin),
                matched=c.rule,
            )
        headers = self._origin_headers(c, origin)
        aceh = c.aceh_error if error else c.aceh
        if aceh and not c.expose_all:
            headers.append(("Access-Control-Expose-Headers", aceh))
        return ActualDecision(
            True, tuple(headers), name, "", True, expose_all=c.expose_all, matched=c.rule
        )


def expose_all_value(response_names: Sequence[str]) -> str:
    """ACEH for ``expose_headers: ["*"]``: the response's own header names, spelled out.

    A literal "*" would only work without credentials; naming them works in both modes.
    """
    seen: dict[str, str] = {}
    for n in response_names:
        low = n.lower()
        if (
            low not in SAFELISTED_RESPONSE_HEADERS
            and low not in FORBIDDEN_RESPONSE_HEADERS
            and not low.startswith("access-control-")
        ):
            seen.setdefault(low, n)
    return ", ".join(seen.values())


def _parse_list(value: str) -> tuple[str, ...] | None:
    """Parse Access-Control-Request-Headers: lower-case tokens; empty items skipped."""
    names = []
    for item in value.split(","):
        item = item.strip(" \t")
        if not item:
            continue
        if not is_token(item):
            return None
        low = item.lower()
        if low not in names:
            names.append(low)
    return tuple(names)


def _deny(
    vary: Headers,
    rule: str | None,
    reason: str,
    fix: str = "",
    matched: CorsRule | None = None,
    *,
    origin_allowed: bool = False,
) -> PreflightDecision:
    return PreflightDecision(False, 403, vary, reason, rule, fix, origin_allowed, matched)


def _origin_fix(at: str, origin: str) -> str:
    if origin == "null":
        return (
            f'add "null" to {at}.origins (only without allow_credentials; any page can send null)'
        )
    if not is_serialized_origin(origin):
        return "none: browsers never send this Origin (it is not a serialized http(s) origin)"
    return f'add "{origin}" to {at}.origins'


def _show(value: str | None) -> str:
    """Quote a request-supplied value for messages, escaping control characters."""
    text = repr(value if value is not None else "")
    return text if len(text) <= 200 else text[:197] + "...'"
