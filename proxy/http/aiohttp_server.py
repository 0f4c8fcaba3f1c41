"""aiohttp's server side: the connection handler and server the proxy runs on (I/O).

Every connection that the fast lane hands over, and every connection when the fast
lane is off, is served here: requests with a body, ``Expect``, upgrades, the proxy's
own endpoints, HTTP/1.0, heads the fast lane will not parse.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from proxy.http.aiohttp_private import (
    handler_arguments,
    queued_bodies,
    upgraded,
    waits_for_request,
)
from proxy.http.downstream import Fields, bare_request_line, utf8_fields
from proxy.log.record import safe
from proxy.log.sink import LogSink
from proxy.policy.headers import HeaderList
from proxy.policy.target import Target

if TYPE_CHECKING:
    from proxy.http.fastlane import FastServer

MAX_FIELD_SIZE = 32768  # bytes per request line and per header field (aiohttp's parser)


class Owner(Protocol):
    """What the server needs from the proxy that runs it."""

    log: LogSink
    idle: set[RequestHandler]  # kept-alive between requests (limits only)

    def handle(self, request: web.BaseRequest) -> Awaitable[web.StreamResponse]: ...
    def max_connections(self) -> int | None: ...


class AiohttpLogBridge(logging.Handler):
    """aiohttp logs a full traceback for every malformed request it rejects with 400;
    the terminal gets one line instead."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage | LineTooLong | HttpProcessingError):
            first = (getattr(exc, "message", "") or str(exc)).strip().splitlines()
            why = first[0].rstrip(":") if first else type(exc).__name__
            self.sink.message(f"rejected a malformed request with {exc.code}: {safe(why)}")
        elif record.levelno >= logging.WARNING:
            text = record.getMessage() + (f": {exc!r}" if exc else "")
            self.sink.message(f"aiohttp: {safe(text)}")


def _too_large(exc: BaseException | None) -> bool:
    """The parser gave up on a header field or on the number of fields (-> 431)."""
    if isinstance(exc, LineTooLong):
        return True
    return isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()


class AiohttpHandler(RequestHandler):
    """aiohttp's connection handler with the proxy's answers to what its parser rejects,
    half-closed clients served to the end, and HTTP/0.9 refused at once."""

    def __init__(self, manager: AiohttpServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._log = manager.log
        self.body: aiohttp.StreamReader | None = None  # of the latest request (for EOF)
        self._opening: bytearray | None = bytearray()  # the first line, until it is whole
        self.peer_eof = False  # the client sent FIN: a page's event stream is over

    def data_received(self, data: bytes) -> None:
        opening = self._opening
        if opening is not None:
            whole: bytes | bytearray = data
            if opening:  # the line came in pieces
                opening += data
                whole = opening
            if b"\n" not in whole and len(whole) <= MAX_FIELD_SIZE:
                self._opening = bytearray(whole)
            else:
                self._opening = None
                if bare_request_line(whole) and whole.count(b"\n") == 1:
                    # An HTTP/0.9 request ends with its line; aiohttp's parser waits for a
                    # blank line after it. Given one, it parses the request, which the
                    # proxy refuses with 400 (policy.target) instead of waiting.
                    data += b"\r\n"
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's contract: bool
        # A client that shut down its write side (``curl -T``, ``nc -N``) after sending
        # whole requests still reads the answers: keep the transport open and close once
        # they are done. Otherwise close now: when idle (aiohttp's close() would leave the
        # socket open), or when a body is cut short, so it is seen as truncated and a
        # linger reading the rest does not wait for bytes that never come.
        self.peer_eof = True
        if upgraded(self):
            # A WebSocket client that is gone without a close frame: closing the
            # transport ends its reader, so the bridge and its upstream socket end too
            # (kept half-open, both stayed until the upstream sent something).
            return False
        bodies = queued_bodies(self)
        if self.body is not None:
            bodies.append(self.body)
        if waits_for_request(self) or not all(body.is_eof() for body in bodies):
            return False
        self.close()
        return True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not _too_large(exc):
            return super().handle_error(request, status, exc, message)
        # RFC 6585 431. Never echo the field: it is often a cookie or a token. The parser
        # stops before the headers exist, so there is no Origin to add CORS headers for.
        self._log.message(
            f"rejected a request with 431: a header field is longer than {MAX_FIELD_SIZE} "
            "bytes, or there are more than 128 fields"
        )
        resp = web.Response(
            status=431,
            text=f"cors-proxy: request header fields too large (limit {MAX_FIELD_SIZE} bytes "
            "per field, 128 fields)\n",
        )
        resp.force_close()
        return resp


class AiohttpServer(web.Server):
    """``web.Server`` whose connections start on the fast lane (body-less requests,
    handed over to a ``_Handler`` for anything else), and that keeps at most
    ``limits.max_connections`` connections served: more wait, accepted but unread,
    like nginx's accept backlog (connections are counted on aiohttp's side only), for
    ``held_timeout`` seconds at most; then they are closed unanswered."""

    def __init__(self, owner: Owner, *, held_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(owner.handle, **kwargs)
        self.owner = owner
        self.log = owner.log
        self.held_timeout = held_timeout
        self.served: set[RequestHandler] = set()
        # waiting connections, each with the timer that closes it after held_timeout
        self.held: deque[tuple[RequestHandler, asyncio.Transport, asyncio.TimerHandle]] = deque()
        self.fast: FastServer[Any] | None = None  # set by the owner when the fast lane is on

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]  # any protocol will do
        if self.fast is not None and self.owner.max_connections() is None:
            return self.fast.make()
        return self.handler()

    def handler(self) -> AiohttpHandler:
        loop, kwargs = handler_arguments(self)
        return AiohttpHandler(self, loop=loop, **kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        limit = self.owner.max_connections()
        if limit is None or len(self.served) < limit:
            self.served.add(handler)
            return
        transport.pause_reading()  # its request waits in the socket buffer
        timer = asyncio.get_running_loop().call_later(self.held_timeout, transport.close)
        self.held.append((handler, transport, timer))
        self._reclaim_idle()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.owner.idle.discard(handler)
        if handler in self.served:
            self.served.discard(handler)
            self._admit()
        else:
            for entry in [e for e in self.held if e[0] is handler]:
                entry[2].cancel()
                self.held.remove(entry)

    def _admit(self) -> None:
        limit = self.owner.max_connections()
        while self.held and (limit is None or len(self.served) < limit):
            handler, transport, timer = self.held.popleft()
            timer.cancel()
            if not transport.is_closing():
                self.served.add(handler)
                transport.resume_reading()

    def _reclaim_idle(self) -> None:
        """Close one idle keep-alive connection so a waiting one gets its slot (nginx
        does the same when worker_connections run out)."""
        if self.owner.idle:
            # force_close: aiohttp's close() on a waiting connection ends its task but
            # leaves the socket open. Never a fresh connection: its request may be on the way.
            self.owner.idle.pop().force_close()


class AiohttpRequest:
    """``RequestView`` over aiohttp's server request, with its ``target`` as the proxy
    forwards it (``policy.target``: origin-form; an absolute-form's host replaces
    ``Host``)."""

    def __init__(self, request: web.BaseRequest, target: Target) -> None:
        self.request = request
        self.method = request.method
        self.raw_path = target.path
        self.headers = request.headers
        self.scheme = request.scheme
        self.host = target.host or request.host
        self.target_host = target.host
        self.remote = request.remote or ""
        self.content_length = request.content_length
        self.http11 = request.version == HttpVersion11

    def header_list(self) -> HeaderList | None:
        return utf8_fields(client_fields(self.request, self.target_host))

    def body(self) -> AsyncIterator[bytes] | None:
        return self._chunks() if self.request.body_exists else None

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.request.content.readany():
            yield chunk


def client_fields(request: web.BaseRequest, host: str | None) -> list[tuple[str, str]]:
    """The request's fields in order, ``Host`` replaced by ``host`` when it is given
    (the absolute-form's authority; RFC 9112 3.2.2: the request line's host wins)."""
    if host is None:
        return list(request.headers.items())
    return [(n, host if n.lower() == "host" else v) for n, v in request.headers.items()]


class AiohttpResponse:
    """``ResponseSink`` over aiohttp's server request; ``response`` goes back to aiohttp.
    A write the client does not take within ``send_timeout`` seconds cuts the connection
    (nginx's send_timeout)."""

    def __init__(self, request: web.BaseRequest, *, send_timeout: float = 60.0) -> None:
        self.request = request
        self.send_timeout = send_timeout
        self.response: web.StreamResponse | None = None

    async def send_continue(self) -> None:
        await self.request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def respond(
        self,
        status: int,
        headers: Fields | Sequence[tuple[str, str]],
        text: str | None = None,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None:
        multi = CIMultiDict(headers.items if isinstance(headers, Fields) else headers)
        if text is None:
            resp = web.Response(status=status, headers=multi)
        else:
            resp = web.Response(status=status, text=text, content_type=content_type, headers=multi)
        if close:
            # the rest of a request body is read and dropped, then the connection ends
            resp.force_close()
        self.response = resp

    async def start(
        self, status: int, reason: str, headers: Fields, date: str | None = None
    ) -> None:
        resp = web.StreamResponse(status=status, reason=reason or None)
        for name, value in headers.items:
            resp.headers.add(name, value)
        if date is not None:
            resp.headers.add("Date", date)
        self.response = resp
        await resp.prepare(self.request)

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self._sent(self.response.write(chunk))

    async def finish(self) -> None:
        assert self.response is not None
        await self._sent(self.response.write_eof())

    async def _sent(self, writing: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await writing
        except TimeoutError:
            self.abort()
            raise ConnectionResetError("the client read nothing for the send timeout") from None

    async def close_now(self) -> None:
        assert self.response is not None
        await self.response.prepare(self.request)
        await self.response.write_eof()
        self.request.protocol.force_close()  # instead of aiohttp's 10 s linger

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()
