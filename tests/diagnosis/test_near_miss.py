"""Near-miss origin hints."""

from __future__ import annotations

import pytest

from proxy.diagnosis.near_miss import near_misses

CASES = [
    # id, request origin, configured, expected messages (exact)
    (
        "loopback-host",
        "http://127.0.0.1:5173",
        ["http://localhost:5173"],
        [
            "Origin http://127.0.0.1:5173 is not allowed; the rules have http://localhost:5173"
            " (different host: localhost and 127.0.0.1 are different origins (and sites))"
        ],
    ),
    (
        "scheme",
        "https://localhost:5173",
        ["http://localhost:5173"],
        [
            "Origin https://localhost:5173 is not allowed; the rules have http://localhost:5173 (different scheme)"
        ],
    ),
    (
        "scheme-default-ports",
        "http://example.com",
        ["https://example.com"],
        [
            "Origin http://example.com is not allowed; the rules have https://example.com (different scheme)"
        ],
    ),
    (
        "port",
        "http://localhost:3001",
        ["http://localhost:3000"],
        [
            "Origin http://localhost:3001 is not allowed; the rules have http://localhost:3000 (different port)"
        ],
    ),
    (
        "trailing-slash",
        "http://localhost:3000/",
        ["http://localhost:3000"],
        [
            "Origin http://localhost:3000/ is not allowed; the rules have http://localhost:3000"
            " (trailing slash: an origin has no path, browsers never send one)"
        ],
    ),
    (
        "upper-case",
        "http://LOCALHOST:3000",
        ["http://localhost:3000"],
        [
            "Origin http://LOCALHOST:3000 is not allowed; the rules have http://localhost:3000"
            " (different case: origins are compared byte for byte, browsers send lower case)"
        ],
    ),
    (
        "explicit-default-port",
        "http://localhost:80",
        ["http://localhost"],
        [
            "Origin http://localhost:80 is not allowed; the rules have http://localhost"
            " (explicit default port :80: browsers omit it)"
        ],
    ),
    (
        "explicit-https-port",
        "https://example.com:443",
        ["https://example.com"],
        [
            "Origin https://example.com:443 is not allowed; the rules have https://example.com"
            " (explicit default port :443: browsers omit it)"
        ],
    ),
    (
        "www",
        "https://www.example.com",
        ["https://example.com"],
        [
            "Origin https://www.example.com is not allowed; the rules have https://example.com (different host: www. prefix)"
        ],
    ),
    (
        "glob-two-levels",
        "https://a.b.example.com",
        ["https://*.example.com"],
        [
            "Origin https://a.b.example.com is not allowed; the rules have https://*.example.com"
            " (* matches exactly one label, this origin has 2 (a.b); add https://*.b.example.com)"
        ],
    ),
    (
        "glob-apex",
        "https://example.com",
        ["https://*.example.com"],
        [
            "Origin https://example.com is not allowed; the rules have https://*.example.com"
            " (https://*.example.com needs exactly one subdomain label and does not match the"
            " apex; add https://example.com)"
        ],
    ),
    (
        "glob-scheme",
        "http://a.example.com",
        ["https://*.example.com"],
        [
            "Origin http://a.example.com is not allowed; the rules have https://*.example.com (different scheme)"
        ],
    ),
    (
        "glob-port",
        "https://a.example.com:8443",
        ["https://*.example.com"],
        [
            "Origin https://a.example.com:8443 is not allowed; the rules have https://*.example.com (different port)"
        ],
    ),
    (
        "glob-upper-case",
        "https://A.example.com",
        ["https://*.example.com"],
        [
            "Origin https://A.example.com is not allowed; the rules have https://*.example.com"
            " (written differently: browsers send lower case, no default port, no path)"
        ],
    ),
    (
        "glob-scheme-and-port",
        "http://a.example.com:8080",
        ["https://*.example.com"],
        [
            "Origin http://a.example.com:8080 is not allowed; the rules have"
            " https://*.example.com (different scheme and port)"
        ],
    ),
    ("unrelated", "https://evil.net", ["https://example.com", "https://*.example.com"], []),
    ("allowed", "http://localhost:3000", ["http://localhost:3000"], []),
    ("star-allows-all", "http://x.test", ["*"], []),
    ("lookalike-suffix", "https://evil-example.com", ["https://*.example.com"], []),
    ("glob-suffix-attack", "https://a.example.com.evil.net", ["https://*.example.com"], []),
    ("garbage", "not an origin", ["http://localhost:3000"], []),
]


@pytest.mark.parametrize(
    ("origin", "configured", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_near_misses(origin, configured, expected):
    assert near_misses(origin, configured) == expected


def test_several_entries_each_reported():
    got = near_misses(
        "http://127.0.0.1:3000", ["http://localhost:3000", "http://127.0.0.1:3001", "null"]
    )
    assert len(got) == 2
    assert "(different port)" in got[1]


def test_null_origin_explained():
    (msg,) = near_misses("null", ["http://localhost:3000"])
    assert "Origin null is not allowed" in msg
    assert near_misses("null", ["null"]) == []
