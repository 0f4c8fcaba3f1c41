"""Config lint over rules; every hostile example shown must really match (re.fullmatch)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from proxy.config.lint import LintWarning, RuleLike, lint, regex_problems


@dataclass(frozen=True)
class Rule:
    """Same attributes as proxy.policy.cors.CorsRule."""

    name: str = "r"
    paths: tuple[str, ...] = ()
    origins: tuple[str, ...] = ("http://localhost:3000",)
    origin_regex: str | None = None
    allow_methods: tuple[str, ...] = ("GET", "POST")
    allow_headers: tuple[str, ...] = ("content-type",)
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None
    allow_private_network: bool = False


def keys(warnings: list[LintWarning]) -> list[str]:
    return [w.key for w in warnings]


def test_clean_rule_has_no_warnings():
    assert lint([Rule()]) == []


def test_real_cors_rule_satisfies_the_protocol():
    from proxy.policy.cors import CorsRule

    rule: RuleLike = CorsRule(name="x", origins=("http://localhost:3000",))
    assert lint([rule]) == []


CASES = [
    # id, rule, expected key, fragments of the message
    (
        "star-with-credentials",
        Rule(origins=("*",), allow_credentials=True),
        "rules[0].origins",
        ["reflects", "names the request's origin", "never a literal '*'"],
    ),
    ("null-origin", Rule(origins=("null",)), "rules[0].origins", ["sandboxed iframes"]),
    (
        "unescaped-dot",
        Rule(origins=(), origin_regex=r"https://app.example.com"),
        "rules[0].origin_regex",
        ["unescaped '.'", "https://app-example.com"],
    ),
    (
        "trailing-dot-star",
        Rule(origins=(), origin_regex=r"https://app\.example\.com.*"),
        "rules[0].origin_regex",
        ["https://app.example.com.evil.net"],
    ),
    (
        "leading-dot-star",
        Rule(origins=(), origin_regex=r"https://.*example\.com"),
        "rules[0].origin_regex",
        ["https://evil-example.com"],
    ),
    (
        "scheme-agnostic",
        Rule(origins=(), origin_regex=r"https?://[a-z0-9-]+\.example\.com"),
        "rules[0].origin_regex",
        ["accepts plain http"],
    ),
    (
        "star-allow-headers",
        Rule(allow_headers=("*",)),
        "rules[0].allow_headers",
        ["Authorization", "Access-Control-Request-Headers"],
    ),
    (
        "max-age-day",
        Rule(max_age=86400),
        "rules[0].max_age",
        ["7200", "86400", "600", "chromium 7200, firefox 86400, webkit 600"],
    ),
    (
        "private-network",
        Rule(allow_private_network=True),
        "rules[0].allow_private_network",
        ["Local Network Access", "permission prompt", "Harmless"],
    ),
]


@pytest.mark.parametrize(
    ("rule", "key", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_single_rule_warnings(rule, key, fragments):
    warnings = lint([rule])
    assert keys(warnings) == [key]
    for fragment in fragments:
        assert fragment in warnings[0].message
    assert warnings[0].rule == "r"
    assert str(warnings[0]).startswith(f"{key} (rule 'r'): ")


@pytest.mark.parametrize("max_age", [None, 0, 600, 7200])
def test_max_age_within_chromium_cap_is_fine(max_age):
    assert lint([Rule(max_age=max_age)]) == []


SAFE_REGEXES = [
    r"https://[a-z0-9-]+\.preview\.example\.com",
    r"https://.*\.example\.com",
    r"https://[^/]+\.example\.com",
    r"https://(www|app)\.example\.com",
    r"http://localhost:\d+",
    r"https://example\.com",
]


@pytest.mark.parametrize("pattern", SAFE_REGEXES)
def test_regexes_without_hostile_examples(pattern):
    assert regex_problems(pattern) == []


HOSTILE_REGEXES = [
    r"https://app.example.com",
    r"https://[a-z0-9-]+.preview.example.com",
    r"https://app\.example\.com.*",
    r"https://.*example\.com",
    r"https://.+",
    r"https://[a-z.]*example\.com",
    r"^https://app\.example\.com.*$",
    r"https://(app|www).example.com",
]


@pytest.mark.parametrize("pattern", HOSTILE_REGEXES)
def test_every_hostile_example_really_matches(pattern):
    problems = regex_problems(pattern)
    assert problems
    for message in problems:
        shown = re.findall(r"accepts (https?://\S+?)[;,]", message) or re.findall(
            r"\((http://\S+)\)", message
        )
        assert shown, message
        for origin in shown:
            assert re.fullmatch(pattern, origin), (pattern, origin)
            assert "example.com" not in origin or not origin.endswith(".example.com")


def test_invalid_regex_is_not_linted_here():
    assert regex_problems("https://(") == []


# -- shadowing ---------------------------------------------------------------------------

SHADOW_CASES = [
    # id, rules, expected keys
    (
        "every-path-before-api",
        [Rule(name="all"), Rule(name="api", paths=("/api/*",))],
        ["rules[1]"],
    ),
    (
        "api-before-every-path-is-fine",
        [Rule(name="api", paths=("/api/*",)), Rule(name="all")],
        [],
    ),
    (
        "wider-glob-first",
        [Rule(name="a", paths=("/api/*",)), Rule(name="b", paths=("/api/v1/*", "/api/x"))],
        ["rules[1]"],
    ),
    (
        "disjoint-paths",
        [Rule(name="a", paths=("/api/*",)), Rule(name="b", paths=("/static/*",))],
        [],
    ),
    (
        "narrower-first-is-fine",
        [Rule(name="a", paths=("/api/v1/*",)), Rule(name="b", paths=("/api/*",))],
        [],
    ),
    (
        "star-origin-first",
        [
            Rule(name="any", origins=("*",)),
            Rule(name="b", paths=("/api/*",), origins=("https://x.test",)),
        ],
        ["rules[1]"],
    ),
    (
        "different-origins-not-shadowed",
        [
            Rule(name="a", origins=("http://localhost:3000",)),
            Rule(name="b", origins=("http://localhost:5173",)),
        ],
        [],
    ),
    (
        "glob-covers-exact",
        [
            Rule(name="a", origins=("https://*.example.com",)),
            Rule(name="b", origins=("https://app.example.com",)),
        ],
        ["rules[1]"],
    ),
    (
        "partly-shadowed",
        [
            Rule(name="a", origins=("http://localhost:3000",)),
            Rule(name="b", origins=("http://localhost:3000", "http://localhost:5173")),
        ],
        ["rules[1].origins"],
    ),
    (
        "regex-not-covered-by-exact",
        [Rule(name="a"), Rule(name="b", origins=(), origin_regex=r"https://[a-z]+\.example\.com")],
        [],
    ),
    (
        "regex-covered-by-star",
        [
            Rule(name="a", origins=("*",)),
            Rule(name="b", origins=(), origin_regex=r"https://[a-z]+\.example\.com"),
        ],
        ["rules[1]"],
    ),
    (
        "earlier-regex-covers-exact",
        [Rule(name="a", origins=(), origin_regex=r"http://localhost:\d+"), Rule(name="b")],
        ["rules[1]"],
    ),
]


@pytest.mark.parametrize(
    ("rules", "expected"), [c[1:] for c in SHADOW_CASES], ids=[c[0] for c in SHADOW_CASES]
)
def test_shadowing(rules, expected):
    assert keys(lint(rules)) == expected


def test_shadow_message_names_both_rules():
    (w,) = lint([Rule(name="all"), Rule(name="api", paths=("/api/*",))])
    assert w.rule == "api"
    assert "rule 'api' is never used" in w.message
    assert "rule 'all' (rules[0])" in w.message
    assert "move 'api' above 'all'" in w.message


def test_same_paths_other_origins_both_apply() -> None:
    """Issue 17: a strict rule for one origin and a looser one for another on the same
    paths is a working config (the first rule whose paths and origins match decides),
    not a shadowed one."""
    strict = Rule(name="strict", paths=("/api/*",), origins=("https://app.test",))
    loose = Rule(name="loose", paths=("/api/*",), origins=("http://localhost:5173",))
    assert lint([strict, loose]) == []


def test_lower_case_methods_are_flagged() -> None:
    warnings = lint([Rule(allow_methods=("GET", "put", "Patch", "*"))])
    assert keys(warnings) == ["rules[0].allow_methods[1]", "rules[0].allow_methods[2]"]
    assert "'put' has lower-case letters" in warnings[0].message
    assert "write PUT" in warnings[0].message
    assert "write PATCH" in warnings[1].message


def test_duplicate_rule_names_are_flagged() -> None:
    rules = [
        Rule(name="api", paths=("/a/*",)),
        Rule(name="other", paths=("/b/*",)),
        Rule(name="api", paths=("/c/*",)),
    ]
    (w,) = lint(rules)
    assert (w.key, w.rule) == ("rules[2].name", "api")
    assert "also the name of rules[0]" in w.message


def test_many_rules_compile_each_pattern_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shadowing check compares every pair of rules; its patterns are compiled once
    per rule, not per pair (1,000 rules took 20 s to load when re's cache thrashed)."""
    import proxy.config.lint

    compiled: list[str] = []
    real = proxy.config.lint._glob_regex

    def counting(pattern: str) -> re.Pattern[str]:
        compiled.append(pattern)
        return real(pattern)

    monkeypatch.setattr(proxy.config.lint, "_glob_regex", counting)
    rules = [
        Rule(name=f"svc{i}", paths=(f"/svc{i}/*",), origins=(f"https://*.team{i}.example.com",))
        for i in range(300)
    ]
    rules.append(
        Rule(name="late", paths=("/svc7/deep/*",), origins=("https://a.team7.example.com",))
    )
    warnings = lint(rules)
    assert sorted(compiled) == sorted(p for r in rules for p in r.paths)
    # ... and the answers are those of the pairwise check: only svc7 covers the late rule.
    assert [w.message for w in warnings if w.rule == "late"] == [
        "rule 'late' is never used: rule 'svc7' (rules[7]) comes first, covers /svc7/* and "
        "every origin it lists, and the first rule whose paths and origins match wins; move"
        " 'late' above 'svc7'"
    ]
