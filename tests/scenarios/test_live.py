"""Live development (issue 5): reloads, restarts, faults and limits never get in the way.

Everything runs on loopback with real servers: the Flask app under Werkzeug (restarted
on its port as the reloader does), raw asyncio servers that misbehave on cue, an aiohttp
app for WebSockets; the proxy in-process (``make_proxy``) or as ``python -m proxy``.
Load and memory live in tests/scenarios/test_load.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.support import ORIGIN, ROOT
from tests.support.cli import Proc, get, proxy_command
from tests.support.proxy import MakeProxy, raw_request
from tests.support.upstream_app import ReloadingUpstream, Upstream

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OTHER = "http://localhost:4000"


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def head_and_body(raw: bytes) -> tuple[list[str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def header(lines: list[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [x.split(":", 1)[1].strip() for x in lines[1:] if x.lower().startswith(prefix)]


async def check_problems(path: str) -> list[str]:
    """The problem lines ``cors-proxy check`` prints for a config file."""
    proc = await asyncio.create_subprocess_exec(
        *proxy_command(),
        "check",
        "--config",
        path,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, err
    prefix = "cors-proxy: config error: "
    problems = [x[len(prefix) :] for x in err.decode().splitlines() if x.startswith(prefix)]
    assert problems, err
    return problems


BAD_CONFIG = {
    "rules": [{"origins": ["http://x.test"], "allow_methods": ["GE T"], "max_age": -1}],
    "timeoutz": {"connect": 1},
}


# -- 1. the Flask reloader ----------------------------------------------------------------


async def test_flask_reloader_restart_loses_no_request(make_proxy: MakeProxy) -> None:
    up = ReloadingUpstream()
    p = await make_proxy(up.url, upstream_wait=5)
    statuses: list[int] = []
    restarted = asyncio.Event()
    stop_at = time.monotonic() + 20

    async def browser(s: aiohttp.ClientSession) -> None:
        """Polls like a page does: keep-alive, a short pause between requests."""
        done_at: float | None = None
        for _ in range(500):  # bounded; ends 0.5 s after the restart, or at stop_at
            async with s.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
                body = await r.read()
                statuses.append(r.status if b"world" in body else -r.status)
            if restarted.is_set() and done_at is None:
                done_at = time.monotonic() + 0.5
            if time.monotonic() > min(done_at or stop_at, stop_at):
                return
            await asyncio.sleep(0.01)

    async def reloader() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(up.restart, 0.6)
        restarted.set()

    try:
        async with aiohttp.ClientSession() as s:
            await asyncio.gather(reloader(), *(browser(s) for _ in range(4)))
    finally:
        await asyncio.to_thread(up.stop)
    assert up.generation == 2
    assert statuses, "no requests"
    bad = [x for x in (await p.logs()).splitlines() if " 200 " not in x]
    assert set(statuses) == {200}, ([x for x in statuses if x != 200][:10], bad)
    assert len(statuses) > 40, len(statuses)
    log = await p.logs()
    assert "served after waiting for the upstream to come back" in log, log[-3000:]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_request_the_upstream_read_is_not_replayed(
    make_proxy: MakeProxy, method: str
) -> None:
    received: list[bytes] = []

    async def read_then_vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        received.append(head + await reader.readexactly(4))
        writer.close()  # read the whole request, then die without an answer

    async with raw_server(read_then_vanish) as url:
        p = await make_proxy(url, upstream_wait=5)
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, p.url + "/api/echo", data=b"once", headers={"Origin": ORIGIN}) as r,
        ):
            assert r.status == 502
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "X-Cors-Proxy-Error" in r.headers
        await asyncio.sleep(0.3)  # a replay would have arrived by now
    assert len(received) == 1, received
    assert received[0].startswith(method.encode() + b" /api/echo ")
    assert time.monotonic() - started < 4  # answered at once, not after upstream_wait


async def test_a_get_closed_unanswered_goes_again_a_few_times(
    make_proxy: MakeProxy,
) -> None:
    """A safe request whose connection closed before any answer (the old server going away
    under it) is sent again, at most three times in all: a server that always hangs up
    gets its 502 at once, not after upstream_wait."""
    received: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    async with raw_server(hang_up) as url:
        p = await make_proxy(url, upstream_wait=5)
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as s,
            s.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r,
        ):
            assert r.status == 502
            text = await r.text()
            assert "closed the connection" in text, text
    assert time.monotonic() - started < 2
    assert len(received) == 3, (len(received), text)
    assert all(x.startswith(b"GET /api/hello ") for x in received)


# -- 2. config hot reload -----------------------------------------------------------------


async def test_config_edit_while_requests_run(make_proxy: MakeProxy, upstream: Upstream) -> None:
    p = await make_proxy(upstream.url)
    path = p.server.config_path
    assert path is not None
    failures: list[str] = []
    seen: dict[str, set[int]] = {ORIGIN: set(), OTHER: set()}  # generation -> allowed
    running = True

    async def traffic(s: aiohttp.ClientSession, origin: str) -> None:
        for _ in range(2000):  # bounded; stopped by the test
            if not running:
                return
            before = p.server.generation.number
            async with s.get(p.url + "/api/hello", headers={"Origin": origin}) as r:
                if r.status != 200 or b"world" not in await r.read():
                    failures.append(f"{origin}: {r.status}")
                after = p.server.generation.number
                if r.headers.get("Access-Control-Allow-Origin") == origin and before == after:
                    seen[origin].add(after)  # not one that raced the reload
            await asyncio.sleep(0.005)

    def edit(data: dict[str, Any]) -> None:
        Path(path).write_text(yaml.safe_dump(data))

    async def health(s: aiohttp.ClientSession) -> dict[str, Any]:
        async with s.get(p.url + "/__cors-proxy__/health") as r:
            return dict(await r.json())

    async with aiohttp.ClientSession() as s:
        tasks = [asyncio.ensure_future(traffic(s, o)) for o in (ORIGIN, OTHER)]
        await asyncio.sleep(0.3)
        data = yaml.safe_load(await asyncio.to_thread(Path(path).read_text))
        data["rules"][0]["origins"] = [OTHER]
        await asyncio.to_thread(edit, data)
        for _ in range(100):  # the watcher polls once a second
            if (await health(s))["config_generation"] == 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        async with s.get(p.url + "/api/hello", headers={"Origin": OTHER}) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == OTHER
        async with s.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers

        await asyncio.to_thread(edit, BAD_CONFIG)  # a bad save: rejected, generation 2 stays
        problems = await check_problems(path)
        for _ in range(50):
            if "rejected" in await p.logs():
                break
            await asyncio.sleep(0.1)
        async with s.get(p.url + "/api/hello", headers={"Origin": OTHER}) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == OTHER
        assert (await health(s))["config_generation"] == 2
        running = False
        await asyncio.gather(*tasks)
    assert failures == [], failures[:10]
    assert seen == {ORIGIN: {1}, OTHER: {2}}, seen
    log = await p.logs()
    assert "config generation 2 active (file changed)" in log
    for problem in problems:  # the same words as `cors-proxy check`
        assert f"config error: {problem}" in log, (problem, log[-2000:])
    assert "config reload (file changed) rejected; generation 2 stays active" in log


@pytest.mark.parametrize(
    "empty", ["", "# saving...\n", "---\n"], ids=["0-bytes", "comment", "bare"]
)
async def test_an_empty_file_is_not_a_config(
    make_proxy: MakeProxy, upstream: Upstream, empty: str
) -> None:
    """Issue 17: an editor mid-save leaves an empty file for a moment; applying it would be
    a generation with no rules (CORS off). It is refused and says why; `rules: []`
    written out is applied."""
    p = await make_proxy(upstream.url)
    path = p.server.config_path
    assert path is not None
    data = yaml.safe_load(await asyncio.to_thread(Path(path).read_text))
    await asyncio.to_thread(Path(path).write_text, empty)
    assert not p.server.reload("file changed")
    assert p.server.generation.number == 1
    assert len(p.server.generation.config.rules) == 1
    log = await p.logs()
    assert "holds no YAML document (0 bytes or only comments" in log, log
    assert "config reload (file changed) rejected; generation 1 stays active" in log
    data["rules"] = []
    await asyncio.to_thread(Path(path).write_text, yaml.safe_dump(data))
    assert p.server.reload("file changed")
    now = p.server.generation
    assert (now.number, len(now.config.rules)) == (2, 0)


async def test_the_listen_note_compares_with_the_bound_address(
    make_proxy: MakeProxy, upstream: Upstream
) -> None:
    """The note that a new listen address needs a restart is printed when the file names
    another address than the one bound, and not when it is changed back."""
    p = await make_proxy(upstream.url)  # listens on 127.0.0.1:0, bound to a free port
    path = p.server.config_path
    assert path is not None
    data = yaml.safe_load(await asyncio.to_thread(Path(path).read_text))

    async def reload_with(listen: str) -> int:
        data["listen"] = listen
        await asyncio.to_thread(Path(path).write_text, yaml.safe_dump(data))
        assert p.server.reload("test")
        return (await p.logs()).count("takes effect after a restart")

    assert await reload_with(f"127.0.0.1:{p.server.port}") == 0  # where it listens
    assert await reload_with("127.0.0.1:1") == 1
    assert (
        f"listen 127.0.0.1:1 takes effect after a restart (listening on 127.0.0.1:{p.server.port})"
        in await p.logs()
    )
    assert await reload_with("127.0.0.1:0") == 1  # changed back: nothing to restart for
    assert await reload_with("0.0.0.0:0") == 2


def test_sighup_reloads_a_subprocess_proxy(
    procs: list[Proc], upstream: Upstream, tmp_path: Path
) -> None:
    cfg = tmp_path / "live.yaml"
    rules = [{"name": "web", "origins": [ORIGIN], "allow_credentials": True}]
    cfg.write_text(
        yaml.safe_dump({"listen": "127.0.0.1:0", "upstream": upstream.url, "rules": rules})
    )
    pr = Proc("--config", str(cfg))
    procs.append(pr)

    def acao(origin: str) -> str | None:
        status, headers, _ = get(pr.url + "/api/hello", {"Origin": origin})
        assert status == 200
        return headers.get("Access-Control-Allow-Origin")

    def generation() -> int:
        return int(json.loads(get(pr.url + "/__cors-proxy__/health")[2])["config_generation"])

    assert (acao(ORIGIN), acao(OTHER)) == (ORIGIN, None)
    rules[0]["origins"] = [OTHER]
    cfg.write_text(
        yaml.safe_dump({"listen": "127.0.0.1:0", "upstream": upstream.url, "rules": rules})
    )
    pr.p.send_signal(signal.SIGHUP)
    for _ in range(50):
        if generation() == 2:
            break
        time.sleep(0.1)
    assert generation() == 2
    assert (acao(ORIGIN), acao(OTHER)) == (None, OTHER)
    cfg.write_text(yaml.safe_dump(BAD_CONFIG))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(BAD_CONFIG))
    pr.p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert generation() == 2
    assert acao(OTHER) == OTHER
    code, err = pr.stop()
    assert code == 0, err
    assert "config generation 2 active (SIGHUP)" in err, err
    assert "config generation 3" not in err, err  # the watcher does not load it again
    assert "config reload (SIGHUP) rejected; generation 2 stays active" in err, err
    check = asyncio.run(check_problems(str(bad)))
    for problem in check:
        assert f"config error: {problem}" in err, (problem, err)


# -- 3. WebSockets ------------------------------------------------------------------------


def ws_app(log: list[object]) -> web.Application:
    """An aiohttp app: WebSocket echo with pings on request, plus /api/hello and /api/slow."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.PING:
                log.append(("ping", msg.data))
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                log.append(("pong", msg.data))
            elif msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("ping "):
                await ws.ping(msg.data[5:].encode())
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        log.append(("closed", ws.close_code))
        return ws

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.json_response({"slow": True})

    app = web.Application()
    app.router.add_get("/api/ws", ws_handler)
    app.router.add_get("/api/hello", hello)
    app.router.add_get("/api/slow", slow)
    return app


async def test_websocket_pings_carry_their_payload_both_ways(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer
) -> None:
    log: list[object] = []
    upstream = await aiohttp_server(ws_app(log), access_log=None)
    p = await make_proxy(f"http://127.0.0.1:{upstream.port}")
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(p.url + "/api/ws", origin=ORIGIN, autoping=False) as ws,
    ):
        await ws.ping(b"from-client")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"from-client")
        await ws.send_str("ping from-upstream")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PING, b"from-upstream")
        await ws.pong(msg.data)
        await ws.send_bytes(b"\x00\x01\xff")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"\xff\x01\x00")
        for _ in range(50):
            if ("pong", b"from-upstream") in log:
                break
            await asyncio.sleep(0.05)
    # no Origin (a script, not a page): bridged too
    async with aiohttp.ClientSession() as s, s.ws_connect(p.url + "/api/ws") as ws:
        await ws.send_str("plain")
        assert (await ws.receive(timeout=5)).data == "plain"
    assert ("ping", b"from-client") in log
    assert ("pong", b"from-upstream") in log


# -- 4. streaming under stress ------------------------------------------------------------


async def test_client_leaving_mid_download_releases_everything(make_proxy: MakeProxy) -> None:
    upstream_gone = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        try:
            for _ in range(100_000):  # bounded (6 GiB), never reached
                writer.write(b"z" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            upstream_gone.set()
        finally:
            writer.close()

    async with raw_server(endless) as url:
        p = await make_proxy(url)
        async with aiohttp.ClientSession() as s, s.get(p.url + "/__cors-proxy__/health") as r:
            assert r.status == 200
        await asyncio.sleep(0.1)
        baseline = open_fds()
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(
            b"GET /api/big HTTP/1.1\r\nHost: x\r\nOrigin: " + ORIGIN.encode() + b"\r\n\r\n"
        )
        got = 0
        async with asyncio.timeout(10):
            while got < 2_000_000:
                got += len(await reader.read(65536))
        assert open_fds() >= baseline + 3  # client, proxy's side of it, proxy -> upstream
        writer.transport.abort()
        await asyncio.wait_for(upstream_gone.wait(), 10)  # the proxy let go of the upstream
        for _ in range(100):
            if open_fds() <= baseline:
                break
            await asyncio.sleep(0.05)
        assert open_fds() <= baseline, (open_fds(), baseline)
    assert "client disconnected" in await p.logs()


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_upstream_reset_mid_body_truncates_the_client_response(
    make_proxy: MakeProxy, framing: str
) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if framing == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()  # RST, mid-body

    async with raw_server(reset) as url:
        p = await make_proxy(url)
        request = f"GET /api/x HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
        with contextlib.suppress(ConnectionResetError):
            raw = await raw_request(p.port, request)  # ends when the proxy closes
        lines, body = head_and_body(raw)
        assert lines[0] == "HTTP/1.1 200 OK"
        assert header(lines, "Access-Control-Allow-Origin") == [ORIGIN]
        if framing == "length":
            assert header(lines, "Content-Length") == ["100000"]
            assert len(body) == 5000  # the connection closed before Content-Length bytes
        else:
            assert header(lines, "Transfer-Encoding") == ["chunked"]
            assert b"y" * 4096 in body
            assert not body.endswith(b"0\r\n\r\n")  # never the final chunk
        async with aiohttp.ClientSession() as s, s.get(p.url + "/api/x") as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
    assert "the client got a truncated response" in await p.logs()


async def test_half_closed_client_gets_the_whole_response(
    make_proxy: MakeProxy, upstream: Upstream
) -> None:
    p = await make_proxy(upstream.url)
    n = 4 << 20
    for target in (f"/api/big?n={n}", "/api/hello"):
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode())
        await writer.drain()
        writer.write_eof()  # shut down the write side, as `curl -T` or `nc -N` do
        chunks = []
        async with asyncio.timeout(10):
            while chunk := await reader.read(1 << 16):
                chunks.append(chunk)
        writer.close()
        lines, body = head_and_body(b"".join(chunks))
        assert lines[0] == "HTTP/1.1 200 OK", lines
        length = int(header(lines, "Content-Length")[0])
        assert len(body) == length, (target, len(body), length)
        assert header(lines, "Access-Control-Allow-Origin") == [ORIGIN]
        assert length == n or target == "/api/hello"


# -- 6. limits ----------------------------------------------------------------------------


async def test_header_sizes(make_proxy: MakeProxy, upstream: Upstream) -> None:
    p = await make_proxy(upstream.url)
    big = "v" * (16 << 10)
    async with (
        aiohttp.ClientSession() as s,
        s.get(p.url + "/api/echo", headers={"Origin": ORIGIN, "X-Custom": big}) as r,
    ):
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert ["X-Custom", big] in (await r.json())["headers"]
    huge = b"s3cret" * ((40 << 10) // 6)
    raw = await raw_request(
        p.port,
        b"GET /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: "
        + ORIGIN.encode()
        + b"\r\nCookie: "
        + huge
        + b"\r\n\r\n",
    )
    lines, _ = head_and_body(raw)
    assert lines[0].split()[1] == "431", raw[:300]
    assert b"s3cret" not in raw  # the field is never echoed
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    raw = await raw_request(p.port, b"GET /api/echo HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert head_and_body(raw)[0][0].split()[1] == "431", raw[:300]
    async with aiohttp.ClientSession() as s, s.get(p.url + "/api/hello") as r:
        assert r.status == 200  # and the next request is served normally
    log = await p.logs()
    rejections = [x for x in log.splitlines() if "431" in x]
    assert len(rejections) == 2, log
    assert "s3cret" not in log
    assert "Traceback" not in log


async def test_body_limit_answers_413_with_cors(make_proxy: MakeProxy) -> None:
    seen: list[tuple[bytes, bool]] = []  # (request head, whole body arrived)

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            complete = False
            if b"chunked" in head.lower():
                for _ in range(10_000):
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        complete = True
                        break
            else:
                length = next(
                    int(x.split(b":")[1])
                    for x in head.split(b"\r\n")
                    if x.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                complete = True
            seen.append((head, complete))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            seen.append((b"", False))
        finally:
            writer.close()

    async def chunked(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"c" * 1000
            await asyncio.sleep(0)

    async with raw_server(app) as url:
        p = await make_proxy(url, limits={"max_body_bytes": 10_000})
        async with aiohttp.ClientSession() as s:
            for data in (b"a" * 10_000, chunked(10)):  # at the limit: forwarded
                async with s.post(p.url + "/api/up", data=data, headers={"Origin": ORIGIN}) as r:
                    assert (r.status, await r.read()) == (200, b"ok")
            async with s.post(p.url + "/api/up", data=chunked(50), headers={"Origin": ORIGIN}) as r:
                assert r.status == 413
                assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
                assert "max_body_bytes" in await r.text()
            async with s.post(
                p.url + "/api/up", data=b"b" * 10_001, headers={"Origin": "http://evil.test"}
            ) as r:
                assert r.status == 413
                assert "Access-Control-Allow-Origin" not in r.headers
        # A declared length over the limit is refused before any of the body is sent.
        started = time.monotonic()
        raw = await raw_request(
            p.port,
            f"PUT /api/up HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nContent-Length: {1 << 40}\r\nExpect: 100-continue\r\n\r\n".encode(),
            limit=5,
        )
        assert time.monotonic() - started < 3
        lines, _ = head_and_body(raw)
        assert lines[0].split()[1] == "413", raw[:300]
        assert header(lines, "Access-Control-Allow-Origin") == [ORIGIN]
        assert b"100 Continue" not in raw
        await asyncio.sleep(0.2)
    # The two bodies at the limit arrived whole; the chunked one over it never completed.
    assert [c for _, c in seen] == [True, True, False], seen
    assert "request body larger than limits.max_body_bytes (10000 bytes)" in await p.logs()


async def test_limits_config_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "limits.yaml"
    bad.write_text(
        yaml.safe_dump({"limits": {"max_body_bytes": -1, "max_connections": 0, "max_bodybytes": 1}})
    )
    problems = await check_problems(str(bad))
    assert (
        "limits.max_body_bytes: expected a whole number >= 0 or null for no limit, got -1"
        in problems
    )
    assert (
        "limits.max_connections: expected a whole number >= 1 or null for no limit, got 0"
        in problems
    )
    assert any(x.startswith("limits.max_bodybytes: unknown key (did you mean") for x in problems)
    (tmp_path / "list.yaml").write_text("limits: [1]\n")
    assert (await check_problems(str(tmp_path / "list.yaml")))[0].startswith(
        "limits: expected a mapping"
    )


async def test_connection_limit_holds_excess_connections(
    make_proxy: MakeProxy, upstream: Upstream
) -> None:
    p = await make_proxy(upstream.url, limits={"max_connections": 2})

    async def slow(s: aiohttp.ClientSession, secs: float) -> tuple[int, float]:
        started = time.monotonic()
        async with s.get(p.url + f"/api/slow?s={secs}", headers={"Origin": ORIGIN}) as r:
            await r.read()
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            return r.status, time.monotonic() - started

    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in range(3)]
    try:
        first = [asyncio.ensure_future(slow(s, 1.0)) for s in sessions[:2]]
        await asyncio.sleep(0.3)
        third = await slow(sessions[2], 0.0)  # waits for a slot: held, not refused
        results = [await f for f in first]
        assert [s for s, _ in results] == [200, 200]
        assert third[0] == 200
        assert third[1] > 0.5, third  # it really waited for one of the two
        # Two idle keep-alive connections do not starve a third: one is closed for it.
        assert (await slow(sessions[0], 0))[0] == 200
        started = time.monotonic()
        assert (await slow(sessions[2], 0))[0] == 200
        assert time.monotonic() - started < 2
    finally:
        for s in sessions:
            await s.close()
    assert "Traceback" not in await p.logs()


# -- 7. graceful shutdown ------------------------------------------------------------------


async def test_sigterm_finishes_in_flight_closes_websockets_and_exits_0(
    aiohttp_server: AiohttpServer,
) -> None:
    log: list[object] = []
    upstream = await aiohttp_server(ws_app(log), access_log=None)
    url = f"http://127.0.0.1:{upstream.port}"
    proc = await asyncio.to_thread(
        Proc, "--upstream", url, "--origin", ORIGIN, "--listen", "127.0.0.1:0"
    )
    port = int(proc.url.rsplit(":", 1)[1])
    try:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(proc.url + "/api/ws", origin=ORIGIN)
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "hi"
            slow = asyncio.ensure_future(s.get(proc.url + "/api/slow?s=2"))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            proc.p.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
            refused = False
            for _ in range(30):  # the listening socket goes first
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                except ConnectionRefusedError:
                    refused = True
                    break
                await asyncio.sleep(0.05)
            assert refused, "still accepting after SIGTERM"
            assert not slow.done()  # ... while the slow request is still in flight
            r = await asyncio.wait_for(slow, 10)
            assert r.status == 200
            assert await r.json() == {"slow": True}
            r.release()
            await ws.close()
        code, err = await asyncio.to_thread(proc.stop)
        took = time.monotonic() - started
    finally:
        if proc.p.poll() is None:
            proc.p.kill()
    assert code == 0, err[-2000:]
    assert took < SHUTDOWN_BOUND, took
    assert "shutting down: finishing 2 in-flight exchanges: GET /api/ws (" in err
    assert ("closed", aiohttp.WSCloseCode.GOING_AWAY) in log, log  # the upstream leg too


SHUTDOWN_BOUND = 8.0  # seconds: 5 s for in-flight requests (app.SHUTDOWN_TIMEOUT) + slack
