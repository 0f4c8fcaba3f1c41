"""The one place that reads aiohttp's private attributes (I/O).

aiohttp's low-level server has no public way to ask what the proxy needs: whether a
connection waits for its next request, the request bodies queued behind the one being
served (for half-closed clients), whether a WebSocket has the connection, the arguments
and loop its ``web.Server`` makes each connection handler with (to make one for a
connection the fast lane hands over), and a response's HTTP version (its request's).
Those live in private attributes, read here only.

Tested with aiohttp 3.14 (3.14.5), the one minor version pyproject.toml allows
(``aiohttp>=3.14,<3.15``). 3.12.15 and 3.13.5 have these attributes too (the canary
passes there), but the suite does not: their parsers accept an HTTP/1.1 request without
``Host`` and answer oversized header fields differently. tests/http/test_aiohttp_private.py
is the canary: it fails, naming the attribute, on an aiohttp that renames or retypes one
of them, before anything else breaks strangely.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http import HttpVersion11
from aiohttp.web_protocol import RequestHandler

TESTED = ((3, 14),)  # the aiohttp minor versions the whole suite passes on


def queued_bodies(handler: RequestHandler) -> list[StreamReader]:
    """The bodies of the requests parsed but not served yet (``RequestHandler._messages``:
    a deque of (message, payload))."""
    return [payload for _, payload in handler._messages]


def waits_for_request(handler: RequestHandler) -> bool:
    """Whether the connection is idle, waiting for its next request (``_waiter``: the
    future its request loop awaits while no message is queued)."""
    waiter = handler._waiter
    return waiter is not None and not waiter.done()


def upgraded(handler: RequestHandler) -> bool:
    """Whether another protocol's reader has the connection's bytes now (a WebSocket:
    ``RequestHandler._payload_parser``, which ``set_parser`` sets when one is prepared)."""
    return handler._payload_parser is not None


def handler_arguments(server: web.Server) -> tuple[asyncio.AbstractEventLoop, dict[str, Any]]:
    """The loop and keyword arguments ``server`` makes its handlers with (``Server._loop``
    and ``Server._kwargs``, as its ``__call__`` uses them)."""
    return server._loop, server._kwargs


def as_http11(request: web.BaseRequest) -> web.BaseRequest:
    """``request`` as if its request line said HTTP/1.1 (``BaseRequest._version``, which
    its ``version`` property returns; a response's status line repeats it). The proxy
    refuses HTTP/0.9 and HTTP/2.0 request lines with a status line a client reads, not
    ``HTTP/0.9 400``."""
    clone = request.clone()
    clone._version = HttpVersion11
    return clone
