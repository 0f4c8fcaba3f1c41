"""The client's side of one exchange, as the forwarder sees it (I/O).

Two servers feed the forwarder: the proxy's own HTTP/1.1 protocol for body-less
requests (``fastlane``, the hot path) and aiohttp's server for everything else
(``aiohttp_server``: bodies, ``Expect``, HTTP/1.0). Each gives the forwarder a
``RequestView`` (what the client asked) and a ``ResponseSink`` (where the answer goes),
so the policy and the relay are written once. Every member is one that both servers
implement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from http import HTTPStatus
from typing import Protocol

from multidict import MultiMapping

from proxy.log.record import LineTemplate, Record
from proxy.policy.headers import HeaderList


class RequestView(Protocol):
    """One request from the client."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def headers(self) -> MultiMapping[str]: ...
    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def remote(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def http11(self) -> bool: ...

    def header_list(self) -> HeaderList | None:
        """The request's fields in order; None when one is not valid UTF-8 (raw bytes
        that cannot be forwarded unchanged)."""
        ...

    def body(self) -> AsyncIterator[bytes] | None:
        """The request body as it arrives; None when the request has none."""
        ...


class ResponseSink(Protocol):
    """Where the answer to one request goes.

    Answer with exactly one of ``respond`` (a whole small response) or ``start`` then
    ``write``/``finish``. ``respond`` needs no await: a preflight is answered without
    a task switch. ``close=True`` ends the connection after the answer."""

    async def send_continue(self) -> None:
        """``100 Continue``: the client may send the body it holds back."""
        ...

    def respond(
        self,
        status: int,
        headers: Fields | Sequence[tuple[str, str]],
        text: str | None = None,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None: ...

    async def start(
        self, status: int, reason: str, headers: Fields, date: str | None = None
    ) -> None:
        """Send the status and ``headers``; ``date``: the upstream's ``Date`` value
        (``headers`` hold none), else the server's own clock."""
        ...

    async def write(self, chunk: bytes) -> None: ...
    async def finish(self) -> None: ...

    async def close_now(self) -> None:
        """Send the ``respond`` answer now and end the connection without reading
        what follows (a body held back by ``Expect: 100-continue``)."""
        ...

    def abort(self) -> None:
        """Cut the connection: a streamed response is seen as truncated."""
        ...


class Fields:
    """Response header fields, and their HTTP/1.1 serialization made at most once: the
    fields of a cached plan are serialized once for every answer that reuses them."""

    __slots__ = ("_wire", "items")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.items: tuple[tuple[str, str], ...] = tuple(items)
        self._wire: Wire | None = None

    def __repr__(self) -> str:
        return f"Fields({self.items!r})"

    @classmethod
    def of(cls, headers: Fields | Sequence[tuple[str, str]]) -> Fields:
        return headers if isinstance(headers, Fields) else cls(headers)

    def wire(self) -> Wire:
        """The ``Name: value`` lines (made on first use; ValueError for a line break)."""
        wire = self._wire
        if wire is None:
            wire = self._wire = Wire(self.items)
        return wire


class Wire:
    """``Name: value`` lines as bytes, and whether ``Date`` and ``Content-Length`` are
    among them."""

    __slots__ = ("data", "has_date", "has_length")

    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        block = "".join([f"{name}: {value}\r\n" for name, value in headers])
        # a line break inside a name or value would split the response
        if block.count("\n") != len(headers) or block.count("\r") != len(headers):
            bad = next(n for n, v in headers if "\n" in v + n or "\r" in v + n)
            raise ValueError(f"line break in the {bad} header")
        low = block.lower()
        self.data = encode_head(block)
        self.has_date = low.startswith("date:") or "\ndate:" in low
        self.has_length = low.startswith("content-length:") or "\ncontent-length:" in low


class Replay:
    """A whole answer without a body that every request with the same head gets (an
    allowed preflight's 204, under one config generation), and its log line with the
    time left open. ``answer``: its status line and fields, without ``Date`` and the
    blank line. ``rec`` and ``request``: the exchange it repeats, for the inspector."""

    __slots__ = ("answer", "fields", "line", "rec", "request")

    def __init__(
        self,
        status: int,
        fields: Fields,
        line: LineTemplate,
        rec: Record | None = None,
        request: MultiMapping[str] | None = None,
    ) -> None:
        phrase = HTTPStatus(status).phrase.encode("ascii")
        self.answer = b"HTTP/1.1 %d %s\r\n%s" % (status, phrase, fields.wire().data)
        self.fields = fields
        self.line = line
        self.rec = rec
        self.request = request


def encode_head(head: str) -> bytes:
    try:
        return head.encode("latin-1")  # upstream fields arrive latin-1: bytes kept
    except UnicodeEncodeError:
        return head.encode("utf-8", "surrogateescape")


def utf8_fields(fields: Iterable[tuple[str, str]]) -> HeaderList | None:
    """``fields`` as a list, or None when a value holds bytes that are not UTF-8 (the
    parsers decode them as surrogate escapes)."""
    out = []
    for name, value in fields:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return None
        out.append((name, value))
    return out


def bare_request_line(data: bytes | bytearray) -> bool:
    """``data`` starts with a whole request line without an HTTP version: HTTP/0.9, whose
    request is that one line (leading empty lines aside)."""
    start, size = 0, len(data)
    while start < size and data[start] in _CRLF:  # no copy: the buffer may be 64 KiB
        start += 1
    end = data.find(b"\n", start)
    return end > start and data.find(b" HTTP/", start, end) < 0


_CRLF = b"\r\n"
