"""The I/O half of unreachable-upstream diagnosis: only ever run after a connect failed.

Each call costs at most ``PROBE_TIMEOUT`` per address, and happens once per failed
request (after ``upstream_wait``), never on the path of a request that is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from proxy.diagnosis.unreachable import dns_hint, loopback_alternatives, refused_hint, timeout_hint
from proxy.errors import UpstreamError

PROBE_TIMEOUT = 0.3  # seconds per address: loopback answers in microseconds
_CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")  # docker, podman


def in_container() -> bool:
    return any(os.path.exists(p) for p in _CONTAINER_MARKERS)


async def accepts(host: str, port: int, limit: float = PROBE_TIMEOUT) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``limit`` seconds (closed
    again at once)."""
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def resolved(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def unreachable_hint(
    exc: UpstreamError, host: str, port: int, connect_timeout: float
) -> str | None:
    """A hint for a connect that failed, or None when there is nothing to add."""
    host = host.strip("[]")
    if exc.reason == "connection refused":
        tried = await resolved(host, port)
        alternatives = [a for a in loopback_alternatives(host) if a not in tried]
        answering = [a for a in alternatives if await accepts(a, port)]
        return refused_hint(
            host, port, tried=tried, answering=answering, in_container=in_container()
        )
    if exc.reason == "DNS lookup failed":
        return dns_hint(host, in_container=in_container())
    if exc.reason == "connect timeout":
        return timeout_hint(host, port, connect_timeout)
    return None
