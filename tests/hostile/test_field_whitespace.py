"""Whitespace around a field value (issue 21 item 6), on both servers: RFC 9110 5.5
leaves it out of the value, so the same head means the same on the fast lane and on
aiohttp's server, and the upstream gets the value without it. Raw sockets on loopback."""

from __future__ import annotations

import pytest

from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, raw_request, split_answer, through_echo
from tests.support.upstream_app import Upstream


@pytest.fixture(params=["fast", "aiohttp"])
def server_lane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_trailing_whitespace_is_not_part_of_a_value(
    make_proxy: MakeProxy, upstream: Upstream, method: str
) -> None:
    """aiohttp's server stripped it and the fast lane kept it after the value, so
    ``Origin: http://localhost:3000 \\t`` was denied on a GET and allowed on a POST."""
    p = await make_proxy(upstream.url)
    head = (
        f"{method} /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN} \t\r\n"
        "X-Custom:  spaced \t \r\nContent-Length: 0\r\n"
    )
    fields, seen = await through_echo(p, head)
    assert fields["access-control-allow-origin"] == ORIGIN
    sent = dict(seen["headers"])
    assert (sent["Origin"], sent["X-Custom"]) == (ORIGIN, "spaced")


async def test_in_a_preflight(make_proxy: MakeProxy, upstream: Upstream) -> None:
    p = await make_proxy(upstream.url)
    answer = await raw_request(
        p.port,
        f"OPTIONS /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\t\r\n"
        "Access-Control-Request-Method: PUT \r\nAccess-Control-Request-Headers: x-custom \t\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    status, fields, _ = split_answer(answer)
    assert status == b"HTTP/1.1 204 No Content"
    assert fields["access-control-allow-origin"] == ORIGIN
