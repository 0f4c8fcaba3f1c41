"""The WebSocket bridge on real sockets: a real aiohttp WebSocket app as the upstream."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.support import ORIGIN
from tests.support.proxy import MakeProxy


@pytest.fixture
async def ws_upstream(aiohttp_server: AiohttpServer) -> tuple[str, list[object]]:
    """Echoes text and binary; ``close <code>`` makes it close with that code."""
    seen: list[object] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("close "):
                await ws.close(code=int(msg.data.split()[1]), message=b"asked to")
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        seen.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/api/ws", handler)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", seen


async def test_text_binary_and_close_codes_both_ways(
    make_proxy: MakeProxy, ws_upstream: tuple[str, list[object]]
) -> None:
    url, seen = ws_upstream
    p = await make_proxy(url)
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(p.url + "/api/ws", origin=ORIGIN) as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "hello"
            await ws.send_bytes(b"\x00\xffbinary")
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"\x00\xffbinary")
            await ws.ping(b"are you there")  # answered; the connection stays usable
            await ws.send_str("after ping")
            assert (await ws.receive(timeout=5)).data == "after ping"
            await ws.send_str("close 4001")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4001 or msg.data == 4001
        async with s.ws_connect(p.url + "/api/ws", origin=ORIGIN) as ws:
            await ws.close(code=4002)
        for _ in range(50):
            if 4002 in seen:
                break
            await asyncio.sleep(0.05)
        assert 4002 in seen, seen


async def test_disallowed_origin_is_refused_with_403(
    make_proxy: MakeProxy, ws_upstream: tuple[str, list[object]]
) -> None:
    url, seen = ws_upstream
    p = await make_proxy(url)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(p.url + "/api/ws", origin="http://evil.test")
        assert info.value.status == 403
    assert seen == []  # never reached the upstream


async def test_shutdown_closes_bridged_sockets_with_1001(
    make_proxy: MakeProxy, ws_upstream: tuple[str, list[object]]
) -> None:
    url, _ = ws_upstream
    p = await make_proxy(url)
    async with aiohttp.ClientSession() as s, s.ws_connect(p.url + "/api/ws", origin=ORIGIN) as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "ping"
        stopping = asyncio.ensure_future(p.server.stop())
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
        await asyncio.wait_for(stopping, 10)
