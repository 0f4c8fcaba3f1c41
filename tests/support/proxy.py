"""The proxy in-process on a real socket, and raw bytes to it."""

from __future__ import annotations

import asyncio
import io
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
