"""Stopping: the shutdown line names what it waits for, a second Ctrl-C stops at once,
SIGTERM stays graceful, and every exchange gets its line, including those cut off
(issue 17 item 4)."""

from __future__ import annotations

import signal
import threading
import time

import aiohttp
import pytest

from tests.support import ORIGIN
from tests.support.cli import get
from tests.support.devserver import Supervised
from tests.support.proxy import MakeProxy
from tests.support.upstream_app import Upstream


def slow_request(url: str, into: list[object]) -> threading.Thread:
    def fetch() -> None:
        try:
            into.append(get(url)[0])
        except OSError as exc:  # the connection cut at shutdown
            into.append(exc)

    t = threading.Thread(target=fetch)
    t.start()
    return t


def test_second_ctrl_c_stops_at_once_with_a_line_per_cut_off_exchange(upstream: Upstream) -> None:
    s = Supervised("--upstream", upstream.url)
    results: list[object] = []
    threads = [slow_request(s.url + f"/api/slow?s={n}", results) for n in (4, 4.5)]
    time.sleep(0.5)
    s.p.send_signal(signal.SIGINT)
    line = s.wait_for("shutting down")
    assert line.startswith("shutting down: finishing 2 in-flight exchanges: GET /api/slow?s=4")
    assert "GET /api/slow?s=4 (" in line  # in either order: the two arrive together
    assert "GET /api/slow?s=4.5 (" in line
    assert line.endswith("(up to 5 s; Ctrl-C again to stop at once)")
    t0 = time.monotonic()
    s.p.send_signal(signal.SIGINT)
    assert s.wait() == 130
    assert time.monotonic() - t0 < 2
    for t in threads:
        t.join(10)
    for n in (4, 4.5):
        cut = s.exchange("GET", f"/api/slow?s={n}")
        assert "cut off at shutdown (a second Ctrl-C)" in cut, cut
    assert len(results) == 2


def test_sigterm_stays_graceful(upstream: Upstream) -> None:
    s = Supervised("--upstream", upstream.url)
    results: list[object] = []
    t = slow_request(s.url + "/api/slow?s=1", results)
    time.sleep(0.3)
    s.p.send_signal(signal.SIGTERM)
    line = s.wait_for("shutting down")
    assert "finishing 1 in-flight exchange: GET /api/slow?s=1 (" in line
    assert "Ctrl-C again" not in line
    s.p.send_signal(signal.SIGTERM)  # a second SIGTERM changes nothing
    assert s.wait() == 0
    t.join(5)
    assert results == [200]
    assert s.exchange("GET", "/api/slow?s=1").startswith("GET /api/slow?s=1 200 ")


def test_nothing_in_flight_says_so_briefly(upstream: Upstream) -> None:
    s = Supervised("--upstream", upstream.url)
    s.p.send_signal(signal.SIGINT)
    assert s.wait() == 0
    assert "shutting down" in s.lines


async def test_a_stream_cut_off_at_shutdown_gets_its_line(
    make_proxy: MakeProxy, upstream: Upstream
) -> None:
    p = await make_proxy(upstream.url)
    p.server.shutdown_timeout = 0.3
    url = p.url + "/api/sse?gap=1"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Origin": ORIGIN}) as resp,
    ):
        assert resp.status == 200
        await resp.content.readline()  # the first event is through
        started = time.monotonic()
        await p.server.stop()
        assert time.monotonic() - started < 2
    logs = await p.logs()
    line = next(x for x in logs.splitlines() if x.startswith("GET /api/sse?gap=1 "))
    assert line.startswith("GET /api/sse?gap=1 200 origin=http://localhost:3000 ")
    assert "cut off at shutdown after 0.3 s" in line


async def test_failed_websocket_upgrades_say_why(make_proxy: MakeProxy, upstream: Upstream) -> None:
    dead = await make_proxy("http://127.0.0.1:9")  # nothing listens on the discard port
    live = await make_proxy(upstream.url)  # Flask answers the handshake with a 404
    async with aiohttp.ClientSession() as session:
        for proxy, origin, status in ((dead, ORIGIN, 502), (live, ORIGIN, 404),
                                      (live, "http://evil.test", 403)):  # fmt: skip
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(proxy.url + "/api/ws", origin=origin)
            assert refused.value.status == status
    dead_line = next(x for x in (await dead.logs()).splitlines() if "/api/ws" in x)
    assert dead_line.startswith("GET /api/ws 502 ")
    assert "upstream http://127.0.0.1:9: connection refused" in dead_line
    lines = [x for x in (await live.logs()).splitlines() if "/api/ws" in x]
    assert "refused the WebSocket handshake: 404" in lines[0]
    assert lines[1].startswith("GET /api/ws 403 origin=http://evil.test cors=ws-denied")
    assert "WebSocket origin 'http://evil.test' is not allowed by rule 'frontend'" in lines[1]
