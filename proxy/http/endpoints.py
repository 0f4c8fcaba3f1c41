"""The proxy's own endpoints under ``/__cors-proxy__/`` (I/O); nothing there is forwarded."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

OWN_PREFIX = "/__cors-proxy__/"


async def own_endpoint(
    request: web.BaseRequest,
    health: Callable[[], Awaitable[dict[str, Any]]],
    learned: Callable[[], str] | None = None,
) -> web.StreamResponse:
    if request.path == OWN_PREFIX + "health":
        return web.json_response(await health(), headers={"Cache-Control": "no-store"})
    if request.path == OWN_PREFIX + "learned" and learned is not None:
        if not _loopback(request.remote):
            return web.Response(status=403, text="cors-proxy: loopback clients only\n")
        return web.Response(
            text=learned(), content_type="application/yaml", headers={"Cache-Control": "no-store"}
        )
    return web.json_response(
        {"error": "not found", "detail": f"{OWN_PREFIX} is reserved for cors-proxy"},
        status=404,
    )


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
