"""Bridge a WebSocket upgrade to the upstream (I/O).

CORS does not apply to WebSockets (no preflight, Access-Control-* ignored), so the
proxy applies the rules' origin allow-list to the handshake itself: an ``Origin`` that
is present, not the proxy's own, and not allowed gets 403 (README "WebSockets").
"""

from __future__ import annotations

import asyncio
import ssl
import weakref

import aiohttp
from aiohttp import WSMsgType, web

from proxy.config.model import UpstreamTarget
from proxy.log.record import Record
from proxy.policy.headers import upstream_request_headers

# aiohttp's client makes its own handshake: these must not be copied from the browser.
AnyWebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse  # either leg

_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)


def is_upgrade(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def bridge(
    request: web.BaseRequest,
    *,
    path: str,
    fields: list[tuple[str, str]],
    session: aiohttp.ClientSession,
    upstream: UpstreamTarget,
    upstream_authority: str | None,
    origin_allowed: bool,
    tls: ssl.SSLContext | None,
    open_sockets: weakref.WeakSet[AnyWebSocket],
    rec: Record,
) -> web.StreamResponse:
    if not origin_allowed:
        rec.status, rec.cors = 403, "ws-denied"
        rec.reason = f"WebSocket origin {rec.origin!r} is not allowed" + (
            f" by rule {rec.rule!r}" if rec.rule else " (no rule covers this path)"
        )
        return web.Response(status=403, text=f"cors-proxy: {rec.reason}\n")
    headers = [
        (n, v)
        for n, v in upstream_request_headers(
            fields,
            client_ip=request.remote or "",
            scheme=request.scheme,
            upstream_authority=upstream_authority,
        )
        if n.lower() not in _HANDSHAKE
    ]
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    url = upstream.websocket_base + path
    try:
        up = await session.ws_connect(
            url,
            protocols=protocols,
            headers=headers,
            autoping=False,
            autoclose=False,
            max_msg_size=0,
            ssl=tls or True,  # an https upstream's upstream_tls; else aiohttp's default
        )
    except aiohttp.WSServerHandshakeError as exc:
        rec.status = exc.status
        rec.diagnosis = f"upstream {upstream.url} refused the WebSocket handshake: {exc.status}" + (
            f" {exc.message}" if exc.message else ""
        )
        return web.Response(status=exc.status, text=f"cors-proxy: {rec.diagnosis}\n")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        rec.status = 502
        rec.diagnosis = f"upstream {upstream.url}: {_why(exc)}"
        return web.Response(status=502, text=f"cors-proxy: cannot reach {rec.diagnosis}\n")
    ws = web.WebSocketResponse(
        protocols=(up.protocol,) if up.protocol else (),
        autoping=False,
        autoclose=False,
        max_msg_size=0,
    )
    await ws.prepare(request)
    rec.status, rec.cors = 101, "ws"
    open_sockets.add(ws)
    open_sockets.add(up)  # shutdown closes both legs with 1001
    try:
        down_task = asyncio.ensure_future(_pump(ws, up))
        up_task = asyncio.ensure_future(_pump(up, ws))
        _, pending = await asyncio.wait({down_task, up_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await up.close()
        await ws.close()
        open_sockets.discard(ws)
        open_sockets.discard(up)
    return ws


async def _pump(src: AnyWebSocket, dst: AnyWebSocket) -> None:
    while True:
        msg = await src.receive()
        if msg.type is WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type is WSMsgType.PING:
            await dst.ping(msg.data)  # payloads matter (supervisor PR #6144)
        elif msg.type is WSMsgType.PONG:
            await dst.pong(msg.data)
        elif msg.type is WSMsgType.CLOSE:
            await dst.close(code=msg.data, message=(msg.extra or "").encode())
            return
        else:  # CLOSING, CLOSED, ERROR
            return


def _why(exc: BaseException) -> str:
    """A WebSocket connect that failed, in the words of the HTTP 502s."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "connect timeout"
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "upstream closed the connection"
    text = str(cause) or type(cause).__name__
    return f"WebSocket connect failed: {text}"
