"""The upstream HTTP client's interface, as the forwarder sees it (I/O).

``rawclient.RawUpstream`` implements it: a small pooled HTTP/1.1 client on httptools.
Errors are ``proxy.errors`` types, so the forwarder never sees a client's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class UpstreamResponse(Protocol):
    status: int
    reason: str
    headers: list[tuple[str, str]]  # raw, in order, repeated fields kept

    async def read(self) -> bytes:
        """The next chunk of the body; ``b""`` at the end; UpstreamBodyError if cut short."""
        ...


class UpstreamClient(Protocol):
    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        *,
        head: bytes | None = None,
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """Send the request (``head``: one ``self.head`` made before, instead of the
        method, target and headers) and give the response once its head is in."""
        ...

    def head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], *, body: bool
    ) -> bytes:
        """The request head as ``request`` would send it."""
        ...

    async def close(self) -> None: ...
