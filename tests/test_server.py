"""The wiring (proxy/server.py): one idle timeout on both servers, and the upstream
client a reload replaces is closed, later or at shutdown, never leaked."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from proxy import server
from proxy.config.loader import load
from proxy.config.model import Config, Overrides
from proxy.http import fastlane
from proxy.http.rawclient import RawUpstream
from proxy.server import ProxyServer
from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, write_yaml
from tests.support.upstream_app import Upstream

GET = f"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
POST = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"


@pytest.fixture
def short_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "KEEPALIVE_TIMEOUT", 0.3)
    monkeypatch.setattr(fastlane, "SWEEP_INTERVAL", 0.05)


@pytest.mark.parametrize(
    ("lane", "first"),
    [("fast", GET), ("aiohttp", GET), ("fast", POST)],
    ids=["fast lane", "aiohttp's server", "handed over"],
)
async def test_an_idle_connection_closes_after_the_same_timeout_everywhere(
    make_proxy: MakeProxy, upstream: Upstream, short_idle: None, lane: str, first: bytes
) -> None:
    proxy = await make_proxy(upstream.url)
    if lane == "aiohttp":
        assert proxy.server.server is not None
        proxy.server.server.fast = None  # aiohttp's server makes every connection's handler
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(first)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK\r\n")
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(reader.read(), 3)  # the body, then the close
    assert reader.at_eof()
    assert 0.25 < asyncio.get_running_loop().time() - started < 2
    writer.close()


class Recording(RawUpstream):
    def __init__(self, cfg: Config, made: list[Recording]) -> None:
        super().__init__(cfg.target, connect_timeout=1, read_timeout=5)
        self.closed = 0
        made.append(self)

    async def close(self) -> None:
        self.closed += 1
        await super().close()


async def recording_proxy(
    tmp_path: Path, data: Mapping[str, object], made: list[Recording]
) -> ProxyServer:
    """A started proxy whose upstream clients are ``Recording`` ones, from a config file."""
    path = write_yaml(tmp_path / "c.yaml", {"listen": "127.0.0.1:0", **data})
    proxy = ProxyServer(
        load(path, Overrides()),
        config_path=path,
        log_stream=io.StringIO(),
        make_client=lambda cfg: Recording(cfg, made),
    )
    await proxy.start()
    return proxy


async def test_a_replaced_client_is_closed_at_shutdown_not_leaked(
    tmp_path: Path, upstream: Upstream
) -> None:
    made: list[Recording] = []
    proxy = await recording_proxy(tmp_path, {"upstream": upstream.url}, made)
    write_yaml(tmp_path / "c.yaml", {"listen": "127.0.0.1:0", "upstream": upstream.url + "/v2"})
    before = asyncio.all_tasks()
    assert proxy.reload("test")
    retiring = asyncio.all_tasks() - before
    assert len(retiring) == 1  # the one that closes the old client later
    assert [c.closed for c in made] == [0, 0]  # the old one serves exchanges in flight
    await proxy.stop()
    assert [c.closed for c in made] == [1, 1]  # both closed now, not in 60 s
    assert all(t.done() for t in retiring)


async def test_a_replaced_client_is_closed_after_a_while(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "RETIRE_AFTER", 0.05)
    made: list[Recording] = []
    data = {"listen": "127.0.0.1:0", "upstream": upstream.url}
    proxy = await recording_proxy(tmp_path, data, made)
    write_yaml(tmp_path / "c.yaml", {**data, "timeouts": {"read": 5}})
    assert proxy.reload("test")
    await asyncio.sleep(0.2)
    assert [c.closed for c in made] == [1, 0]
    write_yaml(
        tmp_path / "c.yaml", {**data, "timeouts": {"read": 5}, "rules": [{"origins": [ORIGIN]}]}
    )
    assert proxy.reload("rules only")
    assert len(made) == 2  # the same upstream: the client and its pool carry on
    await proxy.stop()
    assert [c.closed for c in made] == [1, 1]
    assert json.dumps(proxy.generation.number) == "3"
