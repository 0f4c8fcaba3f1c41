"""Hostile or buggy upstreams (issue 21 items 11-14): a response is relayed as it was
sent and never merged with another, a connection is reused only between messages,
trailers stay trailers, the response head is bounded, and retries are as documented.
Raw asyncio upstreams on loopback that misbehave on cue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import ORIGIN
from tests.support.hostile import proxy_process, raw_upstream, read_head, read_response
from tests.support.proxy import MakeProxy, RunningProxy

GET = f"GET /api/x HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
FIRST = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-First: 1\r\n\r\nfirst"
SECOND = (
    b"HTTP/1.1 302 Found\r\nContent-Length: 6\r\nLocation: http://evil.test/\r\n"
    b"Set-Cookie: session=stolen\r\n\r\nsecond"
)


async def ask(proxy: RunningProxy, request: bytes = GET) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(request)
        if request.startswith(b"HEAD "):
            return await asyncio.wait_for(read_head(reader), 5), b""
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


async def test_a_second_unrequested_response_is_never_relayed_nor_reused(
    make_proxy: MakeProxy,
) -> None:
    async def two_answers(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        while True:
            await read_head(reader)
            writer.write(FIRST + SECOND)  # one read: both reach the proxy at once

    async with raw_upstream(two_answers) as (url, conns):
        proxy = await make_proxy(url)
        head, body = await ask(proxy)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert (body, head.count(b"Content-Length")) == (b"first", 1)
        assert b"Set-Cookie" not in head
        assert b"Location" not in head
        head, body = await ask(proxy)  # not the leftover, not a 502
        assert (head.split(b"\r\n")[0], body) == (b"HTTP/1.1 200 OK", b"first")
    assert len(conns) == 2  # the connection that sent too much was never reused


async def test_data_on_an_idle_pooled_connection_closes_it(make_proxy: MakeProxy) -> None:
    async def then_stale(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_head(reader)
        writer.write(FIRST)
        await asyncio.sleep(0.1)
        writer.write(SECOND)  # while the connection sits idle in the proxy's pool
        await read_head(reader)
        writer.write(FIRST)

    async with raw_upstream(then_stale) as (url, conns):
        proxy = await make_proxy(url)
        assert (await ask(proxy))[1] == b"first"
        await asyncio.sleep(0.3)
        head, body = await ask(proxy)
        assert (head.split(b"\r\n")[0], body) == (b"HTTP/1.1 200 OK", b"first")
    assert len(conns) == 2  # nginx closes an idle connection that became readable: so do we


async def test_trailers_are_never_headers(make_proxy: MakeProxy) -> None:
    async def trailers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
            b"2\r\nok\r\n0\r\nSet-Cookie: session=evil\r\nLocation: http://evil.test/\r\n\r\n"
        )

    async with raw_upstream(trailers) as (url, _):
        proxy = await make_proxy(url)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(GET)
        head = await asyncio.wait_for(read_head(reader), 5)
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Set-Cookie" not in head + rest
    assert b"evil" not in head + rest
    assert rest == b"2\r\nok\r\n0\r\n\r\n"


async def test_a_huge_upstream_head_is_a_502_not_relayed(tmp_path: Path) -> None:
    """nginx: "upstream sent too big header". 50 MB in one header field used to be read
    and relayed in full."""
    sent = 0

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        nonlocal sent
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
        for _ in range(50):
            writer.write(b"a" * (1 << 20))
            await writer.drain()
            sent += 1 << 20
        writer.write(b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_upstream(huge) as (url, _):
        with proxy_process(url, tmp_path / "log") as proxy:
            before = proxy.rss
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(GET)
            head, body = await asyncio.wait_for(read_response(reader), 10)
            grown = proxy.rss - before
            writer.close()
    assert head.startswith(b"HTTP/1.1 502 "), head
    assert b"X-Cors-Proxy-Error: upstream sent too big header" in head
    assert b"too big" in body
    assert sent < 50 << 20  # the proxy hung up before the upstream was done
    assert grown < 30, f"RSS grew {grown:.0f} MiB"


@pytest.mark.parametrize(("method", "sends"), [("GET", 3), ("HEAD", 3), ("PUT", 1), ("DELETE", 1)])
async def test_retries_are_as_documented(make_proxy: MakeProxy, method: str, sends: int) -> None:
    """README: a request that may have reached the upstream is never sent twice, but for
    a safe method without a body, sent again at most twice more, whatever the pool did."""
    seen: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        first = await read_head(reader)
        if first.startswith(b"GET /warm "):  # the pooled connection the test begins on
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            first = await read_head(reader)
        seen.append(first)  # read it, then hang up without a byte of answer

    async with raw_upstream(hang_up) as (url, _):
        proxy = await make_proxy(url, upstream_wait=5)
        head, _ = await ask(proxy, b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        head, _ = await ask(proxy, GET.replace(b"GET", method.encode(), 1))
    assert head.startswith(b"HTTP/1.1 502 "), head
    assert len(seen) == sends, seen
