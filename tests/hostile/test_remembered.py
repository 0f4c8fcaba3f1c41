"""What the proxy remembers about clients (issue 21 item 7): every table filled with values
a client chooses is bounded in bytes, whatever it sends. ``cors-proxy learn`` keeps the
origins, paths, methods and header names it sees (the diagnosis tables are measured in
tests/diagnosis/test_explain.py). Raw sockets on loopback; the proxy's RSS as the
ceiling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from proxy.export.learn import MAX_LEARNED_BYTES
from tests.support import ORIGIN
from tests.support.hostile import proxy_process, read_response

MIB = 1 << 20
BATCH = 20  # preflights pipelined at a time


def preflight(n: int) -> bytes:
    """A preflight whose path, method and request header names are new, 12 KB in all
    (each name under the learner's 2,048 characters; the head under the fast lane's
    16 KiB, over its 4 KiB cache limit)."""
    names = ", ".join(f"x-{n}-{k}-{'h' * 1990}" for k in range(5))
    return (
        f"OPTIONS /api/{n} HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
        f"Access-Control-Request-Method: M{n}{'M' * 1990}\r\n"
        f"Access-Control-Request-Headers: {names}\r\n\r\n"
    ).encode()


async def test_learning_holds_at_most_its_bound(tmp_path: Path) -> None:
    """Each preflight taught the learner 12 KB it kept for good (up to 10,000 paths of
    256 header names each: gigabytes); now what it keeps stops at MAX_LEARNED_BYTES."""
    with proxy_process("http://127.0.0.1:9", tmp_path / "log", "learn") as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

        async def send(batches: range, number: Callable[[int], int]) -> None:
            for start in batches:
                writer.write(b"".join(preflight(number(n)) for n in range(start, start + BATCH)))
                for _ in range(BATCH):
                    head, _ = await asyncio.wait_for(read_response(reader), 10)
                    assert head.startswith(b"HTTP/1.1 204 ")

        # The same preflight, until the inspector's ring of the last 500 exchanges is
        # full of ones this size (it holds them whatever the learner does).
        await send(range(0, 600, BATCH), lambda n: -1)
        before = proxy.rss
        await send(range(0, 6000, BATCH), lambda n: n)  # 72 MB of new names
        grown = proxy.rss - before
        writer.close()
    assert grown < MAX_LEARNED_BYTES / MIB + 12, f"RSS grew {grown:.0f} MiB"
