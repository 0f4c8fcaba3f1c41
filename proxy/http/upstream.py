"""The upstream HTTP client behind a small interface (I/O).

``AiohttpUpstream`` wraps one shared ``aiohttp.ClientSession`` configured for proxying:
no redirects followed, no decompression, no cookie jar, no headers the browser did not
send. Errors are mapped to ``proxy.errors`` so the forwarder never sees aiohttp's types.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.config.model import UpstreamTarget
from proxy.errors import UpstreamBodyError, UpstreamTimeout, UpstreamUnavailable


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
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        *,
        idempotent: bool,
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...

    async def close(self) -> None: ...


class _AiohttpResponse:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason or ""
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]

    async def read(self) -> bytes:
        try:
            return await self._resp.content.readany()
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamBodyError("upstream response truncated", str(exc)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamBodyError("read timeout", "the upstream stopped sending") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamBodyError("upstream connection lost", str(exc)) from None


# aiohttp adds these unless told not to; a transparent proxy must not (STYLE §1.2).
_SKIP_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class AiohttpUpstream:
    """Upstream client on one pooled ``ClientSession``."""

    def __init__(
        self, target: UpstreamTarget | str, *, connect_timeout: float, read_timeout: float | None
    ) -> None:
        if isinstance(target, str):
            target = UpstreamTarget.parse(target)
        self.base = target.base
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=False),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            skip_auto_headers=_SKIP_AUTO,
            trust_env=False,
        )

    @asynccontextmanager
    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        *,
        idempotent: bool,
    ) -> AsyncIterator[UpstreamResponse]:
        url = URL(self.base + target, encoded=True)
        try:
            resp = await self.session.request(
                method,
                url,
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
                skip_auto_headers=_SKIP_AUTO,
            )
        except aiohttp.ClientConnectorDNSError as exc:
            raise UpstreamUnavailable("DNS lookup failed", _os_detail(exc)) from None
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamTimeout("connect timeout", "no connection within the limit") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(_connect_reason(exc), _os_detail(exc)) from None
        except (aiohttp.SocketTimeoutError, TimeoutError):
            raise UpstreamTimeout("read timeout", "no response headers within the limit") from None
        except aiohttp.ServerDisconnectedError:
            raise UpstreamUnavailable(
                "upstream closed the connection", "before sending a response", sent=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable("upstream connection failed", str(exc), sent=True) from None
        try:
            yield _AiohttpResponse(resp)
        except BaseException:
            resp.close()  # body not fully read: the connection cannot go back to the pool
            raise
        finally:
            resp.release()

    async def close(self) -> None:
        await self.session.close()


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    err = exc.os_error
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(err, asyncio.TimeoutError):
        return "connect timeout"
    return "connection failed"


def _os_detail(exc: aiohttp.ClientConnectorError) -> str:
    return f"{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
