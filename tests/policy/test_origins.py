"""Origin validation and config-side normalization (CORS.md §3)."""

from __future__ import annotations

import pytest

from proxy.policy.origins import compile_glob, is_serialized_origin, normalize_origin


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
