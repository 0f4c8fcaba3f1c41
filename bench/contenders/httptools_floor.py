"""The floor of cors-proxy's fast lane, measured beside it: not a product, a yardstick.

The fast lane's shape (an ``asyncio.Protocol`` parsing request heads with httptools, one
task per forwarded request, the answer written straight to the transport) with the
project's upstream client (``proxy.http.rawclient.RawUpstream``), doing only what nginx-cors's
config does: a fixed 204 for preflights, and for everything else the upstream's response
with hop-by-hop fields dropped and fixed CORS headers added. No policy, no log line, no
diagnosis, no keep-alive expiry, no handover, no limits. What cors-proxy costs above this
is the product's own per-exchange work (bench/RESULTS.md, "The ceiling").

    python bench/contenders/httptools_floor.py PORT UPSTREAM_URL ORIGIN
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httptools
from yardstick import command_line, cors_fields, preflight_fields, use_uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's proxy/

from proxy.http.rawclient import RawUpstream
from proxy.policy.headers import HOP_BY_HOP

HOP = HOP_BY_HOP | {"vary"}  # Vary is replaced by the fixed one, as nginx-cors does


class Floor(asyncio.Protocol):
    def __init__(self, client: RawUpstream, cors: str, preflight: str) -> None:
        self.client = client
        self.cors = cors
        self.preflight = preflight
        self.parser = httptools.HttpRequestParser(self)
        self.queue: list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]] = []
        self.busy = False
        self.tasks: set[asyncio.Future[None]] = set()
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url, self.headers = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.queue.append((self.parser.get_method(), self.url, self.headers))
        if not self.busy:
            self.next()

    def next(self) -> None:
        while self.queue and not self.busy:
            method, url, headers = self.queue.pop(0)
            if method == b"OPTIONS":
                acrh = next(
                    (v for n, v in headers if n.lower() == b"access-control-request-headers"),
                    None,
                )
                allow = f"Access-Control-Allow-Headers: {acrh.decode()}\r\n" if acrh else ""
                self.transport.write(f"{self.preflight}{allow}\r\n".encode())
                continue
            self.busy = True
            task = asyncio.ensure_future(self.forward(method.decode(), url.decode(), headers))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def forward(self, method: str, url: str, headers: list[tuple[bytes, bytes]]) -> None:
        fwd = [
            (n.decode("latin-1"), v.decode("latin-1"))
            for n, v in headers
            if n.lower().decode("latin-1") not in HOP
        ]  # the bench sends no request bodies: GET and OPTIONS only
        try:
            async with self.client.request(method, url, fwd, None) as up:
                lines = [f"HTTP/1.1 {up.status} {up.reason}\r\n"]
                length = False
                for n, v in up.headers:
                    low = n.lower()
                    if low in HOP or low.startswith("access-control-"):
                        continue
                    length = length or low == "content-length"
                    lines.append(f"{n}: {v}\r\n")
                lines.append(self.cors)
                lines.append("\r\n" if length else "Transfer-Encoding: chunked\r\n\r\n")
                head = "".join(lines).encode("latin-1")
                chunk = await up.read()
                if length:
                    self.transport.write(head + chunk)
                    while chunk := await up.read():
                        self.transport.write(chunk)
                else:
                    self.transport.write(head)
                    while chunk:
                        self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                        chunk = await up.read()
                    self.transport.write(b"0\r\n\r\n")
        except Exception:  # wrk hangs up at the end; a yardstick does not explain
            self.transport.abort()
        self.busy = False
        self.next()


def fixed_headers(origin: str) -> tuple[str, str]:
    """nginx-cors's fixed CORS lines for an answer, and its whole preflight head."""
    cors = "".join(f"{name}: {value}\r\n" for name, value in cors_fields(origin))
    preflight = "HTTP/1.1 204 No Content\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in preflight_fields(origin)
    )
    return cors, preflight


def main() -> None:
    port, upstream, origin = command_line()
    use_uvloop()
    cors, preflight = fixed_headers(origin)

    async def serve() -> None:
        client = RawUpstream(upstream, connect_timeout=5, read_timeout=30)
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: Floor(client, cors, preflight), "127.0.0.1", port)
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
