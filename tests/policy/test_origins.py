"""Origin validation and config-side normalization (docs/cors-notes.md §1)."""

from __future__ import annotations

import re

import pytest

from proxy.policy.origins import Origin, compile_glob, is_serialized_origin, normalize_origin


@pytest.mark.parametrize(
    ("raw", "value", "changed"),
    [
        ("http://localhost:3000", "http://localhost:3000", False),
        ("http://localhost:3000/", "http://localhost:3000", True),
        ("HTTP://LocalHost:3000", "http://localhost:3000", True),
        ("http://example.com:80", "http://example.com", True),
        ("https://example.com:443/", "https://example.com", True),
        ("https://example.com:8443", "https://example.com:8443", False),
        ("https://élève.example", "https://xn--lve-6lad.example", True),
        ("http://[::1]:8080", "http://[::1]:8080", False),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080", True),
        ("https://*.example.com", "https://*.example.com", False),
        ("*", "*", False),
        ("null", "null", False),
        (" http://a.test ", "http://a.test", True),
    ],
)
def test_normalize(raw: str, value: str, changed: bool) -> None:
    n = normalize_origin(raw)
    assert (n.value, n.changed) == (value, changed)


@pytest.mark.parametrize(
    "raw",
    [
        "localhost:3000",
        "ftp://x.test",
        "http://x.test/app",
        "http://x.test?a=1",
        "http://user@x.test",
        "http://",
        "http://x.test:99999",
        "http://a..b",
        "http://[zz]",
    ],
)
def test_normalize_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        normalize_origin(raw)


@pytest.mark.parametrize(
    ("origin", "valid"),
    [
        ("http://localhost:3000", True),
        ("https://a.b.c", True),
        ("http://10.1.2.3:8080", True),
        ("http://[::1]", True),
        ("http://[2001:db8::1]:3000", True),
        ("http://localhost:80", False),
        ("https://x:443", False),
        ("http://x:65536", False),
        ("http://x:080", False),
        ("http://300.1.1.1", False),
        ("http://[::ffff:1.2.3.4]", False),
        ("http://[2001:DB8::1]", False),
        ("http://X", False),
        ("http://x/", False),
        ("http://x#", False),
        ("null", False),
        ("*", False),
        ("", False),
    ],
)
def test_is_serialized_origin(origin: str, valid: bool) -> None:
    assert is_serialized_origin(origin) is valid


def test_glob_must_be_whole_label() -> None:
    with pytest.raises(ValueError, match="whole host label"):
        compile_glob("https://a*.example.com")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("http://localhost:3000", ("http", "localhost", 3000, "", None)),
        ("HTTP://LocalHost", ("HTTP", "LocalHost", None, "", None)),
        ("http://x.test:", ("http", "x.test", None, "", None)),
        ("http://[::1]:8080/a?b#c", ("http", "[::1]", 8080, "/a?b#c", None)),
        ("http://u:p@x.test/", ("http", "x.test", None, "/", "u:p")),
        ("https://x.test?q", ("https", "x.test", None, "?q", None)),
        ("http://x.test:080", ("http", "x.test", 80, "", None)),
    ],
)
def test_origin_split_keeps_what_was_written(text: str, parts: tuple[object, ...]) -> None:
    o = Origin.split(text)
    assert (o.scheme, o.host, o.port, o.rest, o.userinfo) == parts


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("localhost:3000", "scheme://host"),
        ("://x", "scheme://host"),
        ("http://", "needs a host"),
        ("http://:80", "needs a host"),
        ("http://[::1", "closing ']'"),
        ("http://[::1]80", "not a port"),
        ("http://x:8o", "not a number"),
        ("http://x:\u0663", "not a number"),  # a digit, but not an ASCII one
    ],
)
def test_origin_split_says_why_not(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        Origin.split(text)
    assert Origin.parse(text) is None


def test_origin_views() -> None:
    o = Origin.split("HTTP://Example.COM:80/")
    assert (o.serialized, o.written, o.effective_port, o.written_port) == (
        "http://example.com",
        "HTTP://Example.COM:80",
        80,
        None,
    )
    v6 = Origin.split("https://[2001:DB8::1]:8443")
    assert (v6.bare_host, v6.serialized, v6.written_port) == (
        "2001:db8::1",
        "https://[2001:db8::1]:8443",
        8443,
    )
    assert not Origin.split("http://x:70000").port_in_range
    assert not Origin.split("http://x:0").port_in_range


@pytest.mark.parametrize(
    "origin",
    ["http://[fe80::1%eth0]", "http://u@x.test", "http://x:0", "HTTP://x", "http://x:"],
)
def test_is_serialized_origin_rejects_more(origin: str) -> None:
    assert not is_serialized_origin(origin)
