"""Hostile clients (issue 21 items 1-4 and 10): whatever one client sends, the proxy's
memory stays bounded in bytes (its RSS, read from /proc, as a ceiling) and its sockets
are let go on time. Raw sockets on loopback; every loop bounded in time and bytes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from proxy import server
from proxy.http import fastlane
from tests.support import ORIGIN
from tests.support.hostile import (
    proxy_process,
    raw_upstream,
    read_head,
    read_response,
    send_unread,
)
from tests.support.proxy import MakeProxy
from tests.support.upstream_app import Upstream

PREFLIGHT = (
    f"OPTIONS /api/x HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
    "Access-Control-Request-Method: PUT\r\n\r\n"
).encode()
GET = f"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
MIB = 1 << 20


async def test_huge_joined_origins_are_never_kept(tmp_path: Path) -> None:
    """100 Origin lines of 31 KB (aiohttp's server takes 128 fields of 32 KiB) join into
    3 MB: every table that kept it made 300 such preflights cost 2.7 GB, for good."""
    head = b"OPTIONS /api/x HTTP/1.1\r\nHost: x\r\nAccess-Control-Request-Method: PUT\r\n"
    lines = b"".join(b"Origin: http://%d.%s.test\r\n" % (n, b"o" * 31000) for n in range(100))
    with proxy_process("http://127.0.0.1:9", tmp_path / "log") as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(PREFLIGHT)
        await read_head(reader)
        before = proxy.rss
        for n in range(40):  # 124 MB in all, one at a time, each its own origins
            writer.write(head + b"Origin: http://%d.test\r\n" % n + lines + b"\r\n")
            answer, _ = await asyncio.wait_for(read_response(reader), 10)
            assert answer.startswith(b"HTTP/1.1 403 ")
        grown = proxy.rss - before
        writer.close()
    assert grown < 40, f"RSS grew {grown:.0f} MiB"
    line = next(x for x in (tmp_path / "log").read_text().splitlines() if "403" in x)
    assert len(line) < 2000  # the log shows the cut origin, not 3 MB


async def test_preflights_to_a_client_that_never_reads(tmp_path: Path) -> None:
    """A client pipelines preflights and reads nothing: the proxy stops answering while
    its writes are paused and stops reading, instead of queueing answers in memory."""
    with proxy_process("http://127.0.0.1:9", tmp_path / "log") as proxy:
        before = proxy.rss
        sent = await send_unread(proxy.port, PREFLIGHT * 1000, limit=80 * MIB, seconds=6)
        grown = proxy.rss - before
    assert sent < 40 * MIB, f"the proxy took {sent / MIB:.0f} MiB from a client reading nothing"
    assert grown < 30, f"RSS grew {grown:.0f} MiB"


async def test_pipelined_gets_from_a_slow_reader(tmp_path: Path) -> None:
    """A client pipelines GETs as fast as it can and reads slowly: reading resumes only
    once the unserved requests are below the read-ahead limit, not after every answer."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with raw_upstream(answer) as (url, _):
        with proxy_process(url, tmp_path / "log") as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            sent, batch = 0, GET * 2000
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and sent < 200 * MIB:
                writer.write(batch)
                try:
                    await asyncio.wait_for(writer.drain(), 0.05)
                    sent += len(batch)
                except TimeoutError:
                    pass
                await reader.read(4096)  # slowly
            rss = proxy.rss
            writer.transport.abort()
    assert sent < 40 * MIB, f"the proxy took {sent / MIB:.0f} MiB of requests ahead"
    assert rss < 150, f"RSS {rss:.0f} MiB"


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    # raising=False: on code without these deadlines the tests fail on what they check
    for name in ("HEAD_TIMEOUT", "SEND_TIMEOUT", "HELD_TIMEOUT"):
        monkeypatch.setattr(server, name, 0.5, raising=False)
    monkeypatch.setattr(fastlane, "SWEEP_INTERVAL", 0.1)


async def test_a_trickled_head_is_cut_at_its_deadline(
    make_proxy: MakeProxy, upstream: Upstream, short_deadlines: None
) -> None:
    """Each byte used to refresh the idle timer: a head trickled a byte at a time held
    its socket forever (nginx: client_header_timeout)."""
    proxy = await make_proxy(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in GET[:-2]:  # 3 s for the whole head, never its last CRLF
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)

    started = time.monotonic()
    sender = asyncio.ensure_future(trickle())
    try:
        assert await asyncio.wait_for(reader.read(), 2.5) == b""  # closed, not answered
    finally:
        sender.cancel()
    assert time.monotonic() - started < 2
    writer.close()


@pytest.mark.parametrize("lane", ["fast", "aiohttp"])
async def test_a_client_that_never_reads_is_cut_after_the_send_timeout(
    make_proxy: MakeProxy, upstream: Upstream, short_deadlines: None, lane: str
) -> None:
    """A client asks for a large body and reads nothing: after the send timeout the proxy
    cuts it (nginx: send_timeout) and lets the upstream connection go."""
    proxy = await make_proxy(upstream.url)
    if lane == "aiohttp":
        assert proxy.server.server is not None
        proxy.server.server.fast = None
    size = 32 * MIB
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"GET /api/big?n={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await asyncio.sleep(2)  # read nothing: the proxy's writes pause, then time out
    got = 0
    try:
        async with asyncio.timeout(10):
            while chunk := await reader.read(1 << 20):
                got += len(chunk)
    except ConnectionResetError:
        pass
    writer.close()
    assert got < size, "the whole body came: the connection was never cut"
    log = await proxy.logs()
    assert "GET /api/big" in log


async def test_a_held_connection_times_out(
    make_proxy: MakeProxy, upstream: Upstream, short_deadlines: None
) -> None:
    """Under limits.max_connections a connection waits, accepted but unread: no longer
    than the held timeout."""
    proxy = await make_proxy(upstream.url, limits={"max_connections": 1})
    busy_r, busy_w = await asyncio.open_connection("127.0.0.1", proxy.port)
    busy_w.write(b"GET /api/slow?s=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    held_r, held_w = await asyncio.open_connection("127.0.0.1", proxy.port)
    held_w.write(GET)
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):  # a reset: its request was never read
        assert await asyncio.wait_for(held_r.read(), 2.5) == b""  # closed, never served
    assert time.monotonic() - started < 2
    assert (await asyncio.wait_for(read_head(busy_r), 5)).startswith(b"HTTP/1.1 200")
    busy_w.close()
    held_w.close()
