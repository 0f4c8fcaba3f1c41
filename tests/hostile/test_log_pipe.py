"""A log pipe nobody reads (issue 21 item 9): ``cors-proxy ... 2>&1 | less`` with the pager
paused. The proxy is a real process whose stderr is a pipe this test does not read; once
the pipe (64 KiB) and the sink's backlog (1 MiB) are full, lines are dropped and counted,
and every request is still answered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time

from proxy.log.sink import MAX_BACKLOG
from tests.support import ORIGIN
from tests.support.cli import Proc

PATH = "/api/" + "p" * 8000  # each JSON log line (paths kept whole) is about 8 KB


def preflight(n: int) -> bytes:
    return (
        f"OPTIONS {PATH}/{n} HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
        "Access-Control-Request-Method: PUT\r\n\r\n"
    ).encode()


async def answers(port: int, count: int) -> int:
    """Send ``count`` preflights on one connection, each after the previous answer; the
    number answered (each within 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        for n in range(count):
            writer.write(preflight(n))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 204 "), head[:100]
            done += 1
    except TimeoutError:
        pass
    finally:
        writer.close()
    return done


async def health(port: int) -> dict[str, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /__cors-proxy__/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


async def test_a_full_log_pipe_never_stalls_the_proxy() -> None:
    proc = Proc(
        *("--upstream", "http://127.0.0.1:9", "--origin", ORIGIN, "--listen", "127.0.0.1:0"),
        *("--log-format", "json"),
    )
    reading: threading.Thread | None = None
    try:
        port = int(proc.url.rsplit(":", 1)[1])
        count = 3 * MAX_BACKLOG // len(PATH)  # three times what the pipe and backlog hold
        assert await answers(port, count) == count  # before: none after the first ~8
        report = await health(port)
        log = report["log"]
        assert isinstance(log, dict)
        dropped = log["dropped_lines"]
        assert isinstance(dropped, int)
        assert count // 3 < dropped < count, report  # held what fits, dropped the rest
        assert log["waiting_bytes"] <= MAX_BACKLOG

        # The reader comes back: the backlog is written, and the lines that follow a drop
        # say how many were dropped, together as many as health counts.
        read = bytearray()
        assert proc.p.stderr is not None
        fd = proc.p.stderr.fileno()  # text=True: read the bytes underneath

        def drain() -> None:
            while chunk := os.read(fd, 1 << 16):
                read.extend(chunk)

        reading = threading.Thread(target=drain, daemon=True)
        reading.start()
        said, deadline = 0, time.monotonic() + 10
        while time.monotonic() < deadline:
            assert await answers(port, 1) == 1  # a line after the drops: it says them
            await asyncio.sleep(0.1)
            notices = re.findall(rb'log lines? dropped: [^"]*", "dropped_lines": (\d+)}', read)
            said = sum(int(n) for n in notices)
            total = (await health(port))["log"]
            assert isinstance(total, dict)
            if said >= dropped and said == total["dropped_lines"]:
                break
        else:
            raise AssertionError(f"{said} of {dropped} said: {bytes(read[-500:])!r}")
    finally:
        proc.p.terminate()
        try:
            proc.p.wait(10)
        except subprocess.TimeoutExpired:
            proc.p.kill()
            proc.p.wait()
        if reading is not None:
            reading.join(10)  # the pipe's end: the process exited
        for pipe in (proc.p.stdout, proc.p.stderr):
            assert pipe is not None
            pipe.close()
