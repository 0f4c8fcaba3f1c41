"""An unreachable upstream explained (issue 5): refused vs timeout vs DNS, the other
loopback family, ports taken by something that is not the app.

The wording itself is tested in tests/diagnosis/test_unreachable.py; here, real sockets: a
Flask app listening on ``::1`` only, a listener whose accept queue is full (connects time
out), a name that does not resolve, and a raw server that answers like macOS AirPlay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from pytest_aiohttp import AiohttpRawServer

from proxy.diagnosis.unreachable import refused_hint
from proxy.http.probe import in_container
from tests.support import ORIGIN
from tests.support.proxy import MakeProxy
from tests.support.upstream_app import start_upstream


async def get_json(url: str) -> tuple[int, dict[str, str], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers={"Origin": ORIGIN}) as r,
    ):
        return r.status, dict(r.headers), json.loads(await r.text())


def _ipv4_localhost() -> bool:
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    return {info[4][0] for info in infos} == {"127.0.0.1"}


async def test_flask_on_ipv6_only_behind_localhost(make_proxy: MakeProxy) -> None:
    """`localhost` is 127.0.0.1 here, the app listens on ::1 only: the 502 says so."""
    assert _ipv4_localhost(), "this test needs localhost to resolve to 127.0.0.1 only"
    app = start_upstream(host="::1")
    try:
        port = app.server.server_port
        p = await make_proxy(f"http://localhost:{port}", upstream_wait=0)
        status, headers, body = await get_json(p.url + "/api/hello")
        assert status == 502
        assert headers["Access-Control-Allow-Origin"] == ORIGIN
        assert headers["X-Cors-Proxy-Error"] == "connection refused"
        assert (
            f"localhost resolves to 127.0.0.1 here; nothing listens on 127.0.0.1 port {port}, "
            f"but [::1]:{port} answers: the dev server listens on IPv6 only" in body["detail"]
        ), body
        assert f"Set upstream to http://[::1]:{port}" in body["detail"]
        assert f"[::1]:{port} answers" in await p.logs()
        # Following the advice works.
        q = await make_proxy(f"http://[::1]:{port}")
        async with aiohttp.ClientSession() as s, s.get(q.url + "/api/hello") as r:
            assert (r.status, await r.json()) == (200, {"hello": "world"})
    finally:
        app.stop()


async def test_nothing_listening_at_all(make_proxy: MakeProxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    p = await make_proxy(f"http://127.0.0.1:{port}", upstream_wait=0)
    status, _, body = await get_json(p.url + "/api/hello")
    assert status == 502
    # CI and most dev machines here are containers: the hint depends on where it runs.
    boxed = in_container()
    assert body["detail"].endswith(
        refused_hint("127.0.0.1", port, tried=["127.0.0.1"], answering=[], in_container=boxed)
    ), body
    assert ("inside this container" in body["detail"]) == boxed


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, its queue already full: new SYNs are dropped, so
    connects time out instead of being refused (a firewall, as far as a client sees)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(2):
                c = socket.socket()
                c.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    c.connect(("127.0.0.1", port))
                fillers.append(c)
            yield port
        finally:
            for c in fillers:
                c.close()


async def test_connect_timeout_is_told_apart_from_refused(make_proxy: MakeProxy) -> None:
    with full_backlog() as port:
        await asyncio.sleep(0.1)
        p = await make_proxy(f"http://127.0.0.1:{port}", timeouts={"connect": 0.5})
        status, headers, body = await get_json(p.url + "/api/hello")
    assert status == 504
    assert headers["X-Cors-Proxy-Error"] == "connect timeout"
    assert f"no connection to 127.0.0.1:{port} within 0.5s" in body["detail"], body
    assert "would have refused at once" in body["detail"]


async def test_dns_failure(make_proxy: MakeProxy) -> None:
    p = await make_proxy("http://no-such-dev-server.invalid:5000")
    status, headers, body = await get_json(p.url + "/api/hello")
    assert status == 502
    assert headers["X-Cors-Proxy-Error"] == "DNS lookup failed"
    assert "the name 'no-such-dev-server.invalid' does not resolve here" in body["detail"], body


async def airplay(request: web.BaseRequest) -> web.Response:
    """What macOS Monterey+ answers on port 5000 when AirPlay Receiver is on."""
    return web.Response(
        status=403,
        headers={
            "Server": "AirTunes/595.13.1",
            "X-Apple-ProcessingTime": "0",
            "X-Apple-RequestReceivedTimestamp": "1",
        },
    )


async def test_airplay_receiver_on_the_port_is_named(
    make_proxy: MakeProxy, aiohttp_raw_server: AiohttpRawServer
) -> None:
    upstream = await aiohttp_raw_server(airplay)
    p = await make_proxy(f"http://127.0.0.1:{upstream.port}")
    async with (
        aiohttp.ClientSession() as s,
        s.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r,
    ):
        assert r.status == 403  # passed through as it is: it is a real answer
        assert r.headers["Server"] == "AirTunes/595.13.1"
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    log = await p.logs()
    assert (
        "is answered by macOS AirPlay Receiver (Server: AirTunes/595.13.1), not by your app" in log
    )
    assert "flask run --port 5001" in log
