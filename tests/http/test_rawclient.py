"""RawUpstream (the httptools client) against raw loopback servers that misbehave on cue
(tests/support/hostile.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.errors import UpstreamBodyError, UpstreamUnavailable
from proxy.http.rawclient import RawUpstream
from tests.support.hostile import Handler, raw_upstream, read_head


def client(url: str, **kw: Any) -> RawUpstream:
    return RawUpstream(url, connect_timeout=2, read_timeout=2, **kw)


async def fetch(
    c: RawUpstream, method: str = "GET", body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    async def one() -> AsyncIterator[bytes]:
        yield body or b""

    async with c.request(method, "/x", [], one() if body is not None else None) as r:
        data = b""
        while chunk := await r.read():
            data += chunk
        return r.status, r.headers, data


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def answer(response: bytes) -> Handler:
    """A server that answers each connection's first request with ``response``, then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(response)
        await writer.drain()

    return handler


async def test_a_pooled_connection_the_upstream_closed_is_not_used() -> None:
    # a keep-alive response, then the server drops the idle connection
    async with raw_upstream(answer(OK)) as (url, conns):
        c = client(url)
        assert (await fetch(c))[2] == b"ok"
        await asyncio.sleep(0.05)  # the close reaches the pooled connection
        assert (await fetch(c))[2] == b"ok"
        assert len(conns) == 2
        await c.close()


async def test_request_sent_on_a_dead_connection_is_not_replayed_when_not_idempotent() -> None:
    async def handler(reader, writer, n):
        await read_head(reader)
        if n == 0:
            writer.write(OK)
            await writer.drain()
            await asyncio.sleep(0.3)  # idle close arrives only after the POST went out
            return
        await asyncio.sleep(1)

    async with raw_upstream(handler) as (url, conns):
        c = client(url)
        await fetch(c)
        with pytest.raises(UpstreamUnavailable) as info:
            await fetch(c, "POST")
        assert info.value.sent, "a POST that may have reached the upstream is never retried"
        assert len(conns) == 1
        await c.close()


async def test_interim_1xx_is_skipped_and_set_cookie_lines_kept() -> None:
    handler = answer(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    async with raw_upstream(handler) as (url, _):
        c = client(url)
        status, headers, body = await fetch(c)
        assert (status, body) == (200, b"ok")
        assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2; Path=/"]
        assert all(k != "Link" for k, _ in headers)
        await c.close()


async def test_head_response_has_no_body_and_the_connection_is_reused() -> None:
    async def handler(reader, writer, n):
        head = await read_head(reader)
        assert head.startswith(b"HEAD ")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await writer.drain()
        await read_head(reader)
        writer.write(OK)
        await writer.drain()

    async with raw_upstream(handler) as (url, conns):
        c = client(url)
        assert await fetch(c, "HEAD") == (200, [("Content-Length", "10")], b"")
        assert (await fetch(c))[2] == b"ok"
        assert len(conns) == 1
        await c.close()


async def test_connection_close_and_read_until_close() -> None:
    handler = answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    async with raw_upstream(handler) as (url, conns):
        c = client(url)
        assert (await fetch(c))[2] == b"until the end"
        assert (await fetch(c))[2] == b"until the end"
        assert len(conns) == 2  # never reused after Connection: close
        await c.close()


async def test_short_body_is_an_error_not_a_complete_response() -> None:
    handler = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    async with raw_upstream(handler) as (url, _):
        c = client(url)
        with pytest.raises(UpstreamBodyError):
            await fetch(c)
        await c.close()


async def test_reading_pauses_while_the_consumer_is_slow() -> None:
    size = 16 * 1024 * 1024

    async def handler(reader, writer, n):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    async with raw_upstream(handler) as (url, _):
        c = client(url, buffer_limit=256 * 1024)
        async with c.request("GET", "/x", [], None) as r:
            await asyncio.sleep(0.5)  # nobody reads: the client must stop reading too
            held = r._conn.buffered
            assert held < 1024 * 1024, f"{held} bytes buffered for a consumer that reads nothing"
            total = 0
            while chunk := await r.read():
                total += len(chunk)
            assert total == size
        await c.close()
