"""Request lines a browser never sends (issue 21 item 5), on both servers: the
absolute-form is forwarded in origin-form with its host as ``Host`` (RFC 9112 3.2.2, as
nginx's ``$host``); ``CONNECT``, ``OPTIONS *``, HTTP/0.9 and HTTP/2.0 request lines get the
proxy's own answer and never reach the upstream. Raw sockets on loopback, each answer
within 5 s."""

from __future__ import annotations

import pytest

from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, RunningProxy, raw_request, through_echo
from tests.support.upstream_app import Upstream


@pytest.fixture(params=["fast", "aiohttp"])
def server_lane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def refused(p: RunningProxy, upstream: Upstream, request: bytes) -> bytes:
    """The proxy's answer to ``request``; the upstream saw nothing of it."""
    hits = len(upstream.hits)
    answer = await raw_request(p.port, request)
    assert len(upstream.hits) == hits, upstream.hits[hits:]
    return answer


class TestAbsoluteForm:
    async def test_forwarded_in_origin_form_with_its_host(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        p = await make_proxy(upstream.url)
        head = f"GET http://Evil.example:9000/api/echo?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nOrigin: {ORIGIN}\r\n"
        fields, seen = await through_echo(p, head)
        assert seen["uri"] == "/api/echo?x=1"  # never the absolute URL
        sent = dict(seen["headers"])
        assert sent["Host"] == "Evil.example:9000"  # the request line's host wins
        assert sent["X-Forwarded-Host"] == "Evil.example:9000"
        assert fields["access-control-allow-origin"] == ORIGIN  # the rule for /api/* applies
        log = await p.logs()
        assert "GET /api/echo?x=1 200 " in log

    async def test_host_header_upstream_still_wins(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        p = await make_proxy(upstream.url, host_header="upstream")
        head = "POST http://evil.example/api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        _, seen = await through_echo(p, head, b"{}")
        assert seen["uri"] == "/api/echo"
        assert dict(seen["headers"])["Host"] == upstream.url.removeprefix("http://")

    async def test_a_url_without_a_path_asks_for_the_root(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        p = await make_proxy(upstream.url)
        hits = len(upstream.hits)
        await raw_request(
            p.port, b"GET http://a.test?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert upstream.hits[hits:] == ["GET /?q=1"]

    @pytest.mark.parametrize(
        "target",
        [
            "ftp://evil.example/api/echo",
            "http://user:pw@evil.example/api/echo",
            "http:///api/echo",
            "http://evil.example:99999/api/echo",
            "http://[::1/api/echo",
            "evil.example:80",
        ],
    )
    async def test_malformed_ones_are_refused(
        self, make_proxy: MakeProxy, upstream: Upstream, target: str
    ) -> None:
        p = await make_proxy(upstream.url)
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        answer = await refused(p, upstream, request)
        # the proxy's 400, or aiohttp's parser's (``HTTP/1.0 400``) for what it cannot parse
        assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.0 400 ")), answer[:200]


@pytest.mark.parametrize(
    ("request_line", "answer"),
    [
        ("CONNECT evil.example:443 HTTP/1.1", b"HTTP/1.1 405 Method Not Allowed\r\n"),
        ("CONNECT /api/echo HTTP/1.1", b"HTTP/1.1 405 Method Not Allowed\r\n"),
        ("OPTIONS * HTTP/1.1", b"HTTP/1.1 400 Bad Request\r\n"),
        ("GET /api/echo HTTP/2.0", b"HTTP/1.1 505 HTTP Version Not Supported\r\n"),
    ],
)
async def test_never_forwarded(
    make_proxy: MakeProxy, upstream: Upstream, request_line: str, answer: bytes
) -> None:
    """Today's CONNECT reached Flask (with an invented chunked body once it had a Host
    worth keeping); these get the proxy's answer, and the connection ends after it."""
    p = await make_proxy(upstream.url)
    # a request after it is never served (aiohttp's parser refuses data after an HTTP/2.0
    # line, so that one comes alone)
    then = "" if "HTTP/2" in request_line else "GET /api/hello HTTP/1.1\r\nHost: x\r\n\r\n"
    got = await refused(p, upstream, f"{request_line}\r\nHost: x\r\n\r\n{then}".encode())
    assert got.startswith(answer), got[:200]
    assert b"Connection: close" in got or b"HTTP/2" in request_line.encode()
    assert got.count(b"HTTP/1.1 ") == 1  # what followed was not served
    log = await p.logs()
    assert (
        f"{request_line.split()[0]} {request_line.split()[1]} {answer.split()[1].decode()} " in log
    )


@pytest.mark.parametrize("request_bytes", [b"GET /api/echo\r\n", b"GET /api/echo\r\n\r\n"])
async def test_http09_is_refused_at_once(
    make_proxy: MakeProxy, upstream: Upstream, request_bytes: bytes
) -> None:
    """An HTTP/0.9 request is its request line alone: answered then (not after a head
    deadline), with a status line, and never forwarded (it was, answered
    ``HTTP/0.9 200 OK``)."""
    p = await make_proxy(upstream.url)
    got = await refused(p, upstream, request_bytes)
    assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got[:200]
    assert got.endswith(b"cors-proxy: HTTP/0.9 requests are not served (HTTP/1.0 or 1.1)\n")
