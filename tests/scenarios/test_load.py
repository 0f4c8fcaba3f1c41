"""Load (issue 5): hundreds of concurrent keep-alive clients, 0 errors, bounded memory.

A bounded run, not a benchmark (speed lives in bench/): ``python -m proxy`` as a
subprocess in front of a real aiohttp upstream, 200 clients on their own keep-alive
connections, every answer checked, the proxy's peak RSS read from /proc.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.support import ORIGIN
from tests.support.cli import start_proxy

CLIENTS, PER_CLIENT = 200, 10
PEAK_RSS_LIMIT_MIB = 200


@pytest.fixture
async def fast_upstream(aiohttp_server: AiohttpServer) -> str:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world", "n": request.query.get("n")})

    app = web.Application()
    app.router.add_get("/api/hello", hello)
    server = await aiohttp_server(app, access_log=None)
    return f"http://127.0.0.1:{server.port}"


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])


async def test_200_concurrent_keep_alive_clients(fast_upstream: str, tmp_path: Path) -> None:
    log_path = tmp_path / "proxy.log"
    proc = start_proxy(fast_upstream, log_path)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.startswith("listening on http://"), (line, log_path.read_text())
        url = line.split()[2]
        errors: list[str] = []
        opened: list[int] = []  # connections each client opened

        async def client(i: int) -> None:
            trace = aiohttp.TraceConfig()
            created = 0

            async def on_create(*_: object) -> None:
                nonlocal created
                created += 1

            trace.on_connection_create_end.append(on_create)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1), trace_configs=[trace]
            ) as s:
                for n in range(PER_CLIENT):
                    try:
                        async with s.get(
                            f"{url}/api/hello?n={i}-{n}", headers={"Origin": ORIGIN}
                        ) as r:
                            body = await r.json()
                            if r.status != 200 or body != {"hello": "world", "n": f"{i}-{n}"}:
                                errors.append(f"{r.status} {body!r}")
                            elif r.headers.get("Access-Control-Allow-Origin") != ORIGIN:
                                acao = r.headers.get("Access-Control-Allow-Origin")
                                errors.append(f"ACAO {acao}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        errors.append(repr(exc))
            opened.append(created)

        async with asyncio.timeout(120):
            await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        peak = peak_rss_kib(proc.pid) / 1024
        print(f"{CLIENTS * PER_CLIENT} requests, {len(errors)} errors, peak RSS {peak:.0f} MiB")
        assert errors == [], errors[:10]
        assert opened == [1] * CLIENTS  # each client kept its one connection alive
        assert peak < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        assert proc.stdout is not None
        proc.stdout.close()
    text = log_path.read_text()
    assert code == 0, text[-2000:]
    assert text.count("GET /api/hello?n=") == CLIENTS * PER_CLIENT
    assert "Traceback" not in text
