"""Fixtures: a real Flask upstream under Werkzeug, the proxy in-process on a real socket."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from proxy.app import ProxyServer
from proxy.config import Config, Overrides, load
from proxy.upstream import AiohttpUpstream, UpstreamClient
from tests.upstream_app import Upstream, start_upstream

logging.getLogger("werkzeug").setLevel(logging.ERROR)

ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def debug_upstream() -> Iterator[Upstream]:
    up = start_upstream(debug=True)
    yield up
    up.stop()


@dataclass
class RunningProxy:
    server: ProxyServer
    log_stream: io.StringIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def port(self) -> int:
        return self.server.port

    async def logs(self) -> str:
        """The log so far; the exchange's line is written after its last byte is sent."""
        await asyncio.sleep(0.05)
        self.server.log.flush()
        return self.log_stream.getvalue()


MakeProxy = Callable[..., Awaitable[RunningProxy]]


def write_yaml(path: Any, data: dict[str, Any]) -> str:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def upstream_client() -> str:
    """Which upstream client ``make_proxy`` uses: the default one (``"default"``: the
    httptools client), or ``"aiohttp"`` (the fallback without httptools). A module
    overrides this fixture to run its tests with both."""
    return "default"


def client_factory(kind: str) -> Callable[[Config], UpstreamClient] | None:
    if kind == "aiohttp":
        return lambda cfg: AiohttpUpstream(
            cfg.upstream, connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout
        )
    assert kind == "default", kind
    return None


@pytest.fixture
def server_lane() -> str:
    """Which server answers body-less requests: ``"fast"`` (the proxy's own protocol,
    the default) or ``"aiohttp"`` (aiohttp's server answers everything). A module
    overrides this fixture to run its tests on both."""
    return "fast"


@pytest.fixture
async def make_proxy(
    tmp_path: Any, upstream_client: str, server_lane: str
) -> AsyncIterator[MakeProxy]:
    """Start a proxy from a config mapping (``upstream`` defaults to the Flask app)."""
    started: list[RunningProxy] = []

    async def _make(upstream_url: str, **config: Any) -> RunningProxy:
        data = {"listen": "127.0.0.1:0", "upstream": upstream_url, **config}
        data.setdefault(
            "rules",
            [
                {
                    "name": "frontend",
                    "paths": ["/api/*"],
                    "origins": [ORIGIN],
                    "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                    "allow_headers": ["Content-Type", "Authorization", "X-Custom"],
                    "expose_headers": ["X-Request-Id"],
                    "allow_credentials": True,
                    "max_age": 600,
                }
            ],
        )
        path = write_yaml(tmp_path / f"config{len(started)}.yaml", data)
        cfg = load(path, Overrides())
        stream = io.StringIO()
        server = ProxyServer(
            cfg,
            config_path=path,
            log_stream=stream,
            make_client=client_factory(upstream_client),
            fast_lane=server_lane == "fast",
        )
        await server.start()
        running = RunningProxy(server, stream)
        started.append(running)
        return running

    yield _make
    for p in started:
        await p.server.stop()


async def raw_request(port: int, data: bytes, *, limit: float = 5.0) -> bytes:
    """Send bytes as they are (clients refuse CR/LF tricks and merge duplicates)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
