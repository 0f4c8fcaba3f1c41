"""The proxy's own HTTP/1.1 server for requests without a body: the hot path (I/O).

aiohttp's server costs about 50 µs of CPU per small request here, more than the whole
rest of the proxy (bench/RESULTS.md, "The ceiling"). Most of what a frontend sends is a
body-less GET or a preflight, so this protocol frames request heads itself, parses them
with httptools and writes the answers. Anything else -- a body, ``Expect``, ``Upgrade``,
the proxy's own endpoints, HTTP/1.0, a head it cannot parse or one near aiohttp's size
limits -- hands the connection, with every byte not yet served, to aiohttp's handler for
the rest of its life. So each edge of HTTP keeps aiohttp's tested behaviour, and this
module only has to be right about the common case.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.http.downstream import Replay, utf8_fields
from proxy.http.endpoints import OWN_PREFIX
from proxy.policy.bounded import remember
from proxy.policy.headers import HeaderList

MAX_HEAD = 16384  # bytes; a larger head goes to aiohttp (its limit is 32 KiB per field)
MAX_FIELDS = 100  # aiohttp refuses more than 128: a head with more goes to aiohttp
MAX_PIPELINED = 65536  # bytes read ahead of the answer in progress before reading pauses
KEEPALIVE_TIMEOUT = 75.0  # seconds an idle connection stays open (aiohttp's, nginx's)
SWEEP_INTERVAL = 5.0  # how often idle connections are looked at
SMALL_CHUNK = 16384  # below this a chunk is copied into one write with its framing
_OWN_PREFIX = OWN_PREFIX.encode()  # aiohttp serves the proxy's own endpoints
_FIELDS_CACHE_SIZE = 1024  # serialized header blocks of the proxy's own answers
KNOWN_HEADS = 1024  # request heads kept with what they parse to (then forgotten at once)
MAX_KNOWN_HEAD = 4096  # bytes: a longer head is parsed each time (bounds the memory)
_fields_cache: dict[tuple[tuple[str, str], ...], _Fields] = {}
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date_cache: tuple[int, str, bytes] = (0, "", b"")


def _date() -> str:
    """The ``Date`` value, formatted once per second."""
    return _dates()[1]


def _date_end() -> bytes:
    """The ``Date`` line and the end of the head."""
    return _dates()[2]


def _dates() -> tuple[int, str, bytes]:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        date = formatdate(now, usegmt=True)
        _date_cache = (now, date, f"Date: {date}\r\n\r\n".encode("ascii"))
    return _date_cache


class FastServer:
    """Makes ``FastLane`` protocols and keeps them, for idle expiry and shutdown."""

    def __init__(
        self,
        answer_now: Callable[[FastDownstream], bool],
        answer_again: Callable[[Replay, float], bool],
        serve: Callable[[FastDownstream], Awaitable[None]],
        take_over: Callable[[], asyncio.Protocol],
        log: Callable[[str], None],
    ) -> None:
        self.answer_now = answer_now  # answers a request that needs no await (preflights)
        self.answer_again = answer_again  # logs a replay; False: the config changed since
        self.serve = serve  # answers any other request
        self.take_over = take_over  # makes aiohttp's handler for a handed-over connection
        self.log = log
        self.lanes: set[FastLane] = set()
        # Browsers and load tests send the same request heads again and again, byte for
        # byte: one seen before is not parsed again, and an allowed preflight's 204 is
        # not decided again either.
        self.known: dict[bytes, Known] = {}
        self.stopping = False
        self._timer: asyncio.TimerHandle | None = None

    def make(self) -> FastLane:
        if self._timer is None and not self.stopping:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)
        return FastLane(self)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - KEEPALIVE_TIMEOUT
        for lane in list(self.lanes):
            if not lane.busy and lane.last_active < cutoff:
                lane.close()
        self._timer = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    async def shutdown(self, grace: float) -> None:
        """Close idle connections now; answers in progress get ``grace`` seconds."""
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
        answering = [lane.task for lane in self.lanes if lane.task is not None]
        for lane in list(self.lanes):
            if not lane.busy:
                lane.close()
        if answering:
            await asyncio.wait(answering, timeout=grace)
        for lane in list(self.lanes):
            if lane.transport is not None:
                lane.transport.abort()


class FastLane(asyncio.Protocol):
    """One client connection: requests in order, one answer at a time (pipelining
    is read ahead and answered in turn)."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.buf = bytearray()
        self.parser = httptools.HttpRequestParser(self)
        self.busy = False  # an answer is in progress
        self.closing = False  # end the connection after the answer in progress
        self.eof = False  # the client shut down its sending side
        self.lost = False
        self.handed_over = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Future[None] | None = None  # held: the loop keeps weak refs
        self.last_active = time.monotonic()
        # the head being parsed (httptools callbacks)
        self._url = b""
        self._fields: HeaderList = []
        self._complete = False
        self._keep_alive = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.server.lanes.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.lanes.discard(self)
        w = self.drain_waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionResetError("client disconnected"))

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self.buf += data
        if not self.busy:
            self._next()
        elif len(self.buf) > MAX_PIPELINED and not self.read_paused:
            self.read_paused = True
            self._transport().pause_reading()

    def eof_received(self) -> bool:
        # A client that shut down its write side after whole requests still reads the
        # answers: keep the transport open while any are due, then close (see _serve).
        self.eof = True
        if not self.busy:
            self._next()
        return self.busy or self.handed_over

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        w = self.drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # aiohttp's decoding of values: forward.py refuses non-UTF-8 ones with 400
        self._fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self.parser.should_keep_alive()  # valid inside the callback only

    # -- serving ----------------------------------------------------------------------

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Answer the whole requests in the buffer in turn: preflights at once, the
        next one to forward in a task (which calls back when done); or hand over."""
        buf = self.buf
        while buf and not self.busy:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD or b"\n\n" in buf:  # too large, or bare-LF lines
                    self._handover()
                return
            end += 4
            head = bytes(buf[:end])
            known = self.server.known.get(head)
            if known is None:
                known = self._parse(head) if end <= MAX_HEAD else None
                if known is None:
                    self._handover()
                    return
                if len(head) <= MAX_KNOWN_HEAD:
                    remember(self.server.known, head, known, KNOWN_HEADS)
            elif self._replayed(known):
                del buf[:end]
                continue
            del buf[:end]
            down = FastDownstream(self, known.request)
            self.busy = True
            if not self._answered_now(down):
                self.task = asyncio.ensure_future(self._serve(down))
                return
            self.busy = False
            if down.replay is not None:
                known.remember(down.replay, down.keep_alive and not self.closing)
            if not self._goes_on(down):
                return

    def _replayed(self, known: Known) -> bool:
        """Answer a preflight whose head got a 204 before with the same 204 again."""
        started = time.monotonic()
        server = self.server
        replay = known.replay
        if replay is None or self.closing or self.lost or server.stopping:
            return False
        if not server.answer_again(replay, started):
            known.replay = None  # stale: decided again, and remembered anew
            return False
        self.write(known.answer + _date_end())
        return True

    def _answered_now(self, down: FastDownstream) -> bool:
        try:
            return self.server.answer_now(down)
        except Exception as exc:  # a bug in the proxy: the client still gets an answer
            self._failed(down, exc)
            return True

    def _failed(self, down: FastDownstream, exc: Exception) -> None:
        self.server.log(f"internal error on {down.method} {down.raw_path}: {exc!r}")
        if not down.started:
            with contextlib.suppress(ConnectionError):
                text = "cors-proxy: internal error (the proxy's log has the details)\n"
                down.respond(500, [], text, close=True)

    def _parse(self, head: bytes) -> Known | None:
        """The request in ``head``, or None when aiohttp should have the connection."""
        self._url, self._fields, self._complete = b"", [], False
        try:
            self.parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return None  # aiohttp answers it (400, with its own words), or upgrades it
        url = self._url
        if (
            not self._complete  # a body follows (Content-Length > 0, chunked)
            or len(self._fields) > MAX_FIELDS
            or self.parser.get_http_version() != "1.1"
            or not url.startswith(b"/")
            or url.startswith(_OWN_PREFIX)
        ):
            return None
        # read-only: the same parsed head serves every request that repeats it
        headers = CIMultiDictProxy(CIMultiDict(self._fields))
        hosts = headers.getall("Host", ())
        # A body, 100-continue and protocol switches keep aiohttp's semantics.
        if (
            len(hosts) != 1
            or "Transfer-Encoding" in headers
            or "Expect" in headers
            or "Upgrade" in headers
        ):
            return None
        method = self.parser.get_method().decode("ascii")
        target = url.decode("utf-8", "surrogateescape")
        fields = self._fields if head.isascii() else utf8_fields(self._fields)
        return Known(Request(method, target, headers, fields, hosts[0], self._keep_alive))

    async def _serve(self, down: FastDownstream) -> None:
        try:
            await self.server.serve(down)
        except ConnectionError:
            pass  # the client went away mid-answer
        except Exception as exc:
            self._failed(down, exc)
        self.busy = False
        self.task = None
        if self._goes_on(down):
            if self.read_paused and self.transport is not None:
                self.read_paused = False
                self.transport.resume_reading()
            self._next()
            if self.eof and not self.busy and not self.handed_over:
                self.close()

    def _goes_on(self, down: FastDownstream) -> bool:
        """After an answer: whether the connection serves another request."""
        self.last_active = time.monotonic()
        if self.lost:
            return False
        if down.started and not down.ended:
            self.closing = True
            self._transport().abort()  # a response cut short must not look complete
            return False
        if self.closing or not down.keep_alive or self.server.stopping:
            self.close()  # after the buffered answer is sent
            return False
        return True

    def _handover(self) -> None:
        """aiohttp's handler takes the connection, starting with the unserved bytes."""
        t = self._transport()
        self.handed_over = True
        self.server.lanes.discard(self)
        handler = self.server.take_over()
        if self.read_paused:
            self.read_paused = False
            t.resume_reading()
        t.set_protocol(handler)
        handler.connection_made(t)
        data, self.buf = bytes(self.buf), bytearray()
        if data:
            handler.data_received(data)
        if self.eof and not handler.eof_received():
            t.close()

    def _open(self) -> asyncio.Transport:
        t = self.transport
        if self.lost or t is None or t.is_closing():
            raise ConnectionResetError("client disconnected")
        return t

    def write(self, data: bytes) -> None:
        self._open().write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._open().writelines(parts)

    async def drain(self) -> None:
        """Wait while the client reads slower than the upstream sends."""
        if self.write_paused and not self.lost:
            waiter = self.drain_waiter = self.loop.create_future()
            await waiter


class Request(NamedTuple):
    """What a request head parses to (shared by every request that repeats it)."""

    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    fields: HeaderList | None  # in order; None: a value is not UTF-8
    host: str
    keep_alive: bool


class Known:
    """A request head seen before: what it parses to and, for a preflight that got a
    204 without ending its connection, that answer (given again while it holds)."""

    __slots__ = ("answer", "replay", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.replay: Replay | None = None
        self.answer = b""  # the replay's status line and fields (the Date comes each time)

    def remember(self, replay: Replay, keeps_open: bool) -> None:
        fields = _fields_for(replay.headers)
        # Only an answer that leaves the connection open is the same bytes each time;
        # a Date or a length is never among the proxy's own preflight headers.
        if keeps_open and not fields.has_date and not fields.has_length:
            self.answer = _encode(f"HTTP/1.1 204 No Content\r\n{fields.block}")
            self.replay = replay


class FastDownstream:
    """``Downstream`` for one request of a ``FastLane`` (no body: see the module doc)."""

    __slots__ = (
        "_bodyless",
        "_chunked",
        "_head",
        "ended",
        "fields",
        "headers",
        "host",
        "keep_alive",
        "lane",
        "method",
        "raw_path",
        "remote",
        "replay",
        "started",
    )
    scheme = "http"
    has_body = False
    http11 = True
    content_length: int | None = None

    def __init__(self, lane: FastLane, request: Request) -> None:
        self.lane = lane
        self.method, self.raw_path, self.headers, self.fields, self.host, self.keep_alive = request
        self.remote = lane.remote
        self.started = False  # an answer was begun (its head sent or pending)
        self.ended = False  # the answer is complete
        self._head: bytes | None = None  # sent with the first body chunk
        self.replay: Replay | None = None  # the 204 sent may be sent again (preflights)
        self._chunked = False
        self._bodyless = False

    def header_list(self) -> HeaderList | None:
        return self.fields

    async def body(self) -> AsyncIterator[bytes]:
        return  # a request with a body is served by aiohttp, never here
        yield b""  # pragma: no cover  (makes this an async generator)

    async def send_continue(self) -> None:
        self.lane.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def respond(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        text: str | None = None,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None:
        self.started = True
        if close:
            self.lane.closing = True
        body = b"" if text is None else text.encode("utf-8")
        framing = ""
        if text is not None:
            framing = f"Content-Type: {content_type}; charset=utf-8\r\n"
        if text is not None or not _bodyless_status(status):
            framing += f"Content-Length: {len(body)}\r\n"
        head = self._head_bytes(status, "", headers, framing)
        self.lane.write(head if self.method == "HEAD" else head + body)
        self.ended = True

    async def start(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None:
        self.started = True
        self._bodyless = self.method == "HEAD" or _bodyless_status(status)
        self._head = self._head_bytes(status, reason, headers, None)
        # The head waits for a first chunk that is already there (one write, not two);
        # when the upstream is still thinking (a stream, SSE) it goes out on the next
        # loop tick so the client sees the status at once.
        self.lane.loop.call_soon(self._send_head)

    def _send_head(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self.lane.lost:
            with contextlib.suppress(ConnectionError):
                self.lane.write(head)

    async def write(self, chunk: bytes) -> None:
        if self._bodyless or not chunk:
            return
        lane = self.lane
        head, self._head = self._head, None
        if len(chunk) < SMALL_CHUNK:
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk
            lane.write(data if head is None else head + data)
        else:
            parts = [head] if head is not None else []
            if self._chunked:
                parts += [b"%x\r\n" % len(chunk), chunk, b"\r\n"]
            else:
                parts.append(chunk)
            lane.writelines(parts)
        if lane.write_paused:
            await lane.drain()

    async def finish(self) -> None:
        head, self._head = self._head, None
        tail = b"0\r\n\r\n" if self._chunked and not self._bodyless else b""
        if head is not None or tail:
            self.lane.write((head or b"") + tail)
        self.ended = True

    async def close_now(self) -> None:
        self.lane.closing = True  # the answer is out already: the connection ends after it

    def abort(self) -> None:
        self.lane.closing = True
        self._send_head()  # the status was due: the cut comes after it, as a truncation
        if self.lane.transport is not None:
            self.lane.transport.abort()

    def may_replay(self, replay: Replay) -> None:
        self.replay = replay

    def _head_bytes(
        self, status: int, reason: str, headers: Sequence[tuple[str, str]], framing: str | None
    ) -> bytes:
        """The status line and fields. ``framing`` None: from the headers (the length
        given, else chunked); the ``Date`` is added when missing (RFC 9110 6.6.1)."""
        fields = _fields_for(headers)
        lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}\r\n", fields.block]
        if not fields.has_date:
            lines.append(f"Date: {_date()}\r\n")
        lane = self.lane
        if lane.closing or not self.keep_alive or lane.server.stopping:
            self.keep_alive = False
            lines.append("Connection: close\r\n")
        if framing is None:
            if not self._bodyless and not fields.has_length:
                self._chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
        else:
            lines.append(framing)
        lines.append("\r\n")
        return _encode("".join(lines))


def _encode(head: str) -> bytes:
    try:
        return head.encode("latin-1")  # upstream fields arrive latin-1: bytes kept
    except UnicodeEncodeError:
        return head.encode("utf-8", "surrogateescape")


def _fields_for(headers: Sequence[tuple[str, str]]) -> _Fields:
    """The serialized fields; kept for a tuple (the proxy's own answer from a cached
    decision: a preflight's)."""
    if not isinstance(headers, tuple):
        return _Fields(headers)
    fields = _fields_cache.get(headers)
    if fields is None:
        fields = remember(_fields_cache, headers, _Fields(headers), _FIELDS_CACHE_SIZE)
    return fields


class _Fields:
    """``Name: value`` lines, and whether ``Date`` and ``Content-Length`` are among them."""

    __slots__ = ("block", "has_date", "has_length")

    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        block = "".join([f"{name}: {value}\r\n" for name, value in headers])
        # a line break inside a name or value would split the response
        if block.count("\n") != len(headers) or block.count("\r") != len(headers):
            bad = next(n for n, v in headers if "\n" in v + n or "\r" in v + n)
            raise ValueError(f"line break in the {bad} header")
        low = block.lower()
        self.block = block
        self.has_date = low.startswith("date:") or "\ndate:" in low
        self.has_length = low.startswith("content-length:") or "\ncontent-length:" in low


def _bodyless_status(status: int) -> bool:
    return status < 200 or status in (204, 304)
