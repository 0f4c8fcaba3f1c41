"""The proxy's own endpoints under ``/__cors-proxy__/`` (I/O); nothing there is forwarded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from proxy.http.inspector import Inspector

OWN_PREFIX = "/__cors-proxy__/"


async def own_endpoint(
    request: web.BaseRequest,
    health: Callable[[], Awaitable[dict[str, Any]]],
    inspector: Inspector | None = None,
) -> web.StreamResponse:
    name = request.path.removeprefix(OWN_PREFIX) if request.path.startswith(OWN_PREFIX) else None
    if name == "health":
        return web.json_response(await health(), headers={"Cache-Control": "no-store"})
    if name is not None and inspector is not None:
        return await inspector.handle(request, name)
    return web.json_response(
        {"error": "not found", "detail": f"{OWN_PREFIX} is reserved for cors-proxy"},
        status=404,
    )
