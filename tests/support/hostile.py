"""Hostile peers on loopback: the proxy as its own process (its RSS read from /proc), raw
sockets that send without reading, and upstreams that misbehave on cue. Every loop here
is bounded in time and bytes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import start_proxy

# an upstream's connection: its reader, its writer, and its number (0 for the first)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def rss_mib(pid: int) -> float:
    """The process's resident memory now."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[str]
    port: int

    @property
    def rss(self) -> float:
        return rss_mib(self.proc.pid)


@contextlib.contextmanager
def proxy_process(upstream: str, log: Path, *args: str) -> Iterator[ProxyProcess]:
    """``python -m proxy`` in front of ``upstream`` (``cli.start_proxy``), stopped after."""
    proc = start_proxy(upstream, log, *args)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://"), line + log.read_text()[-2000:]
        yield ProxyProcess(proc, int(line.split()[2].rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def send_unread(port: int, batch: bytes, *, limit: int, seconds: float) -> int:
    """Send ``batch`` again and again without reading, until the proxy stops taking bytes
    (a write blocks for a second), ``limit`` bytes went, or ``seconds`` passed; the bytes
    sent."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    sent, deadline = 0, time.monotonic() + seconds
    try:
        while sent < limit and time.monotonic() < deadline:
            writer.write(batch)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                break  # the proxy stopped reading
            sent += len(batch)
    finally:
        writer.transport.abort()
    return sent


@contextlib.asynccontextmanager
async def raw_upstream(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback upstream running ``handler`` per connection; ``conns`` counts them."""
    conns: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(len(conns))
        try:
            await handler(reader, writer, len(conns) - 1)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", conns
    finally:
        server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response framed by Content-Length (the proxy's own answers): head, body."""
    head = await read_head(reader)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)
