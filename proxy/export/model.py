"""What every export shares: the rules as target-neutral patterns, the header comment,
and the list of places where a target cannot say exactly what the proxy does (pure).

Rule selection is the contract's: the first rule whose paths match the percent-decoded
path AND whose origins accept the request's ``Origin`` decides. A target that selects by
path alone (flask-cors) reports the cases where that differs, and is stricter there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from proxy.config.model import Config
from proxy.policy.cors import CorsRule
from proxy.policy.fetch import SAFELISTED_REQUEST_HEADERS
from proxy.policy.origins import compile_glob, is_glob

TARGETS: Final = ("nginx", "caddy", "flask-cors", "starlette")

# The shape of a serialized http(s) origin (``proxy.policy.origins.is_serialized_origin``
# without its numeric checks): what ``origins: ["*"]`` accepts, written as a pattern every
# target understands. It differs only for strings no browser sends (``http://x:80``).
SERIALIZED_ORIGIN: Final = r"https?://(?:\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::[1-9][0-9]{0,4})?"

# The Access-Control-* response fields an upstream may send (upstream_cors: override
# removes them; a target that cannot remove "every Access-Control-*" removes these).
CORS_RESPONSE_FIELDS: Final = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    "Access-Control-Allow-Private-Network",
)
PREFLIGHT_VARY: Final = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
STANDARD_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_SPECIAL: Final = frozenset(".^$*+?()[]{}|\\")


def rx_escape(text: str) -> str:
    """``text`` as a literal in a regex that Python, PCRE (nginx) and RE2 (Caddy) all read
    the same way: the metacharacters escaped, spaces and control characters as ``\\xHH``."""
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append("\\" + ch)
        elif ch <= " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def glob_rx(glob: str) -> str:
    """A path glob (``*`` = any run of characters, ``/`` included) as a regex body."""
    return ".*".join(rx_escape(part) for part in glob.split("*"))


@dataclass(frozen=True)
class Deviation:
    """A place where a target cannot do exactly what the proxy does; ``instead`` is the
    nearest safe (never looser) behaviour the export emits."""

    rule: str  # "rules[0] 'frontend'", or "all rules"
    kind: str  # a short key the tests know, e.g. "expose-all-with-credentials"
    what: str  # what the proxy does that the target cannot
    instead: str  # what the export does instead (stricter or the same verdict)

    def comment(self) -> list[str]:
        return [f"DEVIATION ({self.kind}) {self.rule}: {self.what}", f"  instead: {self.instead}"]


@dataclass(frozen=True)
class Export:
    target: str
    text: str
    deviations: tuple[Deviation, ...]


@dataclass(frozen=True)
class Rule:
    """One rule, in the terms a target needs."""

    index: int
    rule: CorsRule
    path_rx: str | None  # regex body matching the rule's paths (full match); None: every path
    exact: tuple[str, ...]  # exact origins (and "null" when listed)
    origin_rxs: tuple[str, ...]  # globs as regexes, origin_regex, or SERIALIZED_ORIGIN for "*"
    any_origin: bool

    @property
    def label(self) -> str:
        return f"rules[{self.index}] {self.rule.name!r}"

    @property
    def origin_rx(self) -> str | None:
        """Every origin the rule accepts as one regex body (full match), or None."""
        parts = [rx_escape(o) for o in self.exact] + [f"(?:{r})" for r in self.origin_rxs]
        return "|".join(parts) if parts else None

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.rule.allow_methods if m != "*")

    @property
    def any_method(self) -> bool:
        return "*" in self.rule.allow_methods

    @property
    def any_header(self) -> bool:
        return "*" in self.rule.allow_headers

    @property
    def headers(self) -> tuple[str, ...]:
        """The Access-Control-Allow-Headers names the proxy answers with: the rule's,
        then the safelisted ones it allows by name (lower-case, as the proxy sends them)."""
        own = [h for h in self.rule.allow_headers if h != "*"]
        return (*own, *sorted(SAFELISTED_REQUEST_HEADERS - set(own)))

    @property
    def expose_all(self) -> bool:
        return "*" in self.rule.expose_headers

    @property
    def expose(self) -> tuple[str, ...]:
        return tuple(h for h in self.rule.expose_headers if h != "*")

    @property
    def acao_star(self) -> bool:
        """The proxy answers ``*`` (any origin, no credentials) instead of the origin."""
        return self.any_origin and not self.rule.allow_credentials


def rules_of(cfg: Config) -> list[Rule]:
    out = []
    for i, r in enumerate(cfg.rules):
        path_rx = "|".join(f"(?:{glob_rx(p)})" for p in r.paths) if r.paths else None
        exact = tuple(o for o in r.origins if o != "*" and not is_glob(o))
        rxs = [compile_glob(o).pattern for o in r.origins if is_glob(o)]
        if r.origin_regex:
            rxs.append(r.origin_regex)
        any_origin = "*" in r.origins
        if any_origin:
            rxs = [SERIALIZED_ORIGIN]  # covers every glob and regex; "null" stays exact
        out.append(Rule(i, r, path_rx, exact, tuple(rxs), any_origin))
    return out


def header_comment(cfg: Config, source: str, target: str, mark: str = "#") -> list[str]:
    """The first lines of every export: where it came from and its rules."""
    lines = [
        f"cors-proxy export --to {target} --config {source}",
        "Generated from that file: edit the YAML and export again rather than this output.",
        "Rules (the first rule whose paths match and whose origins accept the request's",
        "Origin decides; with no such rule the response gets no CORS headers):",
    ]
    if not cfg.rules:
        lines.append("  (none: every cross-origin read is blocked)")
    for i, r in enumerate(cfg.rules):
        origins = list(r.origins) + ([f"regex {r.origin_regex}"] if r.origin_regex else [])
        lines.append(
            f"  rules[{i}] {r.name}: paths {', '.join(r.paths) or '(every path)'};"
            f" origins {', '.join(origins)}"
        )
        lines.append(
            f"    methods {', '.join(r.allow_methods) or '-'}; headers"
            f" {', '.join(r.allow_headers) or '-'}; expose {', '.join(r.expose_headers) or '-'};"
            f" credentials {str(r.allow_credentials).lower()}; max_age {r.max_age}"
        )
    return [f"{mark} {line}".rstrip() for line in lines]


def deviation_comments(deviations: Sequence[Deviation], mark: str = "#") -> list[str]:
    if not deviations:
        return []
    out = [f"{mark} Where this target cannot do exactly what cors-proxy does (each is stricter"]
    out.append(f"{mark} or gives browsers the same verdict; also noted at its place below):")
    for d in deviations:
        out.extend(f"{mark}   {line}" for line in d.comment())
    return out


def expose_all_deviation(r: Rule) -> Deviation | None:
    if r.expose_all and r.rule.allow_credentials:
        return Deviation(
            r.label,
            "expose-all-with-credentials",
            'expose_headers: ["*"] with credentials names every response header in'
            " Access-Control-Expose-Headers (a literal '*' means nothing with credentials)",
            "only the rule's other expose_headers are sent: scripts read fewer headers",
        )
    return None


def any_method_deviation(r: Rule) -> Deviation | None:
    if r.any_method:
        return Deviation(
            r.label,
            "any-method",
            'allow_methods: ["*"] answers a preflight with whatever method it asks for',
            f"the standard methods are listed ({', '.join(STANDARD_METHODS)}): other methods"
            " are refused",
        )
    return None


def star_origin_deviation(r: Rule) -> Deviation | None:
    if r.acao_star:
        return Deviation(
            r.label,
            "star-origin-reflected",
            "origins: ['*'] without credentials answers Access-Control-Allow-Origin: *",
            "the request's origin is named instead: the same verdict, but a credentialed"
            " request is blocked for the missing Access-Control-Allow-Credentials rather"
            " than for the '*'",
        )
    return None


def library_deviations(r: Rule) -> list[Deviation]:
    """What flask-cors and Starlette cannot say of a rule (their options are alike)."""
    found = (expose_all_deviation(r), any_method_deviation(r), star_origin_deviation(r))
    return [d for d in found if d is not None]


def preserve_deviation(target: str) -> Deviation:
    return Deviation(
        "all rules",
        "preserve-adds",
        "upstream_cors: preserve adds the rule's fields only to responses without"
        " Access-Control-* fields of their own",
        f"{target} adds them to every response; an upstream sending its own gets two"
        " Access-Control-Allow-Origin values, which browsers block",
    )


def paths_may_overlap(a: CorsRule, b: CorsRule) -> bool:
    """Whether two rules may both cover one path (conservative: True unless their
    literal prefixes before the first ``*`` already differ)."""
    if not a.paths or not b.paths:
        return True
    for p in a.paths:
        for q in b.paths:
            pp, qq = p.split("*")[0], q.split("*")[0]
            if "*" not in p and "*" not in q and p != q:
                continue
            if pp.startswith(qq) or qq.startswith(pp):
                return True
    return False


def origins_covered(later: Rule, earlier: Rule) -> bool:
    """Every origin ``later`` accepts, ``earlier`` accepts too (conservative: False when
    unsure)."""
    if earlier.any_origin:
        return not ("null" in later.exact and "null" not in earlier.exact)
    if later.any_origin:
        return False
    erx = re.compile(earlier.origin_rx) if earlier.origin_rx else None
    for o in later.exact:
        if o not in earlier.exact and not (o != "null" and erx and erx.fullmatch(o)):
            return False
    return all(rx in earlier.origin_rxs for rx in later.origin_rxs)
