"""Request targets and versions (proxy/policy/target.py, pure): what is forwarded, what
the proxy refuses, as nginx does."""

from __future__ import annotations

import pytest

from proxy.policy.target import Refusal, Target, request_target, version_refusal


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/api/x?y=1", Target("/api/x?y=1")),
        ("//evil.example/x", Target("//evil.example/x")),  # a path, as nginx forwards it
        ("http://evil.example/x?y=1", Target("/x?y=1", "evil.example")),
        ("HTTPS://Evil.Example:8443/x", Target("/x", "Evil.Example:8443")),
        ("http://a.test", Target("/", "a.test")),
        ("http://a.test?q", Target("/?q", "a.test")),
        ("http://a.test/x#frag", Target("/x", "a.test")),
        ("http://[::1]:8080/x", Target("/x", "[::1]:8080")),
        ("http://127.0.0.1:5000/", Target("/", "127.0.0.1:5000")),
    ],
)
def test_forwarded_targets(target: str, forwarded: Target) -> None:
    assert request_target("GET", target) == forwarded


@pytest.mark.parametrize(
    ("method", "target", "status", "says"),
    [
        ("CONNECT", "evil.example:443", 405, "CONNECT asks for a tunnel"),
        ("CONNECT", "/x", 405, "CONNECT asks for a tunnel"),
        ("OPTIONS", "*", 400, "OPTIONS * asks about the server itself"),
        ("GET", "*", 400, "GET * asks about the server itself"),
        ("GET", "evil.example:80", 400, "neither a path nor an http(s):// URL"),
        ("GET", "ftp://a.test/x", 400, "scheme 'ftp' is not http(s)"),
        ("GET", "http://u:p@a.test/x", 400, "carries a user name"),
        ("GET", "http://a.test:0/x", 400, "host or port is not valid"),
        ("GET", "http://a.test:65536/x", 400, "host or port is not valid"),
        ("GET", "http://[::g]/x", 400, "host or port is not valid"),
        ("GET", "http://a b/x", 400, "host or port is not valid"),
        ("GET", "http:///x", 400, "neither a path"),
    ],
)
def test_refused_targets(method: str, target: str, status: int, says: str) -> None:
    refusal = request_target(method, target)
    assert isinstance(refusal, Refusal)
    assert refusal.status == status
    assert says in refusal.reason


def test_versions() -> None:
    assert version_refusal(1, 1) is None
    assert version_refusal(1, 0) is None
    assert version_refusal(0, 9) == Refusal(
        400, "HTTP/0.9 requests are not served (HTTP/1.0 or 1.1)"
    )
    refusal = version_refusal(2, 0)
    assert refusal is not None
    assert refusal.status == 505
