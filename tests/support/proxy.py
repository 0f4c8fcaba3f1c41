"""The proxy in-process on a real socket, and raw bytes to it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from proxy.server import ProxyServer


@dataclass
class RunningProxy:
    server: ProxyServer
    log_stream: io.StringIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def port(self) -> int:
        return self.server.port

    async def logs(self) -> str:
        """The log so far; the exchange's line is written after its last byte is sent."""
        await asyncio.sleep(0.05)
        self.server.log.flush()
        return self.log_stream.getvalue()


MakeProxy = Callable[..., Awaitable[RunningProxy]]


def write_yaml(path: Any, data: dict[str, Any]) -> str:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return str(path)


async def raw_request(port: int, data: bytes, *, limit: float = 5.0) -> bytes:
    """Send bytes as they are (clients refuse CR/LF tricks and merge duplicates)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


def split_answer(answer: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """An answer's status line, its fields (lower-case names, the last of repeated ones)
    and its body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.lower()] = value.strip()
    return status.encode(), fields, body


async def through_echo(p: RunningProxy, head: str, body: bytes = b"") -> tuple[dict[str, str], Any]:
    """Send ``head`` (and ``body``) to /api/echo through the proxy; the answer's fields and
    what the upstream saw."""
    answer = await raw_request(p.port, head.encode() + b"Connection: close\r\n\r\n" + body)
    status, fields, data = split_answer(answer)
    assert status == b"HTTP/1.1 200 OK", answer[:300]
    return fields, json.loads(data)
