"""The fast lane (proxy/http/fastlane.py) on real sockets: what it serves itself, what it hands
to aiohttp's server mid-connection, and the connection's life around both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from proxy import generation, server
from proxy.http import fastlane
from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, RunningProxy, raw_request
from tests.support.upstream_app import Upstream

Response = tuple[int, list[tuple[str, str]], bytes]


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """One HTTP/1.1 response, framed by Content-Length or chunked (a test-side parser)."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:] if line)]
    fields = {n.lower(): v for n, v in headers}
    if head or status in (204, 304):
        return status, headers, b""
    if fields.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, headers, body[:-2]
            body = body[:-2]
    return status, headers, await reader.readexactly(int(fields.get("content-length", "0")))


def field(resp: Response, name: str) -> list[str]:
    return [v for n, v in resp[1] if n.lower() == name.lower()]


@pytest.fixture
async def proxy(make_proxy: MakeProxy, upstream: Upstream) -> RunningProxy:
    return await make_proxy(upstream.url)


@pytest.fixture
async def conn(
    proxy: RunningProxy,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    yield reader, writer
    writer.close()


GET = f"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
PREFLIGHT = (
    f"OPTIONS /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
    "Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-custom\r\n\r\n"
).encode()


def post(body: bytes) -> bytes:
    return (
        f"POST /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def lanes(proxy: RunningProxy) -> tuple[int, int]:
    """(connections on the fast lane, connections on aiohttp's server)."""
    server = proxy.server.server
    assert server is not None
    assert server.fast is not None
    return len(server.fast.lanes), len(server.served)


class TestServedHere:
    async def test_pipelined_requests_are_answered_in_order(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(GET + PREFLIGHT + GET.replace(b"/api/hello", b"/api/items/"))
        first, second, third = [await read_response(reader) for _ in range(3)]
        assert first[0] == 200
        assert json.loads(first[2]) == {"hello": "world"}
        assert second[0] == 204
        assert field(second, "Access-Control-Allow-Origin") == [ORIGIN]
        assert "x-custom" in field(second, "Access-Control-Allow-Headers")[0].lower()
        assert third[0] == 200
        assert json.loads(third[2]) == {"items": []}
        assert lanes(proxy) == (1, 0)  # all three on the fast lane, one connection

    async def test_head_204_and_304_carry_no_body(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(GET.replace(b"GET", b"HEAD", 1))
        head = await read_response(reader, head=True)
        assert head[0] == 200
        assert field(head, "Content-Length") == ["18"]
        assert not field(head, "Transfer-Encoding")
        writer.write(b'GET /api/etag HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\n\r\n')
        cached = await read_response(reader)
        assert cached[0] == 304
        assert not field(cached, "Transfer-Encoding")
        writer.write(GET)  # the connection is still in step: no stray body bytes
        assert (await read_response(reader))[0] == 200

    async def test_stream_without_length_is_chunked_and_headers_come_first(
        self, proxy, conn
    ) -> None:
        reader, writer = conn
        writer.write(b"GET /api/sse?gap=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        # the status line arrives before the first event is due (SSE's onopen)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.4)
        assert b"Transfer-Encoding: chunked" in head
        writer.write(GET)
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert rest.count(b"data: event") == 3
        assert (await read_response(reader))[0] == 200

    async def test_date_is_added_and_connection_close_is_honoured(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(PREFLIGHT.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
        resp = await read_response(reader)
        assert resp[0] == 204
        assert field(resp, "Connection") == ["close"]
        assert field(resp, "Date")
        assert field(resp, "Date")[0].endswith(" GMT")
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the proxy

    async def test_half_closed_client_gets_its_answers(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(GET + GET)
        writer.write_eof()
        assert [(await read_response(reader))[0] for _ in range(2)] == [200, 200]
        assert await asyncio.wait_for(reader.read(), 2) == b""

    async def test_client_leaving_mid_download_leaves_the_proxy_serving(
        self, proxy: RunningProxy
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /api/big?n=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(1 << 20)
        writer.transport.abort()
        reply = await raw_request(
            proxy.port, GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        )
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")

    async def test_a_bug_is_a_500_and_a_log_line_not_a_hang(
        self, proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        forwarder = proxy.server.forwarder
        assert forwarder is not None

        async def broken(*args: object) -> None:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(forwarder, "forward", broken)
        reply = await raw_request(proxy.port, GET)
        assert reply.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"Connection: close" in reply
        assert b"internal error" in reply
        assert "internal error on GET /api/hello: RuntimeError('simulated bug')" in (
            await proxy.logs()
        )


class TestHandedOver:
    async def test_a_body_moves_the_connection_to_aiohttp(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(GET)
        assert (await read_response(reader))[0] == 200
        assert lanes(proxy) == (1, 0)
        writer.write(post(b"hello body") + GET)  # pipelined behind the body
        echoed = await read_response(reader)
        assert echoed[0] == 200
        assert json.loads(echoed[2])["length"] == len(b"hello body")
        assert field(echoed, "Access-Control-Allow-Origin") == [ORIGIN]
        assert (await read_response(reader))[0] == 200
        assert lanes(proxy) == (0, 1)

    async def test_handover_waits_for_the_answer_in_progress(self, proxy, conn) -> None:
        reader, writer = conn
        slow = b"GET /api/slow?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(slow + post(b"x" * 100_000))
        first, second = await read_response(reader), await read_response(reader)
        assert json.loads(first[2]) == {"slow": True}
        assert json.loads(second[2])["length"] == 100_000

    @pytest.mark.parametrize(
        ("request_bytes", "status"),
        [
            (b"GET /api/hello HTTP/1.0\r\nHost: x\r\n\r\n", 200),  # HTTP/1.0: aiohttp's
            (b"GET /api/hello HTTP/1.1\r\n\r\n", 400),  # no Host: aiohttp refuses it
            (b"GET /api/hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
            (b"GET /api/hello HTTP/1.1\nHost: x\n\n", 400),  # bare LF lines: refused too
            (b"GET /api/hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
            (b"GET /__cors-proxy__/health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
            (
                b"POST /api/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                b"Content-Length: 2\r\n\r\nhi",
                100,
            ),
        ],
    )
    async def test_edges_get_aiohttp_answers(
        self, proxy: RunningProxy, request_bytes: bytes, status: int
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(request_bytes)
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line.split(b" ")[1] == str(status).encode(), line
        finally:
            writer.close()
        assert lanes(proxy)[0] == 0

    async def test_websocket_upgrade_after_plain_requests(self, proxy: RunningProxy, conn) -> None:
        reader, writer = conn
        writer.write(GET)
        assert (await read_response(reader))[0] == 200
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        # the Flask upstream has no WebSocket endpoint: aiohttp's bridge answers for it
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 ")
        assert lanes(proxy)[0] == 0


class TestLifecycle:
    async def test_idle_keep_alive_connections_expire(
        self, make_proxy: MakeProxy, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(server, "KEEPALIVE_TIMEOUT", 0.2)
        monkeypatch.setattr(fastlane, "SWEEP_INTERVAL", 0.1)
        proxy = await make_proxy(upstream.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(GET)
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()

    async def test_shutdown_finishes_answers_in_progress(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        proxy = await make_proxy(upstream.url)
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", proxy.port)
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", proxy.port)
        idle_w.write(GET)
        assert (await read_response(idle_r))[0] == 200
        busy_w.write(b"GET /api/slow?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(proxy.server.stop())
        assert await asyncio.wait_for(idle_r.read(), 2) == b""  # idle: closed at once
        slow = await read_response(busy_r)
        assert slow[0] == 200
        assert field(slow, "Connection") == ["close"]
        await stopping
        busy_w.close()
        idle_w.close()


def fast_server(proxy: RunningProxy) -> fastlane.FastServer[generation.RequestPlan]:
    aio = proxy.server.server
    assert aio is not None
    assert aio.fast is not None
    return aio.fast


def count_decisions(proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests the fast lane hands to the proxy to answer without a task."""
    decided: list[str] = []
    handler = proxy.server
    decide = handler.answer_now

    def spy(
        plan: generation.RequestPlan,
        request: fastlane.FastRequest,
        response: fastlane.FastResponse,
    ) -> object:
        decided.append(request.method)
        return decide(plan, request, response)

    monkeypatch.setattr(handler, "answer_now", spy)
    return decided


def without_date(resp: Response) -> Response:
    return resp[0], [(n, v) for n, v in resp[1] if n != "Date"], resp[2]


def cached(proxy: RunningProxy) -> list[bytes]:
    """The request heads in the current generation's request cache."""
    return [raw for raw, _ in proxy.server.generation.requests.items()]


def replayable(proxy: RunningProxy) -> list[bytes]:
    """The request heads whose answer is given again without a decision."""
    items = proxy.server.generation.requests.items()
    return [raw for raw, plan in items if plan.replay is not None]


def preflight_lines(log: str, status: int = 204) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(f"OPTIONS /api/echo {status}")]


class TestRequestCache:
    """A request head seen before is not parsed again (the generation's request cache),
    and a preflight whose exact head got a 204 gets the same 204 again without a
    decision (its plan's replay)."""

    async def test_a_repeated_head_is_parsed_once(
        self, proxy, conn, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        parsed: list[bytes] = []
        parse = fastlane.parse_head

        def spy(raw: bytes) -> fastlane.Head | None:
            parsed.append(raw)
            return parse(raw)

        monkeypatch.setattr(server, "parse_head", spy)
        reader, writer = conn
        other = GET.replace(b"Host: x", b"Host: y")
        writer.write(GET + GET + other + GET)
        answers = [await read_response(reader) for _ in range(4)]
        assert parsed == [GET, other]
        for status, headers, body in answers:
            assert status == 200
            assert json.loads(body) == {"hello": "world"}
            assert (("Access-Control-Allow-Origin", ORIGIN)) in headers
        plan = proxy.server.generation.requests.get(GET)
        assert plan is not None
        with pytest.raises(TypeError):  # shared by every repeat: read-only
            plan.head.headers["Origin"] = "http://evil.example"

    async def test_the_same_head_gets_the_same_answer_and_its_own_log_line(
        self, proxy, conn, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        decided = count_decisions(proxy, monkeypatch)
        reader, writer = conn
        writer.write(PREFLIGHT)
        first = await read_response(reader)
        writer.write(PREFLIGHT + PREFLIGHT)  # pipelined
        again = [await read_response(reader) for _ in range(2)]
        other_r, other_w = await asyncio.open_connection("127.0.0.1", proxy.port)
        other_w.write(PREFLIGHT)  # the cache is the generation's, for every connection
        again.append(await read_response(other_r))
        other_w.close()
        assert decided == ["OPTIONS"]
        assert replayable(proxy) == [PREFLIGHT]
        assert first[0] == 204
        assert field(first, "Access-Control-Allow-Origin") == [ORIGIN]
        for resp in again:
            assert without_date(resp) == without_date(first)  # same fields, same order
            assert field(resp, "Date")[0].endswith(" GMT")
        lines = preflight_lines(await proxy.logs())
        assert len(lines) == 4, lines  # one line per exchange, replayed or not
        for line in lines:
            assert "cors=preflight-ok[frontend]" in line
            assert "| for PUT with x-custom" in line

    async def test_other_heads_are_decided_and_denials_never_replayed(
        self, proxy, conn, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        decided = count_decisions(proxy, monkeypatch)
        reader, writer = conn
        evil = PREFLIGHT.replace(ORIGIN.encode(), b"http://evil.example")
        other_headers = PREFLIGHT.replace(b"x-custom", b"authorization")
        for request in (evil, evil, other_headers, other_headers):
            writer.write(request)
        statuses = [(await read_response(reader))[0] for _ in range(4)]
        assert statuses == [403, 403, 204, 204]
        assert decided == ["OPTIONS"] * 3  # both denials, the first of the other heads
        assert replayable(proxy) == [other_headers]
        assert cached(proxy) == [evil, other_headers]  # parsed once each

    async def test_long_heads_are_not_kept_and_a_closing_answer_still_closes(
        self, proxy, conn, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        closing = PREFLIGHT.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
        monkeypatch.setattr(generation, "LARGEST_HEAD", len(closing))
        decided = count_decisions(proxy, monkeypatch)
        reader, writer = conn
        long_head = closing.replace(b"Connection: close", b"X-Pad: " + b"1" * 20)
        writer.write(long_head + long_head)
        assert [(await read_response(reader))[0] for _ in range(2)] == [204, 204]
        assert cached(proxy) == []  # longer than LARGEST_HEAD: parsed and decided each time
        assert decided == ["OPTIONS"] * 2
        replies = [await raw_request(proxy.port, closing) for _ in range(2)]
        assert cached(proxy) == replayable(proxy) == [closing]
        assert decided == ["OPTIONS"] * 3  # the second closing head was answered again
        for reply in replies:  # both close the connection, and say so
            assert reply.startswith(b"HTTP/1.1 204 No Content\r\n")
            assert b"\r\nConnection: close\r\n" in reply

    async def test_the_request_cache_is_bounded(
        self, make_proxy: MakeProxy, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(generation, "REQUESTS", 2)
        proxy = await make_proxy(upstream.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for n in range(5):
            writer.write(PREFLIGHT.replace(b"Host: x", f"Host: x{n}".encode()))
            assert (await read_response(reader))[0] == 204
            assert 1 <= len(proxy.server.generation.requests) <= 2
        writer.close()

    async def test_a_reload_decides_again(self, proxy, conn) -> None:
        reader, writer = conn
        writer.write(PREFLIGHT)
        assert (await read_response(reader))[0] == 204
        path = proxy.server.config_path
        assert path is not None
        data = yaml.safe_load(await asyncio.to_thread(Path(path).read_text))
        data["rules"][0]["origins"] = ["http://other.example"]
        await asyncio.to_thread(Path(path).write_text, yaml.safe_dump(data))
        assert proxy.server.reload("test")
        writer.write(PREFLIGHT)
        denied = await read_response(reader)
        assert denied[0] == 403
        assert not field(denied, "Access-Control-Allow-Origin")
        assert replayable(proxy) == []  # a new generation, a new cache; denials never replay
        assert cached(proxy) == [PREFLIGHT]
        assert len(preflight_lines(await proxy.logs(), 403)) == 1

    async def test_json_log_lines_carry_their_own_time(
        self, make_proxy: MakeProxy, upstream: Upstream
    ) -> None:
        proxy = await make_proxy(upstream.url, log_format="json")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(PREFLIGHT * 3)
        assert [(await read_response(reader))[0] for _ in range(3)] == [204] * 3
        writer.close()
        records = [json.loads(line) for line in (await proxy.logs()).splitlines()]
        records = [r for r in records if r.get("method") == "OPTIONS"]
        assert len(records) == 3
        assert {r["cors"] for r in records} == {"preflight-ok"}
        assert {r["note"] for r in records} == {"for PUT with x-custom"}
        assert all(isinstance(r["ms"], float) and 0 <= r["ms"] < 1000 for r in records)


@pytest.mark.parametrize(
    "request_bytes",
    [
        GET,
        PREFLIGHT,
        b"GET /api/redirect HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/status/503 HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n",
    ],
    ids=["get", "preflight", "redirect", "denied-503"],
)
async def test_both_servers_answer_alike(
    make_proxy: MakeProxy, upstream: Upstream, request_bytes: bytes
) -> None:
    """The fast lane and aiohttp's server send the same status, fields and body
    (``Server`` and ``Date`` aside: aiohttp adds its own Server to the proxy's answers)."""
    answers = []
    for lane in (True, False):
        proxy = await make_proxy(upstream.url)
        assert proxy.server.server is not None
        if not lane:
            proxy.server.server.fast = None  # the factory then makes aiohttp handlers
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(request_bytes)
        status, headers, body = await read_response(reader)
        writer.close()
        kept = sorted((n.lower(), v) for n, v in headers if n.lower() not in ("server", "date"))
        answers.append((status, kept, body))
    assert answers[0] == answers[1]


async def test_upstream_header_bytes_pass_unchanged(make_proxy: MakeProxy) -> None:
    """A non-ASCII byte in an upstream field (latin-1 from an old app) reaches the client
    as the same byte, not re-encoded as UTF-8."""
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Name: caf\xe9\r\n"
        b'Content-Disposition: attachment; filename="r\xe9sum\xe9.txt"\r\n\r\nok'
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    raw_upstream = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = raw_upstream.sockets[0].getsockname()[1]
    try:
        proxy = await make_proxy(f"http://127.0.0.1:{port}")
        got = await raw_request(
            proxy.port, b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    finally:
        raw_upstream.close()
    assert b"\r\nX-Name: caf\xe9\r\n" in got
    assert b'filename="r\xe9sum\xe9.txt"' in got
    assert got.endswith(b"\r\n\r\nok")
