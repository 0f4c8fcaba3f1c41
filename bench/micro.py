"""CPU per exchange of cors-proxy's own code, in-process, without sockets or load generator.

    python bench/micro.py [--exchanges N] [--rounds R]

The wrk runs of bench/run.py measure the whole process, and on a shared machine their
noise (±30%) hides a change worth 5 µs. This drives the fast lane and the forwarder
directly: the client is a fake transport that takes the answer's bytes, the upstream is
the real ``RawUpstream`` on a fake transport that answers each request head with a
canned response one loop turn later. What is left is the Python that runs per
exchange: parsing, the CORS decision, both header plans, the upstream client, the log
line. The same loop runs the httptools floor (bench/contenders/httptools_floor.py, the
fast lane's shape doing only what nginx-cors does) on the same fakes, so ``above floor``
is what the product's features cost per exchange.

    python bench/micro.py --against f8caf77 [--rounds R] [--exchanges N]

compares this checkout with another one (a directory, or a git revision of this
repository) in interleaved rounds, each checkout's own micro.py in its own process, and
says per scenario whether the difference is beyond the noise (bench/harness/compare.py).
It is the yardstick for a change to the hot path: run it against the commit before the
change, in the same hour.

    python bench/micro.py --inspector [--rounds R] [--exchanges N]

measures what the inspector (issue 19) costs the same exchanges, in interleaved rounds:
turned off (``inspector.enabled: false``), on with no page open (the default: each
exchange is kept in the ring), and with a page open (its event stream pushed every
0.25 s; the page is a consumer in the same loop that takes each push).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import io
import operator
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's proxy/
sys.path.insert(0, str(HERE / "contenders"))

from httptools_floor import Floor, fixed_headers  # noqa: E402

from proxy.config.loader import load  # noqa: E402
from proxy.config.model import InspectorConfig, Overrides  # noqa: E402
from proxy.http.fastlane import FastServer  # noqa: E402
from proxy.http.inspector import Inspector  # noqa: E402
from proxy.http.rawclient import RawUpstream  # noqa: E402
from proxy.server import KEEPALIVE_TIMEOUT, ProxyServer  # noqa: E402

ORIGIN = "http://localhost:3000"
UPSTREAM = "http://127.0.0.1:9"  # never connected to: the transport is fake
# What wrk sends in bench/run.py's small and preflight scenarios.
REQUESTS = {
    "preflight": (
        b"OPTIONS /api/hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Origin: http://localhost:3000\r\nAccess-Control-Request-Method: PUT\r\n"
        b"Access-Control-Request-Headers: content-type,x-requested-with\r\n\r\n"
    ),
    "small": (
        b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Origin: http://localhost:3000\r\nCookie: session=abc\r\n\r\n"
    ),
}
# nginx's answer to the small GET in bench/conf/nginx-upstream.conf.in.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 14:13:46 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 17\r\nConnection: keep-alive\r\n"
    b'\r\n{"hello":"world"}'
)


class ClientTransport:
    """The client's side: takes the answer; each write wakes the driver."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.first = b""  # the first answer, checked before anything is timed
        self.last = b""  # and the last of the warm-up (a preflight's from the replays)

    def write(self, data: bytes) -> None:
        if not self.first:
            self.first = data
        self.last = data
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class UpstreamTransport(ClientTransport):
    """The upstream's side: each request head is answered on the next loop turn."""

    def __init__(self, conn: asyncio.Protocol) -> None:
        super().__init__()
        self.conn = conn

    def write(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.conn.data_received, RESPONSE)


async def fake_connection(factory: Callable[[], asyncio.Protocol]) -> None:
    conn = factory()
    conn.connection_made(UpstreamTransport(conn))  # type: ignore[arg-type]


def fake_upstream() -> RawUpstream:
    return RawUpstream(UPSTREAM, connect_timeout=5, read_timeout=30, opener=fake_connection)


def product() -> tuple[asyncio.Protocol, Callable[[], None]]:
    cfg = load(None, Overrides(upstream=UPSTREAM, origins=(ORIGIN,), listen="127.0.0.1:0"))
    # The proxy as the fast lane's handler, never started (no socket); its log line is
    # built and buffered, not printed.
    proxy = ProxyServer(cfg, log_stream=io.StringIO(), make_client=lambda cfg: fake_upstream())
    server = FastServer(proxy, keepalive_timeout=KEEPALIVE_TIMEOUT)
    lane = server.make()

    def cleanup() -> None:
        if server._timer is not None:
            server._timer.cancel()

    return lane, cleanup


def floor() -> tuple[asyncio.Protocol, Callable[[], None]]:
    cors, preflight = fixed_headers(ORIGIN)
    return Floor(fake_upstream(), cors, preflight), lambda: None


def check(answer: bytes, request: bytes) -> None:
    """A contender that answers wrongly is not timed (as in bench/run.py)."""
    preflight = request.startswith(b"OPTIONS")
    status = b"HTTP/1.1 204 " if preflight else b"HTTP/1.1 200 "
    want = [status, f"Access-Control-Allow-Origin: {ORIGIN}\r\n".encode()]
    if not preflight:
        want.append(b'\r\n\r\n{"hello":"world"}')
    missing = [w for w in want if w not in answer]
    if not answer.startswith(status) or missing:
        raise SystemExit(f"wrong answer to {request[:20]!r}: {answer[:300]!r}")


async def per_exchange(make: Callable[[], Any], request: bytes, n: int) -> float:
    """µs of CPU per exchange over ``n`` exchanges on one keep-alive connection."""
    lane, cleanup = make()
    client = ClientTransport()
    lane.connection_made(client)
    loop = asyncio.get_running_loop()
    for _ in range(200):  # warm up: pooled upstream connection, caches
        client.waiter = loop.create_future()
        lane.data_received(request)
        await client.waiter
    check(client.first, request)
    check(client.last, request)
    started = time.process_time()
    for _ in range(n):
        client.waiter = loop.create_future()
        lane.data_received(request)
        await client.waiter
    spent = time.process_time() - started
    cleanup()
    return spent / n * 1e6


INSPECTOR_MODES = ("off", "on", "page")


def with_inspector(mode: str) -> tuple[asyncio.Protocol, Callable[[], None]]:
    """``product()`` with the inspector "off", "on" (the default: kept, no page open)
    or with a "page" open."""
    cfg = load(None, Overrides(upstream=UPSTREAM, origins=(ORIGIN,), listen="127.0.0.1:0"))
    if mode == "off":
        cfg = dataclasses.replace(cfg, inspector=InspectorConfig(enabled=False))
    proxy = ProxyServer(cfg, log_stream=io.StringIO(), make_client=lambda cfg: fake_upstream())
    server = FastServer(proxy, keepalive_timeout=KEEPALIVE_TIMEOUT)
    lane = server.make()
    page = asyncio.ensure_future(open_page(proxy.inspector)) if mode == "page" else None

    def cleanup() -> None:
        if server._timer is not None:
            server._timer.cancel()
        if page is not None:
            page.cancel()

    return lane, cleanup


async def open_page(inspector: Inspector) -> None:
    """A page on the inspector's event stream: takes every push (the socket write left
    out: the page's own connection, not the exchanges')."""
    listener = inspector.listen(None)
    try:
        while await listener.queue.get() is not None:
            pass
    finally:
        inspector.unlisten(listener)


async def measure_inspector(exchanges: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for i in range(rounds):
        for scenario, request in REQUESTS.items():
            modes = INSPECTOR_MODES if i % 2 == 0 else INSPECTOR_MODES[::-1]
            for mode in modes:
                make = functools.partial(with_inspector, mode)
                us = await per_exchange(make, request, exchanges)
                results.setdefault(scenario, {}).setdefault(mode, []).append(us)
    return results


def report_inspector(results: dict[str, dict[str, list[float]]]) -> None:
    """Medians, and the median of the per-round ratios (each round runs the three modes
    back to back, so its ratio is steadier than the ratio of medians on a busy machine)."""
    print(f"{'scenario':<10} {'off':>7} {'on':>7} {'page':>7} {'on/off':>8} {'page/on':>8}")
    for scenario, by_mode in results.items():
        off, on, page = (statistics.median(by_mode[m]) for m in INSPECTOR_MODES)
        on_off = statistics.median(map(operator.truediv, by_mode["on"], by_mode["off"]))
        page_on = statistics.median(map(operator.truediv, by_mode["page"], by_mode["on"]))
        print(f"{scenario:<10} {off:>7.1f} {on:>7.1f} {page:>7.1f} {on_off:>8.3f} {page_on:>8.3f}")


async def measure(exchanges: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):  # interleaved, so a slow spell hits every contender alike
        for scenario, request in REQUESTS.items():
            for name, make in (("cors-proxy", product), ("httptools-floor", floor)):
                us = await per_exchange(make, request, exchanges)
                results.setdefault(scenario, {}).setdefault(name, []).append(us)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--exchanges", type=int, default=20000, help="per round (20000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="compare with another checkout (a directory or a git revision of this repository)",
    )
    parser.add_argument(
        "--inspector",
        action="store_true",
        help="the inspector's cost: turned off, on with no page open, with a page open",
    )
    args = parser.parse_args()
    if args.against:
        from harness.compare import compare

        print(compare(args.against, args.rounds, args.exchanges))
        return
    try:
        import uvloop  # the event loop cors-proxy runs on when it is installed

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    if args.inspector:
        print(f"CPU µs per exchange, in-process ({loop_name}; {args.rounds} rounds, medians)")
        report_inspector(asyncio.run(measure_inspector(args.exchanges, args.rounds)))
        return
    results = asyncio.run(measure(args.exchanges, args.rounds))
    print(f"CPU µs per exchange, in-process ({loop_name}; {args.rounds} rounds)")
    print(
        f"{'scenario':<10} {'cors-proxy':>10} {'min':>6} {'floor':>7} {'min':>6}"
        f" {'above floor':>12} {'× floor':>8}"
    )
    for scenario, by_name in results.items():
        ours, base = by_name["cors-proxy"], by_name["httptools-floor"]
        mo, mb = statistics.median(ours), statistics.median(base)
        print(
            f"{scenario:<10} {mo:>10.1f} {min(ours):>6.1f} {mb:>7.1f} {min(base):>6.1f}"
            f" {mo - mb:>12.1f} {mo / mb:>8.2f}"
        )


if __name__ == "__main__":
    main()
