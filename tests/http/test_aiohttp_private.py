"""The canary for aiohttp's private attributes (proxy/http/aiohttp_private.py): a new
aiohttp that renames or retypes one fails here, naming it, before the proxy misbehaves."""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections import deque

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion11
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_protocol import RequestHandler

from proxy.http.aiohttp_private import (
    TESTED,
    as_http11,
    handler_arguments,
    queued_bodies,
    upgraded,
    waits_for_request,
)
from tests.support import ROOT


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_the_installed_aiohttp_is_a_tested_one() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("aiohttp"))
    low, high = re.fullmatch(r"aiohttp>=([\d.]+),<([\d.]+)", spec).groups()  # type: ignore[union-attr]
    installed = version(aiohttp.__version__)
    assert version(low) <= installed < version(high), (aiohttp.__version__, spec)
    assert installed[:2] in TESTED, f"aiohttp {aiohttp.__version__}: not a tested minor"
    tested = sorted(TESTED)
    assert (tested[0], (tested[-1][0], tested[-1][1] + 1)) == (version(low), version(high))


async def test_server_keeps_its_loop_and_handler_arguments() -> None:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    server = web.Server(handle, keepalive_timeout=12.5, max_field_size=1234)
    loop, kwargs = handler_arguments(server)
    assert loop is asyncio.get_running_loop(), "web.Server._loop"
    assert kwargs == {"keepalive_timeout": 12.5, "max_field_size": 1234}, "web.Server._kwargs"
    made = server()  # aiohttp's own way of using them
    assert isinstance(made, RequestHandler)
    assert made.keepalive_timeout == 12.5
    mine = RequestHandler(server, loop=loop, **kwargs)
    assert mine.keepalive_timeout == made.keepalive_timeout


async def test_handler_keeps_its_waiter_and_queued_requests() -> None:
    release = asyncio.Event()

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/slow":
            await release.wait()
        await request.read()
        return web.Response(text="ok")

    server = web.Server(handle)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.sleep(0.05)
        (handler,) = server.connections
        assert isinstance(handler._messages, deque), "RequestHandler._messages"
        assert isinstance(handler._waiter, asyncio.Future), "RequestHandler._waiter"
        assert waits_for_request(handler)
        assert queued_bodies(handler) == []
        writer.write(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        )
        await asyncio.sleep(0.05)
        assert not waits_for_request(handler)  # serving /slow
        (body,) = queued_bodies(handler)  # the POST waits behind it, its body read
        assert isinstance(body, aiohttp.StreamReader)
        assert body.is_eof()
        release.set()
        for _ in range(2):
            assert (await asyncio.wait_for(reader.readuntil(b"ok"), 2)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.05)
        assert waits_for_request(handler)
    finally:
        writer.close()
        listener.close()
        await server.shutdown(1)


async def test_a_websocket_sets_the_handlers_payload_parser() -> None:
    prepared = asyncio.Event()

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        prepared.set()
        await ws.receive()
        return ws

    server = web.Server(handle)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/")  # a plain request first
            (handler,) = server.connections
            assert not upgraded(handler), "RequestHandler._payload_parser"
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws"):
                await asyncio.wait_for(prepared.wait(), 2)
                (handler,) = (h for h in server.connections if upgraded(h))
    finally:
        listener.close()
        await server.shutdown(1)


@pytest.mark.parametrize("name", ["_messages", "_waiter", "_payload_parser"])
def test_the_attributes_are_still_slots(name: str) -> None:
    slots = {s for cls in RequestHandler.__mro__ for s in getattr(cls, "__slots__", ())}
    assert name in slots, f"aiohttp's RequestHandler no longer has {name}"


def test_a_request_as_http11_keeps_the_rest() -> None:
    request = make_mocked_request("GET", "/x?y=1", version=HttpVersion(2, 0))
    assert "_version" in vars(request), "BaseRequest._version"
    clone = as_http11(request)
    assert clone.version == HttpVersion11, "BaseRequest._version feeds .version"
    assert request.version == HttpVersion(2, 0)
    assert (clone.method, clone.raw_path) == ("GET", "/x?y=1")
