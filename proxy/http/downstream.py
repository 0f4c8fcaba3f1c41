"""The client's side of one exchange, as the forwarder sees it (I/O).

Two servers feed the forwarder: the proxy's own HTTP/1.1 protocol for body-less
requests (``fastlane.FastDownstream``, the hot path) and aiohttp's server for
everything else (``AiohttpDownstream``: bodies, ``Expect``, HTTP/1.0). Both answer
through this one small interface, so the policy and the relay are written once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from multidict import MultiMapping

from proxy.log.record import LineTemplate
from proxy.policy.headers import HeaderList


@dataclass(frozen=True, slots=True)
class Replay:
    """An allowed preflight's answer (a 204) and log line, to give again to the same
    request head: it holds while the config generation does."""

    generation: int
    headers: tuple[tuple[str, str], ...]
    line: LineTemplate


class Downstream(Protocol):
    """One request from the client and the means to answer it.

    Answer with exactly one of ``respond`` (a whole small response) or ``start`` then
    ``write``/``finish``. ``respond`` needs no await: a preflight is answered without
    a task switch. ``close=True`` ends the connection after the answer."""

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
    def has_body(self) -> bool: ...
    @property
    def http11(self) -> bool: ...

    def header_list(self) -> HeaderList | None:
        """The request's fields in order; None when one is not valid UTF-8 (raw bytes
        that cannot be forwarded unchanged)."""
        ...

    def body(self) -> AsyncIterator[bytes]:
        """The request body as it arrives (only when ``has_body``)."""
        ...

    async def send_continue(self) -> None: ...

    def respond(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        text: str | None = None,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None: ...

    async def start(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None: ...
    async def write(self, chunk: bytes) -> None: ...
    async def finish(self) -> None: ...

    async def close_now(self) -> None:
        """Send the ``respond`` answer now and end the connection without reading
        what follows (a body held back by ``Expect: 100-continue``)."""
        ...

    def abort(self) -> None:
        """Cut the connection: a streamed response is seen as truncated."""
        ...

    def may_replay(self, replay: Replay) -> None:
        """The 204 just sent may be sent again to a request with the same head."""
        ...


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
