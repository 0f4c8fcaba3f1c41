"""The floor of cors-proxy's design, measured beside it: not a product, a yardstick.

An aiohttp low-level ``web.Server`` with one handler and the project's own upstream client
(``proxy.http.rawclient.RawUpstream``), doing only what nginx-cors's config does: a fixed 204
for preflights, and for everything else the upstream's response streamed back with
hop-by-hop fields dropped and fixed CORS headers added. No policy, no log line, no
diagnosis, no retries, no limits. Whatever cors-proxy costs above this is the product's
own work; what this costs is the price of aiohttp's server plus the client, which no
change inside cors-proxy can go below (bench/RESULTS.md, "The ceiling").

    python bench/contenders/aiohttp_floor.py PORT UPSTREAM_URL ORIGIN
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from aiohttp import web
from yardstick import command_line, cors_fields, preflight_fields, use_uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's proxy/

from proxy.http.rawclient import RawUpstream
from proxy.policy.headers import HOP_BY_HOP

HOP = HOP_BY_HOP | {"vary"}  # Vary is replaced by the fixed one, as nginx-cors does


def main() -> None:
    port, upstream, origin = command_line()
    use_uvloop()
    cors = dict(cors_fields(origin))
    preflight = dict(preflight_fields(origin))

    async def serve() -> None:
        client = RawUpstream(upstream, connect_timeout=5, read_timeout=30)

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                headers = dict(preflight)
                acrh = request.headers.get("Access-Control-Request-Headers")
                if acrh:
                    headers["Access-Control-Allow-Headers"] = acrh
                return web.Response(status=204, headers=headers)
            fwd = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in request.raw_headers
                if k.lower().decode("latin-1") not in HOP
            ]  # the bench sends no request bodies: GET and OPTIONS only
            async with client.request(request.method, request.raw_path, fwd, None) as up:
                resp = web.StreamResponse(status=up.status, reason=up.reason or None)
                for name, value in up.headers:
                    if name.lower() not in HOP and not name.lower().startswith("access-control-"):
                        resp.headers.add(name, value)
                resp.headers.update(cors)
                with contextlib.suppress(ConnectionError):  # wrk hangs up at the end
                    await resp.prepare(request)
                    while chunk := await up.read():
                        await resp.write(chunk)
                    await resp.write_eof()
                return resp

        server = web.Server(handle, access_log=None)
        await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
