"""Cookie doctor: Chromium's defaults for cookies set by cross-origin fetches."""

from __future__ import annotations

import pytest

from proxy.diagnosis.cookies import diagnose_set_cookie, is_potentially_trustworthy, same_site, site
from proxy.policy.origins import Origin

LH_PAGE = "http://localhost:3000"
LH_PROXY = "http://localhost:8080"
IP_PROXY = "http://127.0.0.1:8080"

CASES = [
    # id, set-cookie, page, proxy, credentials, stored, sent_back, problem fragments
    ("same-site-lax-default", "sid=1; Path=/; HttpOnly", LH_PAGE, LH_PROXY, True, True, True, []),
    ("same-site-lax", "sid=1; SameSite=Lax", LH_PAGE, LH_PROXY, True, True, True, []),
    ("same-site-strict", "sid=1; SameSite=Strict", LH_PAGE, LH_PROXY, True, True, True, []),
    (
        "same-site-none-secure-localhost",
        "sid=1; SameSite=None; Secure",
        LH_PAGE,
        LH_PROXY,
        True,
        True,
        True,
        [],
    ),
    ("secure-on-127", "sid=1; Secure", "http://127.0.0.1:3000", IP_PROXY, True, True, True, []),
    (
        "secure-on-ipv6-loopback",
        "sid=1; Secure",
        "http://[::1]:3000",
        "http://[::1]:8080",
        True,
        True,
        True,
        [],
    ),
    (
        "none-without-secure",
        "sid=1; SameSite=None",
        LH_PAGE,
        LH_PROXY,
        True,
        False,
        False,
        ["SameSite=None without Secure"],
    ),
    (
        "secure-over-plain-http",
        "sid=1; Secure",
        "http://dev.test:3000",
        "http://dev.test:8080",
        True,
        False,
        False,
        ["Secure cookies cannot be set over plain http"],
    ),
    (
        "secure-over-https",
        "sid=1; Secure",
        "https://app.example.com",
        "https://api.example.com",
        True,
        True,
        True,
        [],
    ),
    (
        "domain-mismatch",
        "sid=1; Domain=example.com",
        LH_PAGE,
        LH_PROXY,
        True,
        False,
        False,
        ["Domain=example.com does not match the host localhost"],
    ),
    ("domain-match", "sid=1; Domain=localhost", LH_PAGE, LH_PROXY, True, True, True, []),
    (
        "domain-leading-dot",
        "sid=1; Domain=.example.com",
        "https://app.example.com",
        "https://api.example.com",
        True,
        True,
        True,
        [],
    ),
    (
        "domain-parent-of-ip",
        "sid=1; Domain=0.0.1",
        "http://127.0.0.1:3000",
        IP_PROXY,
        True,
        False,
        False,
        ["does not match"],
    ),
    (
        "cross-site-localhost-to-127",
        "sid=1",
        LH_PAGE,
        IP_PROXY,
        True,
        False,
        False,
        ["different sites", "not sent on cross-site"],
    ),
    (
        "cross-site-even-none-secure",
        "sid=1; SameSite=None; Secure",
        LH_PAGE,
        IP_PROXY,
        True,
        False,
        False,
        ["third-party cookie"],
    ),
    (
        "cross-site-127-to-localhost",
        "sid=1; SameSite=Strict",
        "http://127.0.0.1:3000",
        LH_PROXY,
        True,
        False,
        False,
        ["SameSite=Strict"],
    ),
    (
        "no-credentials",
        "sid=1",
        LH_PAGE,
        LH_PROXY,
        False,
        False,
        False,
        ["does not allow credentials"],
    ),
    ("host-prefix-ok", "__Host-sid=1; Secure; Path=/", LH_PAGE, LH_PROXY, True, True, True, []),
    (
        "host-prefix-domain",
        "__Host-sid=1; Secure; Path=/; Domain=localhost",
        LH_PAGE,
        LH_PROXY,
        True,
        False,
        False,
        ["__Host- prefix"],
    ),
    (
        "secure-prefix-without-secure",
        "__Secure-sid=1",
        LH_PAGE,
        LH_PROXY,
        True,
        False,
        False,
        ["__Secure- prefix"],
    ),
    (
        "max-age-zero-deletes",
        "sid=; Max-Age=0",
        LH_PAGE,
        LH_PROXY,
        True,
        False,
        False,
        ["deletes the cookie"],
    ),
]


@pytest.mark.parametrize(
    ("set_cookie", "page", "proxy", "creds", "stored", "sent_back", "fragments"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_diagnose(set_cookie, page, proxy, creds, stored, sent_back, fragments):
    v = diagnose_set_cookie(
        set_cookie, page_origin=page, proxy_origin=proxy, credentials_allowed=creds
    )
    assert (v.stored, v.sent_back) == (stored, sent_back), v.problems
    assert len(v.problems) == len(v.fixes)
    assert len(v.problems) >= len(fragments)
    for fragment in fragments:
        assert any(fragment in p for p in v.problems), (fragment, v.problems)
    if not fragments:
        assert v.problems == ()
    assert v.name == set_cookie.split("=")[0]


def test_cross_site_fix_names_the_same_host():
    v = diagnose_set_cookie(
        "sid=1", page_origin=LH_PAGE, proxy_origin=IP_PROXY, credentials_allowed=True
    )
    assert (
        "serve the page from http://localhost:3000 and call http://localhost:8080 (same site)"
        in v.fixes
    )


def test_credentials_fix_names_the_rule():
    v = diagnose_set_cookie(
        "sid=1",
        page_origin=LH_PAGE,
        proxy_origin=LH_PROXY,
        credentials_allowed=False,
        rule="frontend",
    )
    assert any("add `allow_credentials: true` to rule 'frontend'" in f for f in v.fixes)


def test_every_problem_has_a_fix():
    v = diagnose_set_cookie(
        "sid=1; SameSite=None; Domain=evil.net",
        page_origin=LH_PAGE,
        proxy_origin=IP_PROXY,
        credentials_allowed=False,
    )
    assert len(v.problems) == len(v.fixes) >= 4
    assert all(v.fixes)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://localhost:3000", "http://localhost:8080", True),
        ("http://localhost:3000", "http://127.0.0.1:3000", False),
        ("http://localhost:3000", "https://localhost:3000", False),
        ("https://app.example.com", "https://api.example.com", True),
        ("https://a.example.co.uk", "https://b.example.co.uk", True),
        ("https://a.example.co.uk", "https://b.other.co.uk", False),
        ("https://me.github.io", "https://you.github.io", False),
        ("http://a.localhost:1", "http://localhost:2", True),
    ],
)
def test_same_site(a, b, same):
    assert same_site(a, b) is same


def test_site_drops_port():
    assert site("http://localhost:3000") == "http://localhost"


@pytest.mark.parametrize(
    ("origin", "trusted"),
    [
        ("http://localhost:8080", True),
        ("http://127.0.0.1:8080", True),
        ("http://127.0.0.2:8080", True),
        ("http://[::1]:8080", True),
        ("http://app.localhost", True),
        ("https://example.com", True),
        ("http://example.com", False),
        ("http://192.168.1.10:8080", False),
    ],
)
def test_trustworthy(origin, trusted):
    parsed = Origin.parse(origin)
    assert parsed is not None
    assert is_potentially_trustworthy(parsed) is trusted
