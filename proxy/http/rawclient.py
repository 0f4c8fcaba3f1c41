"""A small pooled HTTP/1.1 upstream client on ``asyncio.Protocol`` + ``httptools`` (I/O).

``RawUpstream`` implements ``proxy.upstream.UpstreamClient`` for plain requests at a
fraction of ``aiohttp.ClientSession``'s CPU per request (bench/RESULTS.md). It is a proxy's
client, not a general one: it sends the method, target and headers it is given as they
are, follows no redirects, decompresses nothing and adds no headers but the framing
(``Transfer-Encoding: chunked`` for a body of unknown length, ``Host`` when missing).

What it takes care of:

- keep-alive pool: a connection goes back only after a whole response that allows reuse
  (not ``Connection: close``, not HTTP/1.0 without keep-alive, not read-until-close);
- one response per request: parsing stops at the end of the message, and a connection
  that received bytes beyond it, or anything while idle in the pool, is closed, never
  reused (nginx closes an idle connection that became readable);
- a connection that closes before a byte of the answer raises
  ``UpstreamUnavailable("upstream closed the connection", sent=True)``; the forwarder
  decides whether to send the request again (``reused`` says the pool's connection had
  gone stale);
- trailer fields of a chunked response are dropped, never promoted to headers
  (RFC 9110 6.5.1); a response head over ``MAX_RESPONSE_HEAD`` bytes is a 502
  ("upstream sent too big header", as nginx says);
- HEAD, 204 and 304 responses have no body whatever their headers say (httptools cannot
  be told a response answers HEAD, so the parser is replaced after a HEAD response);
- 1xx interim responses are skipped; 101 (an upgrade nobody asked for) is an error;
- back-pressure in bytes both ways: reading from the upstream pauses while more than
  ``buffer_limit`` bytes wait for the consumer; request bodies wait for the socket to drain;
- timeouts: connect -> ``UpstreamTimeout("connect timeout")``, no response head within
  ``read_timeout`` -> ``UpstreamTimeout("read timeout")``, a body silent for ``read_timeout``
  -> ``UpstreamBodyError("read timeout")``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import cast

import httptools

from proxy.config.model import UpstreamTarget
from proxy.errors import UpstreamBodyError, UpstreamTimeout, UpstreamUnavailable
from proxy.http.flow import FlowControl
from proxy.http.tls import tls_unavailable

# Connects the protocol the factory makes to the upstream (``RawUpstream(opener=...)``).
Opener = Callable[[Callable[[], asyncio.Protocol]], Awaitable[object]]
BUFFER_LIMIT = 256 * 1024  # response bytes held for a slow consumer before reading pauses
MAX_RESPONSE_HEAD = 64 * 1024  # bytes of a response head (interim ones included)
MAX_IDLE = 64  # idle keep-alive connections kept per client
_NO_BODY_STATUS = frozenset((204, 304))


class _Closed(Exception):
    """The connection ended before the response head (internal)."""


class _Timeout(Exception):
    """A read deadline passed (internal)."""


class _TooBig(Exception):
    """The response head is larger than MAX_RESPONSE_HEAD (internal)."""


class _Stop(Exception):
    """Raised in a parser callback to stop parsing (internal)."""


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; parses responses with httptools; one exchange at a time."""

    def __init__(self, buffer_limit: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.buffer_limit = buffer_limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.flow = FlowControl()  # its transport comes with connection_made
        self.lost = False
        self.reused = False
        self.pooled = False  # idle in the pool: any byte now is one too many
        self._start()

    def _start(self) -> None:
        self.head_only = False  # the request was HEAD: the response has no body
        self.headers: list[tuple[str, str]] = []
        self.status = 0
        self.reason = ""
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.received = False  # any response byte on this exchange
        self.head_bytes = 0  # received before the head was complete
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.flow.transport = self.transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.head_done and not self.done and exc is None and _until_eof(self.headers):
            self.done = True  # read-until-close body: the close is its end
        elif not self.done and self.error is None:
            self.error = exc or _Closed("upstream closed the connection")
        self._wake()
        self.flow.lost("upstream closed the connection")

    def data_received(self, data: bytes) -> None:
        if self.pooled:
            self.close()  # nothing was asked: never reused
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_Closed("upstream switched protocols (101) without being asked"))
        except httptools.HttpParserError as exc:
            self._fail(self.error or _Closed(f"invalid response: {exc}"))
        if not self.head_done:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_RESPONSE_HEAD:
                self._fail(_TooBig(f"a response head over {MAX_RESPONSE_HEAD} bytes"))
                return
        if self.head_only and self.head_done:
            # Whatever the headers say, a response to HEAD ends with its head. The parser
            # would wait for Content-Length bytes: replace it for the next exchange.
            self.parser = httptools.HttpResponseParser(self)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- httptools callbacks --------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        if not self.head_done:  # else a second response begins: stopped at its head's end
            self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer field: dropped, never promoted to a header
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.head_done:
            # A second response after the one asked for: parsing stops here, the first
            # is relayed as it came (its fields were not touched: a later header is
            # dropped like a trailer), and the connection is never reused.
            self.keep_alive = False
            if self.error is None:
                self.error = _Closed("upstream sent more than one response")
            raise _Stop
        status = self.parser.get_status_code()
        if status == 101:
            self._fail(_Closed("upstream switched protocols (101) without being asked"))
            return
        if 100 <= status < 200:
            self.headers = []  # interim response (100 Continue, 103 Early Hints): skip
            return
        self.status = status
        self.head_done = True
        if self.head_only or status in _NO_BODY_STATUS:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.done:
            self.keep_alive = False  # a body after HEAD/204/304: dropped, connection not reused
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > self.buffer_limit:
            self.flow.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:
            return  # end of a 1xx interim response
        if not self.done:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()  # valid inside the callback only
        self._wake()

    # -- used by the client ---------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _expire(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(_Timeout())

    async def _wait(self, limit: float | None) -> None:
        self.waiter = w = self.loop.create_future()
        timer = self.loop.call_later(limit, self._expire) if limit is not None else None
        try:
            await w
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def drain(self) -> None:
        """Wait while the upstream reads the request body slower than it comes."""
        if self.lost:
            raise ConnectionResetError("upstream closed the connection")
        await self.flow.drain()

    def reusable(self) -> bool:
        return (
            self.done
            and self.keep_alive
            and not self.lost
            and self.error is None
            and not self.chunks
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Response:
    """``UpstreamResponse`` over one exchange of a ``_Conn``."""

    __slots__ = ("_conn", "_read_timeout", "headers", "reason", "status")

    def __init__(self, conn: _Conn, read_timeout: float | None) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self.status = conn.status
        self.reason = conn.reason
        self.headers = conn.headers

    async def read(self) -> bytes:
        c = self._conn
        while True:
            if c.chunks:
                data = c.chunks.popleft() if len(c.chunks) == 1 else b"".join(c.chunks)
                c.chunks.clear()
                c.buffered = 0
                if c.flow.read_paused:
                    c.flow.resume_reading()
                return data
            if c.done:
                return b""
            if c.error is not None:
                raise UpstreamBodyError("upstream connection lost", _detail(c.error))
            try:
                await c._wait(self._read_timeout)
            except _Timeout:
                raise UpstreamBodyError("read timeout", "the upstream stopped sending") from None


class _Exchange:
    """The async context manager ``RawUpstream.request`` returns."""

    __slots__ = ("_args", "_client", "_conn", "_sender")

    def __init__(
        self,
        client: RawUpstream,
        args: tuple[str, str, Sequence[tuple[str, str]], AsyncIterator[bytes] | None, bytes | None],
    ) -> None:
        self._client = client
        self._args = args
        self._conn: _Conn | None = None
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Response:
        method, target, headers, body, head = self._args
        client = self._client
        chunked = body is not None and not _has_length(headers)
        if head is None:
            head = client._head(method, target, headers, chunked=chunked)
        conn = await client._acquire()
        try:
            try:
                await self._send(conn, head, method, body, chunked)
            except _Closed as exc:
                conn.close()
                # Whether to send it again is the forwarder's call (README: never twice,
                # but for a safe request without a body), counted with its other retries.
                raise UpstreamUnavailable(
                    "upstream closed the connection",
                    _detail(exc),
                    sent=True,
                    reused=conn.reused and not conn.received,
                ) from None
        except BaseException:
            self._abort()
            raise
        return _Response(conn, client.read_timeout)

    def _abort(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        if self._conn is not None:
            self._conn.close()

    async def _send(
        self,
        conn: _Conn,
        head: bytes,
        method: str,
        body: AsyncIterator[bytes] | None,
        chunked: bool,
    ) -> None:
        """Write the request and wait for the response head (raises _Closed, Upstream*)."""
        self._conn = conn
        conn._start()
        conn.head_only = method == "HEAD"
        assert conn.transport is not None
        conn.transport.write(head)
        if body is not None:
            self._sender = asyncio.ensure_future(_send_body(conn, body, chunked))  # held here
        while not conn.head_done:
            sender = self._sender
            if sender is not None and sender.done() and sender.exception() is not None:
                raise UpstreamUnavailable(
                    "request body failed", _detail(sender.exception()), sent=True
                )
            err = conn.error
            if err is not None:
                if isinstance(err, _TooBig):
                    raise UpstreamUnavailable("upstream sent too big header", str(err), sent=True)
                if isinstance(err, _Closed) and str(err).startswith("invalid response"):
                    raise UpstreamUnavailable(
                        "invalid response from the upstream", str(err), sent=True
                    )
                if isinstance(err, _Closed | ConnectionError):
                    raise _Closed(_detail(err))
                raise UpstreamUnavailable("upstream connection failed", _detail(err), sent=True)
            try:
                await conn._wait(self._client.read_timeout)
            except _Timeout:
                raise UpstreamTimeout(
                    "read timeout", "no response headers within the limit"
                ) from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, sender = self._conn, self._sender
        if conn is None:
            return
        if sender is not None and not sender.done():
            sender.cancel()
            conn.close()  # the upstream answered before the whole body went out
            return
        if exc_type is None and conn.reusable() and (sender is None or sender.exception() is None):
            self._client._release(conn)
        else:
            conn.close()


async def _send_body(conn: _Conn, body: AsyncIterator[bytes], chunked: bool) -> None:
    t = conn.transport
    assert t is not None
    try:
        async for chunk in body:
            if not chunk:
                continue
            if conn.lost:
                return
            if chunked:
                t.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                t.write(chunk)
            await conn.drain()
        if chunked and not conn.lost:
            t.write(b"0\r\n\r\n")
    except ConnectionResetError:
        return  # the upstream closed: the response side reports it
    except BaseException:
        conn.close()
        raise


class RawUpstream:
    """``UpstreamClient`` on pooled keep-alive connections parsed with httptools.

    ``RawUpstream(target, connect_timeout=5.0, read_timeout=60.0)`` (the config's
    ``UpstreamTarget``, or a URL parsed into one); ``buffer_limit`` is the back-pressure
    threshold in bytes; ``tls``: the context for an https upstream (``http.tls``), else
    the system's defaults. ``opener`` connects a protocol made by the factory it is given to
    the upstream (the default: a TCP or TLS connection; tests and bench/micro.py give a
    fake transport instead)."""

    def __init__(
        self,
        target: UpstreamTarget | str,
        *,
        connect_timeout: float,
        read_timeout: float | None,
        buffer_limit: int = BUFFER_LIMIT,
        max_idle: int = MAX_IDLE,
        opener: Opener | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(target, str):
            target = UpstreamTarget.parse(target)
        self.host = target.host
        self.port = target.port
        self.ssl: ssl.SSLContext | None = None  # an https upstream's (``tls``, or the default)
        if target.scheme == "https":
            self.ssl = tls or ssl.create_default_context()
        self.prefix = target.prefix
        self.authority = target.authority
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.buffer_limit = buffer_limit
        self.max_idle = max_idle
        self.opener = opener or self._open
        self._idle: list[_Conn] = []
        self._closed = False

    def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        *,
        head: bytes | None = None,
    ) -> _Exchange:
        return _Exchange(self, (method, target, headers, body, head))

    def head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], *, body: bool
    ) -> bytes:
        """The request head ``request`` sends (a caller may keep it and pass it back):
        the fields as given, ``Host`` when missing, chunked framing for a ``body`` of
        unknown length."""
        return self._head(method, target, headers, chunked=body and not _has_length(headers))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- internals ------------------------------------------------------------------

    def _head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], *, chunked: bool
    ) -> bytes:
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
        low = fields.lower()
        host = "" if low.startswith("host:") or "\nhost:" in low else f"Host: {self.authority}\r\n"
        framing = "Transfer-Encoding: chunked\r\n" if chunked else ""
        head = f"{method} {self.prefix}{target} HTTP/1.1\r\n{fields}{host}{framing}\r\n"
        return head.encode("utf-8", "surrogateescape")

    async def _acquire(self) -> _Conn:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                conn.pooled = False
                conn.reused = True
                return conn
        return await self._connect()

    async def _open(self, factory: Callable[[], asyncio.Protocol]) -> object:
        return await asyncio.get_running_loop().create_connection(
            factory,
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl else None,
        )

    async def _connect(self) -> _Conn:
        conn = _Conn(self.buffer_limit)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.opener(lambda: conn)
        except TimeoutError:
            raise UpstreamTimeout("connect timeout", "no connection within the limit") from None
        except ConnectionRefusedError as exc:
            raise UpstreamUnavailable("connection refused", self._where(exc)) from None
        except socket.gaierror as exc:
            raise UpstreamUnavailable("DNS lookup failed", self._where(exc)) from None
        except ssl.SSLError as exc:  # an OSError, but waiting will not change it
            raise tls_unavailable(exc, self.host, self.port) from None
        except OSError as exc:
            raise UpstreamUnavailable("connection failed", self._where(exc)) from None
        return conn

    def _release(self, conn: _Conn) -> None:
        conn.reused = False
        if self._closed or len(self._idle) >= self.max_idle:
            conn.close()
        else:
            conn.pooled = True
            self._idle.append(conn)

    def _where(self, exc: OSError) -> str:
        return f"{self.host}:{self.port}: {exc.strerror or exc}"


def _until_eof(headers: list[tuple[str, str]]) -> bool:
    """No Content-Length, not chunked: the body ends with the connection. Asked only
    when the connection ends before the parser saw the message end (not per exchange)."""
    for name, value in headers:
        low = name.lower()
        if low == "content-length" or (low == "transfer-encoding" and "chunked" in value.lower()):
            return False
    return True


def _has_length(headers: Sequence[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-length" for name, _ in headers)


def _detail(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return str(exc) or type(exc).__name__


__all__ = ["BUFFER_LIMIT", "RawUpstream"]
