"""Plain HTTP to a contender (``http.client``: no proxies from the environment, raw header
lines kept), and free ports on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import random
import socket
from collections.abc import Iterator
from pathlib import Path

from .workload import HOST

Headers = list[tuple[str, str]]
PORT_SPAN = 30  # base .. base+29: upstream, contenders, the Flask upstream, extra contenders


@contextlib.contextmanager
def _response(
    port: int, method: str, path: str, headers: dict[str, str], timeout: float
) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers)
        yield conn.getresponse()
    finally:
        conn.close()


def http_request(
    port: int, method: str, path: str, headers: dict[str, str], timeout: float = 10.0
) -> tuple[int, dict[str, str], Headers, bytes]:
    """(status, lower-cased headers, raw header lines, body)."""
    with _response(port, method, path, headers, timeout) as resp:
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.getheaders(), body


def http_digest(
    port: int, method: str, path: str, headers: dict[str, str], timeout: float = 10.0
) -> tuple[int, dict[str, str], int, str]:
    """(status, lower-cased headers, body length, body sha256) without holding the body."""
    with _response(port, method, path, headers, timeout) as resp:
        h, n = hashlib.sha256(), 0
        while chunk := resp.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, n, h.hexdigest()


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def pick_base_port() -> int:
    """A base port whose whole span is free now (several people share this machine), below
    the kernel's ephemeral range: a port there can be taken by any outgoing connection
    between this check and the contender's bind."""
    low = 60000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    top = max(low, 20000 + 100 * PORT_SPAN) - PORT_SPAN
    for _ in range(50):
        base = random.randrange(10000, top)
        if not any(port_busy(p) for p in range(base, base + PORT_SPAN)):
            return base
    raise SystemExit("no free port range found for --base-port auto")


def tail(path: Path | None, n: int = 20) -> str:
    if not path or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join("    | " + line for line in lines)
