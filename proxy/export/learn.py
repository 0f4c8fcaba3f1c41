"""Learning mode's model: the traffic a frontend really sends, and the minimal rules
that allow exactly that (pure).

``Learner.observe`` takes one allowed cross-origin exchange at a time (the wiring calls
it while ``cors-proxy learn`` runs permissively); ``Learner.yaml`` writes the rules:

- origins listed exactly, never ``*``; ``null`` and origins no browser sends are left
  out (with a comment): allowing them would be close to allowing every site;
- paths grouped by their first segment: two or more paths under ``/api/`` become one
  glob on their longest common directory (``/api/v1/*``), a lone path stays exact;
- per rule (one per group) the methods and the request headers that were used (a
  preflight's ``Access-Control-Request-Method`` and ``-Headers``, the actual methods),
  the response headers scripts may read (as far as the proxy can tell: the custom ones
  on the responses), and ``allow_credentials: true`` only where a credentialed request
  was seen (``Cookie`` or ``Authorization`` sent, or a cookie set in the answer).

Memory is bounded in bytes: at most ``MAX_PATHS`` distinct paths and ``MAX_ORIGINS``
origins are kept, each name at most ``MAX_NAME`` characters, and everything kept (paths,
origins, methods, header names, with their table slots) costs at most
``MAX_LEARNED_BYTES`` by a conservative estimate (``_cost``: 4 bytes a character for a
name that is not ASCII, 128 bytes of overhead a name, 1 KiB a path's tables): the
clients choose all of them. What is left out is counted and said.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from proxy.policy.cors import CorsRule
from proxy.policy.fetch import SAFELISTED_REQUEST_HEADERS, SAFELISTED_RESPONSE_HEADERS, is_token
from proxy.policy.origins import is_serialized_origin

MAX_PATHS: Final = 10_000
MAX_ORIGINS: Final = 1_000
MAX_NAME: Final = 2_048  # characters of a path or origin kept
MAX_HEADERS: Final = 256  # distinct header names per path (requested, or on responses)
MAX_LEARNED_BYTES: Final = 16 * 1024 * 1024  # everything kept, as _cost estimates it
_NAME_OVERHEAD: Final = 128  # bytes: a str's header and its slot in a set or dict
_USE_OVERHEAD: Final = 1024  # bytes: a path's _Use and its empty tables
_OVER_BUDGET: Final = f"names past the learner's {MAX_LEARNED_BYTES >> 20} MiB memory bound"
LEARNED_MAX_AGE: Final = 600
# The one rule learning mode runs with: every origin (reflected, never "*"), with
# credentials, any method and header, every response header exposed, and Max-Age 0 so
# that each preflight reaches the proxy and is recorded.
LEARNING_RULE: Final = CorsRule(
    name="learning",
    origins=("*",),
    allow_methods=("*",),
    allow_headers=("*",),
    expose_headers=("*",),
    allow_credentials=True,
    max_age=0,
    allow_private_network=True,
)

# Response fields that are about the transport, the cache or the browser, not data a
# script reads: never proposed for expose_headers.
NOT_READ_BY_SCRIPTS: Final = frozenset(
    {
        "accept-ranges",
        "age",
        "alt-svc",
        "connection",
        "content-encoding",
        "content-security-policy",
        "content-security-policy-report-only",
        "cross-origin-embedder-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
        "date",
        "keep-alive",
        "nel",
        "permissions-policy",
        "referrer-policy",
        "report-to",
        "reporting-endpoints",
        "server",
        "set-cookie",
        "set-cookie2",
        "strict-transport-security",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
        "via",
        "x-content-type-options",
        "x-cors-proxy-error",
        "x-frame-options",
        "x-xss-protection",
    }
)


@dataclass(frozen=True)
class Observation:
    """One allowed cross-origin exchange, as the proxy saw it."""

    origin: str
    path: str  # percent-decoded, without the query (what rules match)
    method: str  # the request's method, or a preflight's Access-Control-Request-Method
    request_headers: tuple[str, ...] = ()  # a preflight's Access-Control-Request-Headers
    response_headers: tuple[str, ...] = ()  # the names on the upstream's answer
    credentials: bool = False
    private_network: bool = False


@dataclass
class _Use:
    origins: set[str] = field(default_factory=set)
    methods: set[str] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)
    expose: dict[str, str] = field(default_factory=dict)  # lower-case -> as first seen
    credentials: bool = False
    private_network: bool = False

    def merge(self, other: _Use) -> None:
        self.origins |= other.origins
        self.methods |= other.methods
        self.headers |= other.headers
        for low, name in other.expose.items():
            self.expose.setdefault(low, name)
        self.credentials |= other.credentials
        self.private_network |= other.private_network


@dataclass(frozen=True)
class LearnedRule:
    name: str
    paths: tuple[str, ...]
    origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    allow_credentials: bool
    allow_private_network: bool


def _cost(name: str) -> int:
    """What keeping ``name`` costs at most, in bytes (CPython stores a str in 1, 2 or 4
    bytes a character, after a header of under 100 bytes)."""
    return _NAME_OVERHEAD + (len(name) if name.isascii() else 4 * len(name))


class Learner:
    def __init__(self) -> None:
        self.paths: dict[str, _Use] = {}
        self.origins: set[str] = set()
        self.seen = 0
        self.left_out: dict[str, int] = {}  # why -> how many exchanges
        self.kept = 0  # bytes kept, as _cost estimates them (at most MAX_LEARNED_BYTES)

    def _skip(self, why: str) -> None:
        self.left_out[why] = self.left_out.get(why, 0) + 1

    def _add(self, table: set[str], name: str, cost: int) -> bool:
        """Put ``name`` in ``table`` if it is there or ``cost`` fits; False: it did not."""
        if name not in table:
            if not self._room(cost):
                return False
            table.add(name)
        return True

    def _room(self, cost: int) -> bool:
        """Whether ``cost`` more bytes fit under ``MAX_LEARNED_BYTES`` (then counted)."""
        if self.kept + cost > MAX_LEARNED_BYTES:
            return False
        self.kept += cost
        return True

    def observe(self, obs: Observation) -> None:
        self.seen += 1
        if obs.origin == "null":
            return self._skip("Origin: null (sandboxed iframes, file:// pages)")
        if not is_serialized_origin(obs.origin) or len(obs.origin) > MAX_NAME:
            return self._skip("an Origin no browser sends")
        if not obs.path.startswith("/") or len(obs.path) > MAX_NAME or "*" in obs.path:
            return self._skip("a path that cannot be written as a rule's path")
        try:
            obs.path.encode("utf-8")
        except UnicodeEncodeError:
            return self._skip("a path that is not UTF-8 once decoded")
        if not is_token(obs.method):
            return self._skip("a method that is not an HTTP token")
        if len(obs.method) > MAX_NAME:
            return self._skip("a method longer than any a browser sends")
        if obs.origin not in self.origins:
            if len(self.origins) >= MAX_ORIGINS:
                return self._skip(f"more than {MAX_ORIGINS} origins")
            if not self._room(_cost(obs.origin)):
                return self._skip(_OVER_BUDGET)
            self.origins.add(obs.origin)
        use = self.paths.get(obs.path)
        if use is None:
            if len(self.paths) >= MAX_PATHS:
                return self._skip(f"more than {MAX_PATHS} paths")
            if not self._room(_cost(obs.path) + _USE_OVERHEAD):
                return self._skip(_OVER_BUDGET)
            use = self.paths[obs.path] = _Use()
        over = not self._add(use.origins, obs.origin, _cost(obs.origin))
        over |= not self._add(use.methods, obs.method, _cost(obs.method))
        for name in obs.request_headers:
            low = name.lower()
            ok = low not in SAFELISTED_REQUEST_HEADERS and is_token(low) and len(low) <= MAX_NAME
            if ok and len(use.headers) < MAX_HEADERS:
                over |= not self._add(use.headers, low, _cost(low))
        for name in obs.response_headers:
            low = name.lower()
            if (
                low in SAFELISTED_RESPONSE_HEADERS
                or low in NOT_READ_BY_SCRIPTS
                or low.startswith("access-control-")
                or not is_token(name)
                or len(name) > MAX_NAME
            ):
                continue
            if low not in use.expose and len(use.expose) < MAX_HEADERS:
                if self._room(2 * _cost(name)):
                    use.expose[low] = name
                else:
                    over = True
        if over:
            self._skip(_OVER_BUDGET)
        use.credentials |= obs.credentials
        use.private_network |= obs.private_network
        return None

    def rules(self) -> list[LearnedRule]:
        groups: dict[str, list[str]] = {}
        for path in self.paths:
            groups.setdefault(path.split("/")[1], []).append(path)
        out: list[LearnedRule] = []
        names: set[str] = set()
        for segment in sorted(groups):
            members = sorted(groups[segment])
            patterns = _patterns(segment, members)
            use = _Use()
            for path in members:
                use.merge(self.paths[path])
            name = _name(segment, names)
            out.append(
                LearnedRule(
                    name=name,
                    paths=tuple(patterns),
                    origins=tuple(sorted(use.origins)),
                    allow_methods=_methods(use.methods),
                    allow_headers=tuple(sorted(use.headers)),
                    expose_headers=tuple(sorted(use.expose.values(), key=str.lower)),
                    allow_credentials=use.credentials,
                    allow_private_network=use.private_network,
                )
            )
        return out

    def yaml(self, *, listen: str, upstream: str) -> str:
        """The learned config as YAML (written by hand: the loader is the one reader)."""
        rules = self.rules()
        lines = [
            "# cors-proxy learn: the minimal rules for the traffic it saw"
            f" ({self.seen} cross-origin exchange{'s' if self.seen != 1 else ''}).",
            "# Review, then: cors-proxy check --config FILE; cors-proxy export --to nginx"
            " --config FILE",
        ]
        for why, count in sorted(self.left_out.items()):
            lines.append(f"# not learned: {count} exchange(s) with {why}")
        lines += [f"listen: {_s(listen)}", f"upstream: {_s(upstream)}"]
        if not rules:
            lines.append("rules: []  # no cross-origin traffic seen: nothing is allowed")
            return "\n".join(lines) + "\n"
        lines.append("rules:")
        for r in rules:
            lines += [
                f"  - name: {_s(r.name)}",
                f"    paths: {_list(r.paths)}",
                f"    origins: {_list(r.origins)}",
                f"    allow_methods: {_list(r.allow_methods)}",
                f"    allow_headers: {_list(r.allow_headers)}",
                f"    expose_headers: {_list(r.expose_headers)}",
                f"    allow_credentials: {'true' if r.allow_credentials else 'false'}",
                f"    max_age: {LEARNED_MAX_AGE}",
            ]
            if r.allow_private_network:
                lines.append("    allow_private_network: true")
        return "\n".join(lines) + "\n"


def _patterns(segment: str, members: list[str]) -> list[str]:
    """The paths of one first segment: the exact ``/segment`` if used, and the paths
    below it as one glob on their longest common directory when there are two or more."""
    top = f"/{segment}"
    below = [p for p in members if p != top]
    out = [top] if top in members else []
    if len(below) == 1:
        out.append(below[0])
    elif below:
        common = posixpath.commonprefix(below)
        directory = common[: common.rfind("/") + 1]
        out.append(directory + "*")
    return out


def _methods(methods: Iterable[str]) -> tuple[str, ...]:
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    known = [m for m in order if m in methods]
    return (*known, *sorted(set(methods) - set(order)))


def _name(segment: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in segment)[:40] or "root"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _s(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_s(i) for i in items) + "]"
