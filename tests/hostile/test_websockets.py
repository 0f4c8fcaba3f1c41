"""WebSockets against hostile pages and many sockets (issue 21 item 8): no hidden cap on
bridged sockets, and the same-origin shortcut only for the proxy's own addresses (a
DNS-rebinding page names its own host in ``Host`` and ``Origin`` alike)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.support.proxy import MakeProxy


@pytest.fixture
async def echo(aiohttp_server: AiohttpServer) -> str:
    """A WebSocket upstream that echoes text."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/api/ws", handler)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


async def test_no_hidden_cap_on_open_sockets(make_proxy: MakeProxy, echo: str) -> None:
    """aiohttp's client session allows 100 connections by default: the 101st upgrade
    waited while 100 idle sockets stayed open."""
    p = await make_proxy(echo)
    async with contextlib.AsyncExitStack() as stack:
        unlimited = aiohttp.TCPConnector(limit=0)  # the test's own client has the same cap
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=unlimited))
        for n in range(110):
            ws = await asyncio.wait_for(
                stack.enter_async_context(session.ws_connect(p.url + "/api/ws")), 5
            )
            await ws.send_str(f"socket {n}")
            assert (await ws.receive(timeout=5)).data == f"socket {n}"


@pytest.mark.parametrize("name", ["evil.example", "rebind.test:80"])
async def test_a_rebinding_page_is_not_the_proxy_itself(
    make_proxy: MakeProxy, echo: str, name: str
) -> None:
    """A page on ``http://evil.example:<port>`` whose name now resolves to the proxy sends
    ``Host`` and ``Origin`` with that name: once "the proxy's own origin", it is refused."""
    p = await make_proxy(echo)
    host = f"{name.split(':')[0]}:{p.port}"
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(p.url + "/api/ws", origin=f"http://{host}", headers={"Host": host})
        assert info.value.status == 403


@pytest.mark.parametrize("own", ["localhost", "127.0.0.1", "[::1]"])
async def test_pages_on_the_proxys_own_address_need_no_rule(
    make_proxy: MakeProxy, echo: str, own: str
) -> None:
    p = await make_proxy(echo)  # listens on 127.0.0.1; the rule lists another origin
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(p.url + "/api/ws", origin=f"http://{own}:{p.port}")
        await ws.send_str("mine")
        assert (await ws.receive(timeout=5)).data == "mine"
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:  # another port: not ours
            await s.ws_connect(p.url + "/api/ws", origin=f"http://{own}:{p.port + 1}")
        assert info.value.status == 403


async def raw_upgrade(port: int, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket upgrade of ``target`` sent as raw bytes (clients refuse an absolute
    target), its 101 read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def test_an_absolute_form_upgrade_reaches_the_path(make_proxy: MakeProxy, echo: str) -> None:
    """``GET http://host/api/ws`` is bridged to the upstream's /api/ws (origin-form), the
    request line's host as ``Host``."""
    p = await make_proxy(echo)
    reader, writer = await raw_upgrade(p.port, "http://localhost/api/ws")
    # a masked text frame "hi" (key 0), echoed back unmasked; then a close, answered
    writer.write(b"\x81\x82\x00\x00\x00\x00hi")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x81\x02hi"
    writer.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # close 1000
    assert (await asyncio.wait_for(reader.read(2), 5))[:1] == b"\x88"
    writer.close()


@pytest.mark.parametrize("server_lane", ["fast", "aiohttp"])
async def test_a_client_gone_without_a_close_frame_ends_the_bridge(
    echo: str, make_proxy: MakeProxy, server_lane: str
) -> None:
    """A client whose TCP connection ends without a WebSocket close frame (a killed tab,
    a dropped laptop lid): the bridge and its upstream socket end with it. Kept
    half-open, both stayed until the upstream sent something (or forever). ``echo``
    comes first so that the proxy stops first, whatever the outcome."""
    p = await make_proxy(echo)
    _, writer = await raw_upgrade(p.port, "/api/ws")
    assert len(p.server.open_sockets) == 2  # the client's leg and the upstream's
    writer.close()
    for _ in range(50):
        if not p.server.open_sockets:
            break
        await asyncio.sleep(0.05)
    assert not p.server.open_sockets, list(p.server.open_sockets)
