"""The proxy's own endpoints under ``/__cors-proxy__/`` (I/O); nothing there is forwarded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

OWN_PREFIX = "/__cors-proxy__/"


async def own_endpoint(
    request: web.BaseRequest, health: Callable[[], Awaitable[dict[str, Any]]]
) -> web.StreamResponse:
    if request.path == OWN_PREFIX + "health":
        return web.json_response(await health(), headers={"Cache-Control": "no-store"})
    return web.json_response(
        {"error": "not found", "detail": f"{OWN_PREFIX} is reserved for cors-proxy"},
        status=404,
    )
