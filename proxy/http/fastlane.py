"""The proxy's own HTTP/1.1 server for requests without a body: the hot path (I/O).

aiohttp's server costs about 50 µs of CPU per small request here, more than the whole
rest of the proxy (bench/RESULTS.md, "The ceiling"). Most of what a frontend sends is a
body-less GET or a preflight, so this protocol frames request heads itself, parses them
with httptools and writes the answers. Anything else -- a body, ``Expect``, ``Upgrade``,
the proxy's own endpoints, HTTP/1.0, a head it cannot parse or one near aiohttp's size
limits -- hands the connection, with every byte not yet served, to aiohttp's handler for
the rest of its life. So each edge of HTTP keeps aiohttp's tested behaviour, and this
module only has to be right about the common case.

A connection's state is one ``Phase`` plus its flow control and whether the client shut
its sending side (``repr(lane)`` shows them). The proxy is one ``LaneHandler``: it turns a
raw request head into a prepared request (its own cache keeps what a head means, so a
head repeated byte for byte is not parsed again), answers what needs no await at once
and the rest in a task, and makes aiohttp's handler for a connection handed over. Each
request reaches it as a ``FastRequest`` (what was asked) and a ``FastResponse`` (where
the answer goes); neither touches the connection's state but through the lane's methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time
from collections.abc import Awaitable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Generic, NamedTuple, Protocol, TypeVar, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.http.downstream import Fields, Replay, bare_request_line, encode_head, utf8_fields
from proxy.http.endpoints import OWN_PREFIX
from proxy.http.flow import FlowControl
from proxy.policy.headers import HeaderList

MAX_HEAD = 16384  # bytes; a larger head goes to aiohttp (its limit is 32 KiB per field)
MAX_FIELDS = 100  # aiohttp refuses more than 128: a head with more goes to aiohttp
MAX_PIPELINED = 65536  # bytes read ahead of the answer in progress before reading pauses
SWEEP_INTERVAL = 5.0  # how often idle connections are looked at
SMALL_CHUNK = 16384  # below this a chunk is copied into one write with its framing
_OWN_PREFIX = OWN_PREFIX.encode()  # aiohttp serves the proxy's own endpoints
_REASONS = {s.value: s.phrase for s in HTTPStatus}
# Status lines with the standard reason, made once (read-only)
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONNECTION_CLOSE = b"Connection: close\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"


class Head(NamedTuple):
    """What a request head parses to (shared by every request that repeats it)."""

    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]  # read-only: one parsed head serves many requests
    fields: HeaderList | None  # in order; None: a value is not UTF-8
    host: str
    keep_alive: bool


class _HeadReader:
    """httptools callbacks for one request head."""

    __slots__ = ("complete", "fields", "keep_alive", "parser", "url")

    def __init__(self) -> None:
        self.url = b""
        self.fields: HeaderList = []
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpRequestParser(self)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # aiohttp's decoding of values: forward.py refuses non-UTF-8 ones with 400. The
        # parser drops the whitespace before a value, not after it: RFC 9110 5.5 (and
        # aiohttp's server) leave out both, so the value is the same on either lane.
        value = value.rstrip(b" \t")
        self.fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # valid inside the callback only


def parse_head(raw: bytes) -> Head | None:
    """The request in ``raw`` (a whole head, its blank line included), or None when
    aiohttp's server should have the connection: a body follows, not HTTP/1.1, an
    absolute or own-endpoint target, too many fields, ``Expect``, ``Upgrade``, not one
    ``Host``, or a head httptools refuses (aiohttp answers it with its own words)."""
    if len(raw) > MAX_HEAD:
        return None
    reader = _HeadReader()
    parser = reader.parser
    try:
        parser.feed_data(raw)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    url = reader.url
    if (
        not reader.complete  # a body follows (Content-Length > 0, chunked)
        or len(reader.fields) > MAX_FIELDS
        or parser.get_http_version() != "1.1"
        or not url.startswith(b"/")
        or url.startswith(_OWN_PREFIX)
    ):
        return None
    headers = CIMultiDictProxy(CIMultiDict(reader.fields))
    hosts = headers.getall("Host", ())
    # A body, 100-continue and protocol switches keep aiohttp's semantics.
    if len(hosts) != 1 or "Transfer-Encoding" in headers or "Expect" in headers:
        return None
    if "Upgrade" in headers:
        return None
    method = parser.get_method().decode("ascii")
    target = url.decode("utf-8", "surrogateescape")
    fields = reader.fields if raw.isascii() else utf8_fields(reader.fields)
    return Head(method, target, headers, fields, hosts[0], reader.keep_alive)


class Prepared(Protocol):
    """A request head as the handler prepared it (its plan): what it parses to, and the
    answer that every request with this head gets, once one is known (a ``Replay``:
    the lane keeps it here and sends it again without asking the handler)."""

    @property
    def head(self) -> Head: ...

    replay: Replay | None


P = TypeVar("P", bound=Prepared)


class LaneHandler(Protocol[P]):
    """What the fast lane needs from the proxy."""

    def prepare(self, raw: bytes) -> P | None:
        """The request in the head ``raw`` (``parse_head`` it, or find it parsed before);
        None: hand the connection to aiohttp's server."""
        ...

    def answer_now(
        self, prepared: P, request: FastRequest, response: FastResponse
    ) -> Replay | bool:
        """Answer a request that needs no await (a preflight); False: ``answer`` it.
        A ``Replay``: answered, and every request with this head may get that answer."""
        ...

    def answer(self, prepared: P, request: FastRequest, response: FastResponse) -> Awaitable[None]:
        """Answer any other request (awaited in a task)."""
        ...

    def take_over(self) -> asyncio.Protocol:
        """aiohttp's handler, for a connection handed over."""
        ...

    def replayed(self, replay: Replay, started: float) -> None:
        """``replay`` was sent again (to a request that began at ``started``, a
        ``time.monotonic()`` reading): its log line, and the exchange kept."""
        ...

    def internal_error(self, text: str) -> None:
        """Log a bug's one message (the client gets a 500)."""
        ...


class FastServer(Generic[P]):
    """Makes ``FastLane`` protocols and keeps them, for idle expiry and shutdown."""

    def __init__(
        self,
        handler: LaneHandler[P],
        *,
        keepalive_timeout: float,
        head_timeout: float = 60.0,
        send_timeout: float = 60.0,
    ) -> None:
        self.handler = handler
        self.keepalive_timeout = keepalive_timeout  # seconds an idle connection stays open
        self.head_timeout = head_timeout  # seconds a request head may take from its first byte
        self.send_timeout = send_timeout  # seconds a client may read nothing of an answer
        self.lanes: set[FastLane[P]] = set()
        self.stopping = False
        self._timer: asyncio.TimerHandle | None = None
        self._date: tuple[int, bytes, bytes, str] = (0, b"", b"", "")

    def make(self) -> FastLane[P]:
        if self._timer is None and not self.stopping:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)
        return FastLane(self)

    def date_line(self, value: str | None = None) -> bytes:
        """The ``Date`` line (RFC 9110 6.6.1), formatted once per second; with ``value``
        (the upstream's), that date (the same as ours, most of the time: no new bytes)."""
        _, line, _, date = self._dates()
        if value is None or value == date:
            return line
        return encode_head(f"Date: {value}\r\n")

    def date_end(self) -> bytes:
        """The ``Date`` line and the blank line that ends a head."""
        return self._dates()[2]

    def _dates(self) -> tuple[int, bytes, bytes, str]:
        now = int(time.time())
        if self._date[0] != now:
            date = formatdate(now, usegmt=True)
            line = f"Date: {date}\r\n".encode("ascii")
            self._date = (now, line, line + b"\r\n", date)
        return self._date

    def _sweep(self) -> None:
        """Close what waits too long: an idle connection (``keepalive_timeout``), a head
        still incomplete (``head_timeout``, nginx's client_header_timeout: each byte of a
        trickled head no longer buys more time), and cut a client that reads nothing of
        its answers (``send_timeout``, nginx's; the upstream connection is let go)."""
        now = time.monotonic()
        for lane in list(self.lanes):
            paused = lane.write_paused_at
            if paused is not None and now - paused > self.send_timeout:
                lane.abort()
            elif lane.phase is IDLE and self._overdue(lane, now):
                lane.close()
        self._timer = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    def _overdue(self, lane: FastLane[P], now: float) -> bool:
        if lane.head_started is not None:
            return now - lane.head_started > self.head_timeout
        return now - lane.last_active > self.keepalive_timeout

    async def shutdown(self, grace: float) -> None:
        """Close idle connections now; answers in progress get ``grace`` seconds."""
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        answering = [lane.task for lane in self.lanes if lane.task is not None]
        for lane in list(self.lanes):
            if lane.phase is IDLE:
                lane.close()
        if answering:
            await asyncio.wait(answering, timeout=grace)
        for lane in list(self.lanes):
            lane.abort()


class Phase(enum.Enum):
    """Where a fast-lane connection is in its life."""

    IDLE = "idle"  # no answer in progress: reading (and answering) the next request
    ANSWERING = "answering"  # a request is being answered
    CLOSING = "closing"  # the answer in progress is the last: the connection ends after it
    HANDED_OVER = "handed over"  # aiohttp's handler has the connection
    CLOSED = "closed"  # closed (or closing once the buffered answer is sent)


# The members as module names: an Enum attribute costs 70 ns a lookup on the hot path.
IDLE = Phase.IDLE
ANSWERING = Phase.ANSWERING
CLOSING = Phase.CLOSING
HANDED_OVER = Phase.HANDED_OVER
CLOSED = Phase.CLOSED


class FastLane(asyncio.Protocol, Generic[P]):
    """One client connection: requests in order, one answer at a time (pipelining
    is read ahead and answered in turn)."""

    def __init__(self, server: FastServer[P]) -> None:
        self.server = server
        self.handler = server.handler
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.flow = FlowControl()  # its transport comes with connection_made
        self.phase = IDLE
        self.eof = False  # the client shut down its sending side
        self.remote = ""
        self.buf = bytearray()  # received, not yet served
        self.task: asyncio.Future[None] | None = None  # held: the loop keeps weak refs
        self.last_active = time.monotonic()
        self.head_started: float | None = None  # when the incomplete head in buf began
        self.write_paused_at: float | None = None  # when writing paused (send_timeout)

    def __repr__(self) -> str:
        shown = [self.phase.value]
        if self.eof:
            shown.append("eof")
        shown += [
            n.replace("_", "-") for n in ("read_paused", "write_paused") if getattr(self.flow, n)
        ]
        if self.buf:
            shown.append(f"{len(self.buf)} bytes unserved")
        return f"<FastLane {self.remote or '-'} {' '.join(shown)}>"

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = t = cast(asyncio.Transport, transport)
        self.flow.transport = t
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.server.lanes.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self.server.lanes.discard(self)
        self.flow.lost("client disconnected")

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self.buf += data
        if self.phase is IDLE:
            self._next()
        if len(self.buf) > MAX_PIPELINED or self.flow.write_paused:
            self._read_if_room()

    def eof_received(self) -> bool:
        # A client that shut down its write side after whole requests still reads the
        # answers: keep the transport open while any are due, then close (_finish_if_eof).
        self.eof = True
        if self.phase is IDLE:
            self._next()
        return self.phase is not IDLE or self._has_request()

    def pause_writing(self) -> None:
        # The client reads slower than the answers come: no more answers (nor reading)
        # until it catches up, so what waits for it is bounded by the transport's buffer.
        self.write_paused_at = time.monotonic()
        self.flow.pause_writing()
        self._read_if_room()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self.flow.resume_writing()
        if self.phase is IDLE:
            self._next()
            self._finish_if_eof()
        self._read_if_room()

    # -- serving ----------------------------------------------------------------------

    def _read_if_room(self) -> None:
        """Read while the unserved requests stay under ``MAX_PIPELINED`` and the client
        takes its answers; else leave the bytes in the socket (the client's problem)."""
        flow = self.flow
        if self.phase in (HANDED_OVER, CLOSED):
            return
        if len(self.buf) > MAX_PIPELINED or flow.write_paused:
            flow.pause_reading()
        else:
            flow.resume_reading()

    def _has_request(self) -> bool:
        """A whole request head waits in the buffer."""
        return b"\r\n\r\n" in self.buf

    def _finish_if_eof(self) -> None:
        """The client shut its sending side: close once no answer is due any more."""
        if self.eof and self.phase is IDLE and not self._has_request():
            self.close()

    def _next(self) -> None:
        """Answer the whole requests in the buffer in turn: what needs no await at once,
        the next other one in a task (which comes back here when done); or hand over.
        Nothing is answered while the client does not read (writing paused)."""
        buf = self.buf
        handler = self.handler
        flow = self.flow
        while buf and self.phase is IDLE and not flow.write_paused:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                # too large, bare-LF lines, or HTTP/0.9 (aiohttp's server refuses it)
                if len(buf) > MAX_HEAD or b"\n\n" in buf or bare_request_line(buf):
                    self._hand_over()
                elif self.head_started is None:
                    self.head_started = time.monotonic()  # the head's deadline starts
                return
            self.head_started = None
            end += 4
            prepared = handler.prepare(bytes(buf[:end]))
            if prepared is None:
                self._hand_over()
                return
            del buf[:end]
            head = prepared.head
            replay = prepared.replay
            if replay is not None and not self.server.stopping:
                if not self._replay(replay, head.keep_alive):
                    return
                continue
            request = FastRequest(head, self.remote)
            response = FastResponse(self, head)
            self.phase = ANSWERING
            try:
                answered = handler.answer_now(prepared, request, response)
            except Exception as exc:  # a bug in the proxy: the client still gets an answer
                self._failed(request, response, exc)
                answered = True
            if not answered:
                self.task = asyncio.ensure_future(self._answer(prepared, request, response))
                return
            if answered is not True and response.ended:
                prepared.replay = answered
            if not self._answered(response):
                return

    def _replay(self, replay: Replay, keep_alive: bool) -> bool:
        """Send ``replay`` again, with today's Date and its own log line; False when the
        connection ends after it."""
        started = time.monotonic()
        if keep_alive:
            data = replay.answer + self.server.date_end()
        else:
            data = replay.answer + self.server.date_line() + _CONNECTION_CLOSE + b"\r\n"
        try:
            self.send(data)
        except ConnectionError:
            return False
        self.handler.replayed(replay, started)
        if not keep_alive:
            self.close()
        return keep_alive

    async def _answer(self, prepared: P, request: FastRequest, response: FastResponse) -> None:
        try:
            await self.handler.answer(prepared, request, response)
        except ConnectionError:
            pass  # the client went away mid-answer
        except Exception as exc:
            self._failed(request, response, exc)
        self.task = None
        if self._answered(response):
            self._next()
            if self.eof:
                self._finish_if_eof()
            flow = self.flow
            if flow.read_paused or flow.write_paused or len(self.buf) > MAX_PIPELINED:
                self._read_if_room()

    def _answered(self, response: FastResponse) -> bool:
        """After an answer: whether the connection serves another request."""
        self.last_active = time.monotonic()
        if self.phase is CLOSED:
            return False
        if response.started and not response.ended:
            self.abort()  # a response cut short must not look complete
            return False
        if self.phase is CLOSING or not response.keep_alive or self.server.stopping:
            self.close()  # after the buffered answer is sent
            return False
        self.phase = IDLE
        return True

    def _failed(self, request: FastRequest, response: FastResponse, exc: Exception) -> None:
        self.handler.internal_error(
            f"internal error on {request.method} {request.raw_path}: {exc!r}"
        )
        if not response.started:
            with contextlib.suppress(ConnectionError):
                text = "cors-proxy: internal error (the proxy's log has the details)\n"
                response.respond(500, (), text, close=True)

    def _hand_over(self) -> None:
        """aiohttp's handler takes the connection, starting with the unserved bytes."""
        t = self.transport
        assert t is not None
        self.phase = HANDED_OVER
        self.server.lanes.discard(self)
        handler = self.handler.take_over()
        self.flow.resume_reading()  # aiohttp reads from here on
        t.set_protocol(handler)
        handler.connection_made(t)
        data, self.buf = bytes(self.buf), bytearray()
        if data:
            handler.data_received(data)
        if self.eof and not handler.eof_received():
            t.close()

    # -- what a FastResponse uses -------------------------------------------------------

    def send(self, data: bytes) -> None:
        t = self.transport
        if self.phase is CLOSED or t is None or t.is_closing():
            raise ConnectionResetError("client disconnected")
        t.write(data)

    def send_parts(self, parts: list[bytes]) -> None:
        t = self.transport
        if self.phase is CLOSED or t is None or t.is_closing():
            raise ConnectionResetError("client disconnected")
        t.writelines(parts)

    def keeps_open(self) -> bool:
        """Whether the connection may serve another request after this answer."""
        return self.phase is ANSWERING and not self.server.stopping

    def end_after_answer(self) -> None:
        if self.phase is ANSWERING:
            self.phase = CLOSING

    def close(self) -> None:
        """Close once the buffered answers are sent."""
        if self.phase is not HANDED_OVER:
            self.phase = CLOSED
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection now: an answer in progress is seen as truncated."""
        if self.phase is not HANDED_OVER:
            self.phase = CLOSED
        if self.transport is not None:
            self.transport.abort()


class FastRequest:
    """One fast-lane request as the forwarder sees it (``RequestView``; no body: see the
    module doc)."""

    __slots__ = ("fields", "headers", "host", "method", "raw_path", "remote")
    scheme = "http"
    http11 = True
    content_length: int | None = None

    def __init__(self, head: Head, remote: str) -> None:
        self.method, self.raw_path, self.headers, self.fields, self.host, _ = head
        self.remote = remote

    def header_list(self) -> HeaderList | None:
        return self.fields

    def body(self) -> None:
        return None  # a request with a body is served by aiohttp, never here


class FastResponse:
    """Where one fast-lane request's answer goes (``ResponseSink``)."""

    __slots__ = (
        "_bodyless",
        "_chunked",
        "_head",
        "_is_head",
        "_lane",
        "ended",
        "keep_alive",
        "started",
    )

    def __init__(self, lane: FastLane[P], head: Head) -> None:
        self._lane: FastLane[P] = lane
        self._is_head = head.method == "HEAD"
        self.keep_alive = head.keep_alive
        self.started = False  # an answer was begun (its head sent or pending)
        self.ended = False  # the answer is complete
        self._head: bytes | None = None  # sent with the first body chunk
        self._chunked = False
        self._bodyless = False

    async def send_continue(self) -> None:
        self._lane.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def respond(
        self,
        status: int,
        headers: Fields | Sequence[tuple[str, str]],
        text: str | None = None,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None:
        self.started = True
        if close:
            self._lane.end_after_answer()
        body = b"" if text is None else text.encode("utf-8")
        framing = b""
        if text is not None:
            framing = f"Content-Type: {content_type}; charset=utf-8\r\n".encode("latin-1")
        if text is not None or not _bodyless_status(status):
            framing += b"Content-Length: %d\r\n" % len(body)
        head = self._head_bytes(status, "", Fields.of(headers), framing, None)
        self._lane.send(head if self._is_head else head + body)
        self.ended = True

    async def start(
        self, status: int, reason: str, headers: Fields, date: str | None = None
    ) -> None:
        self.started = True
        self._bodyless = self._is_head or _bodyless_status(status)
        self._head = self._head_bytes(status, reason, headers, None, date)
        # The head waits for a first chunk that is already there (one write, not two);
        # when the upstream is still thinking (a stream, SSE) it goes out on the next
        # loop tick so the client sees the status at once.
        self._lane.loop.call_soon(self._send_head)

    def _send_head(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            with contextlib.suppress(ConnectionError):
                self._lane.send(head)

    async def write(self, chunk: bytes) -> None:
        if self._bodyless or not chunk:
            return
        lane = self._lane
        head, self._head = self._head, None
        if len(chunk) < SMALL_CHUNK:
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk
            lane.send(data if head is None else head + data)
        else:
            parts = [head] if head is not None else []
            if self._chunked:
                parts += [b"%x\r\n" % len(chunk), chunk, b"\r\n"]
            else:
                parts.append(chunk)
            lane.send_parts(parts)
        flow = lane.flow
        if flow is not None and flow.write_paused:
            await flow.drain()

    async def finish(self) -> None:
        head, self._head = self._head, None
        tail = b"0\r\n\r\n" if self._chunked and not self._bodyless else b""
        if head is not None or tail:
            self._lane.send((head or b"") + tail)
        self.ended = True

    async def close_now(self) -> None:
        self._lane.end_after_answer()  # the answer is out already: the connection ends after it

    def abort(self) -> None:
        self._send_head()  # the status was due: the cut comes after it, as a truncation
        self._lane.abort()

    def _head_bytes(
        self, status: int, reason: str, headers: Fields, framing: bytes | None, date: str | None
    ) -> bytes:
        """The status line and fields. ``framing`` None: from the headers (the length
        given, else chunked); the ``Date`` is added when missing (RFC 9110 6.6.1)."""
        wire = headers.wire()
        line = _STATUS_LINES.get(status) if not reason or reason == _REASONS.get(status) else None
        if line is None:
            line = encode_head(f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}\r\n")
        parts = [line, wire.data]
        if not wire.has_date:
            parts.append(self._lane.server.date_line(date))
        if not self.keep_alive or not self._lane.keeps_open():
            self.keep_alive = False
            parts.append(_CONNECTION_CLOSE)
        if framing is None:
            if not self._bodyless and not wire.has_length:
                self._chunked = True
                parts.append(_CHUNKED)
        else:
            parts.append(framing)
        parts.append(b"\r\n")
        return b"".join(parts)


def _bodyless_status(status: int) -> bool:
    return status < 200 or status in (204, 304)
