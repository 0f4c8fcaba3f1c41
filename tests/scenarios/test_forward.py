"""The proxy on real sockets in front of a real Flask app under Werkzeug."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, raw_request
from tests.support.upstream_app import GZ_BODY, Upstream


@pytest.fixture(params=["fast", "aiohttp"])
def server_lane(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both servers: the fast lane and aiohttp's (which serves
    bodies)."""
    return str(request.param)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


def acao_lines(resp: aiohttp.ClientResponse) -> list[str]:
    return resp.headers.getall("Access-Control-Allow-Origin", [])


class TestCors:
    async def test_allowed_origin_gets_headers_and_vary(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
            assert acao_lines(r) == [ORIGIN]
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert r.headers["Access-Control-Expose-Headers"] == "X-Request-Id"
            assert r.headers["Vary"] == "Origin"
            assert await r.json() == {"hello": "world"}
        assert "GET /api/hello 200 origin=http://localhost:3000 cors=allowed[frontend]" in (
            await p.logs()
        )

    @pytest.mark.parametrize("origin", ["http://evil.test", None, "http://LOCALHOST:3000", "null"])
    async def test_other_origins_are_forwarded_without_cors(
        self, make_proxy: MakeProxy, upstream: Upstream, session, origin
    ) -> None:
        p = await make_proxy(upstream.url)
        headers = {"Origin": origin} if origin else {}
        async with session.get(p.url + "/api/hello", headers=headers) as r:
            assert r.status == 200
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            assert r.headers["Vary"] == "Origin"

    async def test_preflight_is_answered_locally(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        before = len(upstream.hits)
        headers = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type,x-custom",
        }
        async with session.options(p.url + "/api/echo", headers=headers) as r:
            assert r.status == 204
            assert acao_lines(r) == [ORIGIN]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"]
            assert "PUT" in r.headers["Access-Control-Allow-Methods"]
        headers["Origin"] = "http://evil.test"
        async with session.options(p.url + "/api/echo", headers=headers) as r:
            assert r.status == 403
            assert "origin 'http://evil.test' is not allowed" in await r.text()
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert len(upstream.hits) == before  # neither reached Flask
        # Flask's trailing-slash redirect never hits a preflight either.
        async with session.options(
            p.url + "/api/items", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        ) as r:
            assert r.status == 204

    async def test_plain_options_is_forwarded(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.options(p.url + "/api/echo", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
            assert (await r.json())["method"] == "OPTIONS"

    async def test_upstream_cors_is_replaced_once(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/api/own-cors", headers={"Origin": ORIGIN}) as r:
            assert acao_lines(r) == [ORIGIN]
            assert "Access-Control-Allow-Headers" not in r.headers
        assert "Access-Control-Allow-Origin: '*' replaced with 'http://localhost:3000'" in (
            await p.logs()
        )

    async def test_upstream_cors_preserved(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url, upstream_cors="preserve")
        async with session.get(p.url + "/api/own-cors", headers={"Origin": ORIGIN}) as r:
            assert acao_lines(r) == ["*"]
            assert r.headers["Access-Control-Allow-Headers"] == "*"

    async def test_error_statuses_keep_cors(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        for code in (400, 404, 500, 503):
            async with session.get(p.url + f"/api/status/{code}", headers={"Origin": ORIGIN}) as r:
                assert r.status == code
                assert acao_lines(r) == [ORIGIN]
        assert "would have reported a CORS error" in (await p.logs())


class TestForwarding:
    async def test_methods_body_and_query_byte_exact(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        body = os.urandom(300_000)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            url = URL(p.url + "/api/echo?a=%2F&b=%28x%29&c=1+2&&d", encoded=True)
            async with session.request(method, url, data=body) as r:
                got = await r.json()
                assert got["method"] == method
                assert got["uri"] == "/api/echo?a=%2F&b=%28x%29&c=1+2&&d"
                assert (got["length"], got["sha256"]) == (
                    len(body),
                    hashlib.sha256(body).hexdigest(),
                )

    async def test_path_is_not_requoted(self, make_proxy: MakeProxy, upstream: Upstream) -> None:
        p = await make_proxy(upstream.url)
        raw = await raw_request(
            p.port,
            b"GET /api/raw/a%2Fb/%28c%29/%7E?x=%20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert body["uri"] == "/api/raw/a%2Fb/%28c%29/%7E?x=%20"

    async def test_chunked_upload_streams(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)

        async def gen() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 10000

        async with session.post(p.url + "/api/echo", data=gen()) as r:
            got = await r.json()
        assert got["length"] == 200_000
        sent = {k.lower(): v for k, v in got["headers"]}
        assert "transfer-encoding" in sent or "content-length" in sent

    async def test_headers_upstream(self, make_proxy: MakeProxy, upstream: Upstream) -> None:
        p = await make_proxy(upstream.url)
        raw = await raw_request(
            p.port,
            b"GET /api/echo HTTP/1.1\r\nHost: proxy.test:8080\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\nCookie: a=1\r\nAccept-Encoding: br\r\n\r\n",
        )
        sent = dict((k.lower(), v) for k, v in json.loads(raw.split(b"\r\n\r\n", 1)[1])["headers"])
        assert sent["host"] == "proxy.test:8080"  # host_header: preserve
        assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
        assert sent["x-forwarded-proto"] == "http"
        assert sent["x-forwarded-host"] == "proxy.test:8080"
        assert sent["accept-encoding"] == "br"  # the client's, not aiohttp's
        assert "x-drop" not in sent
        assert "user-agent" not in sent
        assert "accept" not in sent

    async def test_host_header_upstream(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url, host_header="upstream")
        async with session.get(p.url + "/api/echo") as r:
            sent = dict((k.lower(), v) for k, v in (await r.json())["headers"])
        assert sent["host"] == upstream.url.removeprefix("http://")

    async def test_no_decompression(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/api/gzip", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Length"] == str(len(GZ_BODY))
            assert r.headers["Vary"] == "Accept-Encoding, Origin"
            assert await r.read() == GZ_BODY
            assert gzip.decompress(GZ_BODY).startswith(b'{"compressed"')

    async def test_redirect_not_followed_and_location_rewritten(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url, host_header="upstream")
        async with session.get(
            p.url + "/api/redirect", headers={"Origin": ORIGIN}, allow_redirects=False
        ) as r:
            assert r.status == 302
            assert r.headers["Location"] == p.url + "/api/hello"
            assert acao_lines(r) == [ORIGIN]  # the 3xx itself must pass the CORS check

    async def test_set_cookie_lines_kept(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/api/hello") as r:
            assert r.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; SameSite=Lax"]

    async def test_head_and_304(self, make_proxy: MakeProxy, upstream: Upstream) -> None:
        p = await make_proxy(upstream.url)
        raw = await raw_request(
            p.port,
            b"HEAD /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nConnection: close\r\n\r\n",
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b""
        assert b"Content-Length: 18" in head
        raw = await raw_request(
            p.port,
            b'GET /api/etag HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\nOrigin: http://localhost:3000\r\nConnection: close\r\n\r\n',
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 304")
        assert body == b""
        assert b"Access-Control-Allow-Origin: http://localhost:3000" in head
        assert b"Transfer-Encoding" not in head

    async def test_sse_arrives_event_by_event(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        arrivals = []
        async with session.get(p.url + "/api/sse?gap=0.4", headers={"Origin": ORIGIN}) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for line in r.content:
                if line.startswith(b"data:"):
                    arrivals.append(time.monotonic())
        assert len(arrivals) == 3
        assert arrivals[1] - arrivals[0] > 0.25
        assert arrivals[2] - arrivals[1] > 0.25

    async def test_large_download_is_streamed_in_constant_memory(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        import resource

        p = await make_proxy(upstream.url)
        n = 256 << 20
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        digest = hashlib.sha256()
        got = 0
        async with session.get(p.url + f"/api/big?n={n}") as r:
            async for chunk in r.content.iter_chunked(1 << 16):
                got += len(chunk)
                digest.update(chunk)
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert got == n
        assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB for a {n >> 20} MiB body"

    async def test_expect_100_continue(self, make_proxy: MakeProxy, upstream: Upstream) -> None:
        p = await make_proxy(upstream.url)
        raw = await raw_request(
            p.port,
            b"POST /api/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
        assert b'"length":3' in raw


class TestErrors:
    async def test_debugger_500_is_diagnosed(
        self, make_proxy: MakeProxy, debug_upstream: Upstream, session
    ) -> None:
        p = await make_proxy(debug_upstream.url)
        async with session.get(p.url + "/api/boom", headers={"Origin": ORIGIN}) as r:
            assert r.status == 500
            assert acao_lines(r) == [ORIGIN]
            assert "Werkzeug Debugger" in await r.text()
        line = next(ln for ln in (await p.logs()).splitlines() if "/api/boom" in ln)
        assert "GET /api/boom 500 origin=http://localhost:3000" in line
        assert "NameError: name 'undefined_name' is not defined (upstream_app.py:" in line
        assert "in boom)" in line
        assert "would have reported a CORS error" in line

    async def test_notes_accumulate(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        """The note about the upstream's own CORS headers and the 500's note both reach
        the line (the second used to overwrite the first)."""
        p = await make_proxy(upstream.url)
        path = "/api/status/500?own_cors=X-Own"
        async with session.get(p.url + path, headers={"Origin": ORIGIN}) as r:
            assert r.status == 500
            assert "Access-Control-Allow-Headers" not in r.headers
        line = next(ln for ln in (await p.logs()).splitlines() if path in ln)
        assert "Access-Control-Allow-Headers: 'X-Own' removed" in line, line
        assert "would have reported a CORS error" in line, line

    async def test_a_500_on_every_poll_is_summarised(
        self, make_proxy: MakeProxy, debug_upstream: Upstream, session
    ) -> None:
        """Issue 17: the same error on every poll is diagnosed in full once, then
        summarised; the long "without cors-proxy" note is said in full once per path and
        status."""
        p = await make_proxy(debug_upstream.url)
        for query in ("", "?n=1", "?n=2", "?n=3"):
            async with session.get(p.url + "/api/boom" + query, headers={"Origin": ORIGIN}) as r:
                assert r.status == 500
        lines = [ln for ln in (await p.logs()).splitlines() if "/api/boom" in ln]
        assert len(lines) == 4, lines
        first, *again = lines
        assert "NameError: name 'undefined_name' is not defined (upstream_app.py:" in first
        assert "would have reported a CORS error" in first
        for nth, line in zip(("2nd", "3rd", "4th"), again, strict=True):
            assert "is not defined" not in line, line
            assert f"again: NameError ({nth} time in a row" in line, line
            assert "would have reported" not in line, line
            assert "without cors-proxy: a CORS error, not this 500" in line, line
            assert len(line) < len(first)

    async def test_a_refused_cookie_is_named_on_a_later_401(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        """Issue 17: a cookie the browser refused to store, then a 401 to a request
        without it: the 401's line says so."""
        p = await make_proxy(upstream.url)
        jarless = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        async with jarless as s:
            # the page (localhost) and the proxy (127.0.0.1) are different sites
            async with s.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
                assert r.headers.getall("Set-Cookie")
            async with s.get(p.url + "/api/status/401", headers={"Origin": ORIGIN}) as r:
                assert r.status == 401
            with_cookies = {"Origin": ORIGIN, "Cookie": "a=1; b=2"}
            async with s.get(p.url + "/api/status/403", headers=with_cookies) as r:
                assert r.status == 403
        log = await p.logs()
        line = next(ln for ln in log.splitlines() if "/api/status/401" in ln)
        assert (
            "this 401 may be that cookie's doing: the request carries no cookie 'a', and the"
            " browser did not store it when the answer to /api/hello set it" in line
        ), line
        assert "no cookie 'b'" in line
        other = next(ln for ln in log.splitlines() if "/api/status/403" in ln)
        assert "may be that cookie's doing" not in other, other

    async def test_generic_500_points_at_the_flask_console(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/api/boom", headers={"Origin": ORIGIN}) as r:
            assert r.status == 500
        assert "Flask console" in (await p.logs())

    async def test_upstream_down_is_502_with_cors(self, make_proxy: MakeProxy, session) -> None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = await make_proxy(f"http://127.0.0.1:{port}", upstream_wait=0)
        async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 502
            assert acao_lines(r) == [ORIGIN]
            assert r.headers["X-Cors-Proxy-Error"] == "connection refused"
            assert "X-Cors-Proxy-Error" in r.headers["Access-Control-Expose-Headers"]
            body = await r.json()
        assert body["error"] == "connection refused"
        assert body["upstream"] == f"http://127.0.0.1:{port}"
        assert f"nothing listens on 127.0.0.1:{port}" in body["detail"]

    async def test_dns_failure_is_502(self, make_proxy: MakeProxy, session) -> None:
        p = await make_proxy("http://no-such-host.invalid:5000", upstream_wait=0)
        async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 502
            assert r.headers["X-Cors-Proxy-Error"] == "DNS lookup failed"

    async def test_read_timeout_is_504(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url, timeouts={"connect": 2, "read": 0.3})
        async with session.get(p.url + "/api/slow?s=1.5", headers={"Origin": ORIGIN}) as r:
            assert r.status == 504
            assert r.headers["X-Cors-Proxy-Error"] == "read timeout"
            assert acao_lines(r) == [ORIGIN]

    async def test_health(self, make_proxy: MakeProxy, upstream: Upstream, session) -> None:
        p = await make_proxy(upstream.url)
        async with session.get(p.url + "/__cors-proxy__/health") as r:
            body = await r.json()
        assert body["status"] == "ok"
        assert body["upstream_reachable"] is True
        assert body["config_generation"] == 1
        async with session.get(p.url + "/__cors-proxy__/other") as r:
            assert r.status == 404
        assert not any("__cors-proxy__" in h for h in upstream.hits)


class TestHostileInput:
    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nOrigin: http://evil.test\r\nConnection: close\r\n\r\n",
            b"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\rX-Injected: 1\r\nConnection: close\r\n\r\n",
            b"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\nSet-Cookie: x\r\nConnection: close\r\n\r\n",
            b"GET /api/hello HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * 16384
            + b"\r\nConnection: close\r\n\r\n",
            b"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nX-Bin: \xff\xfe\r\nConnection: close\r\n\r\n",
            b"OPTIONS /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
            b"OPTIONS /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: a b, \x01\r\nConnection: close\r\n\r\n",
            b"GET /%%% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ],
    )
    async def test_never_a_proxy_5xx_and_never_down(
        self, make_proxy: MakeProxy, upstream: Upstream, session, request_bytes: bytes
    ) -> None:
        p = await make_proxy(upstream.url)
        raw = await raw_request(p.port, request_bytes)
        status_line = raw.split(b"\r\n", 1)[0]
        assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), raw[:200]
        status = int(status_line.split()[1])
        assert status < 500, raw[:300]
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.count(b"Access-Control-Allow-Origin") <= 1
        assert b"http://evil.test" not in head
        assert b"X-Injected" not in head
        async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200  # and the next request is served normally
        assert "Traceback" not in (await p.logs())

    async def test_concurrent_requests_share_the_pool(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url)

        async def one() -> int:
            async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
                await r.read()
                return int(r.status)

        assert set(await asyncio.gather(*(one() for _ in range(100)))) == {200}


class TestExplain:
    async def test_blocked_exchanges_get_curl_commands(
        self, make_proxy: MakeProxy, upstream: Upstream, session
    ) -> None:
        p = await make_proxy(upstream.url, explain=True)
        headers = {
            "Origin": "http://evil.test",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-custom",
        }
        async with session.options(p.url + "/api/echo", headers=headers) as r:
            assert r.status == 403
        async with session.get(
            p.url + "/api/hello", headers={"Origin": "http://evil.test", "Cookie": "sid=secret"}
        ) as r:
            assert r.status == 200
        async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
        log = await p.logs()
        assert (
            f"reproduce: curl -i -X OPTIONS {p.url}/api/echo -H 'Origin: http://evil.test' "
            "-H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: x-custom'"
        ) in log
        assert f"reproduce: curl -i -X GET {p.url}/api/hello -H 'Origin: http://evil.test'" in log
        assert "secret" not in log
        assert log.count("reproduce:") == 3  # preflight + its PUT, then the GET; allowed stay quiet
