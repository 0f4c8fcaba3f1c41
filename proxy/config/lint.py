"""Config lint: rules that load fine but probably do not do what their author meant (pure).

Used by ``cors-proxy check`` and at startup/reload. Every warning names the key
(``rules[0].origin_regex``) and says what happens; regex warnings carry a concrete
hostile origin that the pattern accepts, checked with ``re.fullmatch`` before it is
shown (docs/cors-notes.md §9).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from proxy.policy.fetch import MAX_AGE_CAPS
from proxy.policy.origins import Origin, compile_glob, is_glob, is_serialized_origin

# re's parser has no type stubs; reached through importlib to keep mypy strict happy
# (the public alias ``sre_parse`` warns on import since Python 3.11).
_parser: Any = importlib.import_module("re._parser")


class RuleLike(Protocol):
    """The attributes of ``proxy.policy.cors.CorsRule`` that lint reads."""

    @property
    def name(self) -> str: ...
    @property
    def paths(self) -> tuple[str, ...]: ...
    @property
    def origins(self) -> tuple[str, ...]: ...
    @property
    def origin_regex(self) -> str | None: ...
    @property
    def allow_methods(self) -> tuple[str, ...]: ...
    @property
    def allow_headers(self) -> tuple[str, ...]: ...
    @property
    def expose_headers(self) -> tuple[str, ...]: ...
    @property
    def allow_credentials(self) -> bool: ...
    @property
    def max_age(self) -> int | None: ...
    @property
    def allow_private_network(self) -> bool: ...


@dataclass(frozen=True)
class LintWarning:
    rule: str
    key: str  # e.g. "rules[0].origin_regex"
    message: str

    def __str__(self) -> str:
        return f"{self.key} (rule {self.rule!r}): {self.message}"


def lint(rules: Sequence[RuleLike]) -> list[LintWarning]:
    out: list[LintWarning] = []
    shapes = [_Shapes.of(rule) for rule in rules]  # compiled once: the pairs are n²/2
    named: dict[str, int] = {}
    for i, rule in enumerate(rules):
        out.extend(_lint_rule(i, rule))
        first = named.setdefault(rule.name, i)
        if first != i:
            out.append(
                LintWarning(
                    rule.name,
                    f"rules[{i}].name",
                    f"{rule.name!r} is also the name of rules[{first}]: log lines and"
                    " messages name the rule that decided, so the two cannot be told apart;"
                    " give each rule its own name",
                )
            )
        out.extend(_shadowed(i, rule, rules[:i], shapes))
    return out


def _lint_rule(i: int, rule: RuleLike) -> Iterator[LintWarning]:
    def warn(key: str, message: str) -> LintWarning:
        return LintWarning(rule.name, f"rules[{i}].{key}", message)

    if "*" in rule.origins and rule.allow_credentials:
        yield warn(
            "origins",
            "'*' with allow_credentials: true reflects: the response names the request's"
            " origin in Access-Control-Allow-Origin (with Access-Control-Allow-Credentials:"
            " true) and its method and headers in the preflight answer, never a literal '*'"
            " (browsers reject '*' with credentials). Every site on the web can then make"
            " credentialed calls and read the answers; list your frontends' origins instead",
        )
    if "null" in rule.origins:
        yield warn(
            "origins",
            "'null' is sent by sandboxed iframes, file:// and data: pages and after"
            " cross-origin redirects: any site can produce it, so allowing it is close to"
            " allowing '*'",
        )
    if rule.origin_regex:
        for message in regex_problems(rule.origin_regex):
            yield warn("origin_regex", message)
    for j, method in enumerate(rule.allow_methods):
        if method != method.upper():
            yield warn(
                f"allow_methods[{j}]",
                f"{method!r} has lower-case letters, but methods are case-sensitive and"
                f" browsers send them upper-case ({method.upper()}), so a page's"
                f" {method.upper()} is refused; write {method.upper()}",
            )
    if "*" in rule.allow_headers:
        yield warn(
            "allow_headers",
            "'*' in allow_headers: browsers never let a '*' answer cover Authorization, and"
            " with credentials '*' is only the literal name '*'. The proxy therefore"
            " answers preflights with the names the browser asked for"
            " (Access-Control-Request-Headers), Authorization included, so it works"
            " here; listing the headers ([Content-Type, Authorization, ...]) documents what"
            " the frontend sends and keeps working if the rule is copied to nginx or"
            " flask-cors",
        )
    if rule.max_age is not None and rule.max_age > MAX_AGE_CAPS["chromium"]:
        effective = ", ".join(
            f"{engine} {min(rule.max_age, cap)}" for engine, cap in MAX_AGE_CAPS.items()
        )
        yield warn(
            "max_age",
            f"max_age {rule.max_age} is above what browsers honour: Chromium caps preflight"
            " caching at 7200 s (2 h), Firefox at 86400 s (24 h), WebKit at 600 s;"
            f" effective seconds: {effective}",
        )
    if rule.allow_private_network:
        yield warn(
            "allow_private_network",
            "allow_private_network answers Access-Control-Request-Private-Network: true"
            " with Access-Control-Allow-Private-Network: true. Chromium 156 no longer sends"
            " these Private Network Access preflights: Local Network Access replaced them"
            " with a permission prompt that no response header can grant (a public https"
            " page calling this proxy gets the prompt; localhost pages get none). Harmless"
            " opt-in for older Chrome builds and enterprise policies",
        )


# -- shadowed rules ---------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class _Shapes:
    """A rule's path globs, origin globs and origin_regex, compiled. Compiled per lint
    call, not per pair: re's own cache holds 512 patterns, and a config of 1,000 rules
    compares half a million pairs (it took 20 s to start before)."""

    paths: tuple[re.Pattern[str], ...]
    globs: tuple[re.Pattern[str], ...]  # invalid globs left out (config reports them)
    regex: re.Pattern[str] | None  # None when absent or invalid

    @classmethod
    def of(cls, rule: RuleLike) -> _Shapes:
        globs = []
        for entry in rule.origins:
            if entry != "*" and is_glob(entry):
                try:
                    globs.append(compile_glob(entry))
                except ValueError:
                    continue
        try:
            regex = re.compile(rule.origin_regex) if rule.origin_regex else None
        except re.error:
            regex = None
        return cls(tuple(_glob_regex(p) for p in rule.paths), tuple(globs), regex)


def _paths_cover(earlier: tuple[str, ...], shapes: _Shapes, later: tuple[str, ...]) -> bool:
    """Every path ``later`` matches, ``earlier`` (compiled in ``shapes``) matches too
    (``*``-only globs).

    A glob covers another when it matches the other's text with the other's ``*``
    absorbed only by its own ``*`` (its literal characters never match ``*``).
    """
    if not earlier:
        return True
    if not later:
        return any(p.replace("*", "") == "" for p in earlier)
    return all(any(e.fullmatch(p) for e in shapes.paths) for p in later)


def _origin_covered(origin: str, earlier: RuleLike, shapes: _Shapes) -> bool:
    if origin == "null":
        return "null" in earlier.origins
    if "*" in earlier.origins or origin in earlier.origins:
        return True
    if is_glob(origin):
        return False  # only "*" or the same glob covers a glob
    if any(glob.fullmatch(origin) for glob in shapes.globs):
        return True
    return shapes.regex is not None and shapes.regex.fullmatch(origin) is not None


def _shadowed(
    i: int, rule: RuleLike, before: Sequence[RuleLike], shapes: Sequence[_Shapes]
) -> Iterator[LintWarning]:
    for j, earlier in enumerate(before):
        if not _paths_cover(earlier.paths, shapes[j], rule.paths):
            continue
        covered = [o for o in rule.origins if _origin_covered(o, earlier, shapes[j])]
        regex_covered = rule.origin_regex is None or (
            "*" in earlier.origins or rule.origin_regex == earlier.origin_regex
        )
        where = "every path" if not earlier.paths else ", ".join(earlier.paths)
        if len(covered) == len(rule.origins) and regex_covered:
            yield LintWarning(
                rule.name,
                f"rules[{i}]",
                f"rule {rule.name!r} is never used: rule {earlier.name!r} (rules[{j}]) comes"
                f" first, covers {where} and every origin it lists, and the first rule whose"
                f" paths and origins match wins; move {rule.name!r} above {earlier.name!r}",
            )
            return
        if covered:
            yield LintWarning(
                rule.name,
                f"rules[{i}].origins",
                f"for {', '.join(covered)}, rule {earlier.name!r} (rules[{j}]) comes first and"
                f" covers {where}, so rule {rule.name!r} never applies to"
                f" {'it' if len(covered) == 1 else 'them'}",
            )


# -- origin regexes ----------------------------------------------------------------------

_BROAD_CLASSES: Final = ("ANY", "NOT_LITERAL", "IN")


@dataclass
class _Gen:
    """Builds one string matching a parsed regex; ``fill`` overrides numbered spots."""

    fill: dict[int, str]
    spots: list[str]  # "any" (a single ".") or "repeat" (".*", ".+", "[^/]*", ...)

    def run(self, items: Any) -> str:
        out: list[str] = []
        for op, arg in items:
            out.append(self._node(str(op), arg))
        return "".join(out)

    def _spot(self, kind: str) -> tuple[int, str | None]:
        self.spots.append(kind)
        n = len(self.spots) - 1
        return n, self.fill.get(n)

    def _node(self, op: str, arg: Any) -> str:
        if op == "LITERAL":
            return chr(arg)
        if op == "ANY":
            _, forced = self._spot("any")
            return "." if forced is None else forced
        if op == "NOT_LITERAL":
            return "a" if arg != ord("a") else "b"
        if op == "IN":
            return _class_sample(arg)
        if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            if len(sub) == 1 and str(sub[0][0]) in _BROAD_CLASSES and _broad(sub[0]):
                _, forced = self._spot("repeat")
                return "x" * int(low) if forced is None else forced
            return self.run(sub) * int(low)  # optional parts ("s?" in "https?") are left out
        if op == "SUBPATTERN":
            return self.run(arg[-1])
        if op == "ATOMIC_GROUP":
            return self.run(arg)
        if op == "BRANCH":
            return self.run(arg[1][0])
        return ""  # AT (anchors), assertions, group references


def _broad(node: Any) -> bool:
    """A class that accepts ``.`` and letters: a place a hostile host can hide."""
    op, arg = str(node[0]), node[1]
    if op == "ANY":
        return True
    if op == "NOT_LITERAL":
        return chr(arg) not in ".elvintx"
    if op == "IN":
        probe = _class_regex(arg)
        return probe is not None and all(probe.fullmatch(c) for c in ".elvintx")
    return False


def _class_regex(items: Any) -> re.Pattern[str] | None:
    parts: list[str] = []
    negate = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            parts.append(re.escape(chr(arg)))
        elif name == "RANGE":
            parts.append(f"{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}")
        elif name == "CATEGORY":
            cat = {
                "CATEGORY_DIGIT": r"\d",
                "CATEGORY_NOT_DIGIT": r"\D",
                "CATEGORY_WORD": r"\w",
                "CATEGORY_NOT_WORD": r"\W",
                "CATEGORY_SPACE": r"\s",
                "CATEGORY_NOT_SPACE": r"\S",
            }.get(str(arg))
            if cat is None:
                return None
            parts.append(cat)
        else:
            return None
    if not parts:
        return None
    return re.compile(f"[{'^' if negate else ''}{''.join(parts)}]")


def _class_sample(items: Any) -> str:
    probe = _class_regex(items)
    for c in "a0x-.":
        if probe is None or probe.fullmatch(c):
            return c
    for code in range(33, 127):
        if probe is not None and probe.fullmatch(chr(code)):
            return chr(code)
    return "a"


def _parse(pattern: str) -> Any:
    return _parser.parse(pattern)


def _sample(parsed: Any, fill: dict[int, str]) -> tuple[str, list[str]]:
    gen = _Gen(fill, [])
    return gen.run(parsed), gen.spots


def _host(origin: str) -> str:
    parts = Origin.parse(origin)
    return parts.host if parts is not None else ""


def _site(host: str) -> str:
    labels = host.split(".")
    return ".".join(labels[-2:])


_REPEAT_FILLERS: Final = (
    "evil-",
    ".evil.net",
    "evil.net",
    "-evil.net",
    "evil.net.",
    "x.evil.net",
    "evil",
)


def regex_problems(pattern: str) -> list[str]:
    """Plain-language problems of an ``origin_regex``, each with a verified hostile origin."""
    try:
        compiled = re.compile(pattern)
        parsed = _parse(pattern)
    except (re.error, RecursionError):
        return []
    intended, spots = _sample(parsed, {})
    intended_site = _site(_host(intended)) if "://" in intended else ""
    problems: list[str] = []

    def hostile(candidate: str) -> bool:
        return (
            compiled.fullmatch(candidate) is not None
            and is_serialized_origin(candidate)
            and bool(intended_site)
            and _site(_host(candidate)) != intended_site
        )

    # Unescaped dots: "app.example.com" also accepts "app-example.com".
    for n, kind in enumerate(spots):
        if kind != "any":
            continue
        found = next(
            (c for f in ("-", "x") if hostile(c := _sample(parsed, {n: f})[0])),
            None,
        )
        if found is not None:
            problems.append(
                f"unescaped '.' in '{pattern}' matches any character, so it also accepts"
                f" {found}; write '\\.' for a literal dot"
            )
            break
    # Broad repeats (".*", "[^/]+") that let a foreign domain in before or after the name.
    for n, kind in enumerate(spots):
        if kind != "repeat":
            continue
        for filler in _REPEAT_FILLERS:
            candidate = _sample(parsed, {n: filler})[0]
            if hostile(candidate):
                problems.append(
                    f"'{pattern}' is anchored only in form: its wildcard part can hold a"
                    f" whole foreign domain, so it accepts {candidate}; match one label"
                    " with [a-z0-9-]+ and escape the dots, e.g."
                    " https://[a-z0-9-]+\\.example\\.com"
                )
                break
        else:
            continue
        break
    # Scheme-agnostic patterns: "https?://" lets a network attacker use the http origin.
    if intended.startswith("http://"):
        secure = "https://" + intended.removeprefix("http://")
        if compiled.fullmatch(secure) and is_serialized_origin(intended):
            problems.append(
                f"'{pattern}' accepts plain http ({intended}) as well as https: anyone on"
                " the network can inject script into the http origin; require https://"
            )
    return problems
