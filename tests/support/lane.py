"""The fast lane on fake transports, without a socket (the way uvicorn tests its
protocols): a client transport that records what the lane writes and lets a test pause
and resume writing, and an upstream that records request heads and answers on cue."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.config.loader import load
from proxy.config.model import Overrides
from proxy.generation import RequestPlan
from proxy.http.fastlane import FastLane, FastServer
from proxy.http.rawclient import RawUpstream
from proxy.server import KEEPALIVE_TIMEOUT, ProxyServer
from tests.support import ORIGIN

UPSTREAM = "http://127.0.0.1:9"  # never connected to: the transports are fake
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
OK_BODY = b'{"hello":"world"}'


class FakeTransport:
    """One side of a connection: records writes; ``close``/``abort`` end it, and the
    protocol hears of it on the next loop turn, as with a real transport."""

    def __init__(self, protocol: asyncio.BaseProtocol, peer: tuple[str, int]) -> None:
        self.protocol = protocol
        self.peer = peer
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.written += data
        self.writes += 1

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self._end()

    def abort(self) -> None:
        self.aborted = True
        self._end()

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def take(self) -> bytes:
        """What was written since the last take."""
        data, self.written = bytes(self.written), bytearray()
        return data


@dataclass
class FakeUpstream:
    """The upstream's side: each connection records the request heads written to it and
    answers each with ``reply`` on the next loop turn (None: the test answers with
    ``answer``)."""

    reply: bytes | None = OK + OK_BODY
    requests: list[bytes] = field(default_factory=list)
    connections: list[FakeTransport] = field(default_factory=list)

    async def open(self, factory: Callable[[], asyncio.Protocol]) -> None:
        conn = factory()
        transport = _UpstreamTransport(conn, self)
        self.connections.append(transport)
        conn.connection_made(transport)  # type: ignore[arg-type]

    def answer(self, data: bytes, conn: int = -1) -> None:
        """The upstream sends ``data`` on its ``conn``-th connection."""
        self.connections[conn].protocol.data_received(data)  # type: ignore[attr-defined]


class _UpstreamTransport(FakeTransport):
    def __init__(self, protocol: asyncio.Protocol, upstream: FakeUpstream) -> None:
        super().__init__(protocol, ("127.0.0.1", 9))
        self.conn = protocol
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        super().write(data)
        self.upstream.requests.append(data)
        if self.upstream.reply is not None:
            asyncio.get_running_loop().call_soon(self.conn.data_received, self.upstream.reply)


@dataclass
class Lane:
    """A proxy (never started: no socket) whose fast lane serves one fake client."""

    proxy: ProxyServer
    server: FastServer[RequestPlan]
    lane: FastLane[RequestPlan]
    client: FakeTransport
    upstream: FakeUpstream
    log: io.StringIO

    def send(self, data: bytes) -> None:
        self.lane.data_received(data)

    def logs(self) -> list[str]:
        self.proxy.log.flush()
        return self.log.getvalue().splitlines()

    async def turn(self, n: int = 10) -> None:
        """Let the loop run ``n`` turns (the upstream answers on the next one)."""
        for _ in range(n):
            await asyncio.sleep(0)


def make_lane(
    upstream: FakeUpstream | None = None,
    *,
    origins: tuple[str, ...] = (ORIGIN,),
    peer: tuple[str, int] = ("127.0.0.1", 50000),
    **overrides: Any,
) -> Lane:
    """A connected fast lane (call inside a running loop); the proxy's own rule is the
    one ``--origin`` makes."""
    up = upstream or FakeUpstream()
    flags = Overrides(upstream=UPSTREAM, origins=origins, listen="127.0.0.1:0", **overrides)
    cfg = load(None, flags)
    log = io.StringIO()

    def client(cfg: Any) -> RawUpstream:
        return RawUpstream(UPSTREAM, connect_timeout=5, read_timeout=30, opener=up.open)

    proxy = ProxyServer(cfg, overrides=flags, log_stream=log, make_client=client)
    server = FastServer(proxy, keepalive_timeout=KEEPALIVE_TIMEOUT)
    lane = server.make()
    transport = FakeTransport(lane, peer)
    lane.connection_made(transport)  # type: ignore[arg-type]
    return Lane(proxy, server, lane, transport, up, log)
