"""The inspector's I/O: the page at ``/__cors-proxy__/``, its assets, the JSON API and
the server-sent events (aiohttp; the fast lane hands every ``/__cors-proxy__/`` request
over to aiohttp's server).

Safe by construction: no CORS headers (another origin's script cannot read any of it),
a strict Content-Security-Policy with Trusted Types, no external assets, and answers
only for the clients and host names ``proxy.inspector.access`` allows.

In learning mode (``cors-proxy learn``) it also serves the rules learned so far at
``learned``; the page fetches them when an event says new exchanges arrived.

Cost: nothing runs per exchange unless a page listens. Then the ring wakes this module
at most once per ``TICK``, which sends the newest ``MAX_BATCH`` exchanges (and the
counts of all) to every page in one write each: at most 200 exchanges a second are
described, however many pass.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from proxy.config.model import Config, check_lines
from proxy.http.aiohttp_server import AiohttpHandler
from proxy.http.probe import in_container
from proxy.inspector import view
from proxy.inspector.access import (
    Network,
    client_allowed,
    default_gateways,
    host_allowed,
    networks,
)
from proxy.inspector.ring import Ring

TICK = 0.25  # seconds between pushes to open pages (the page shows news within this)
MAX_BATCH = 50  # exchanges per push; under load the counts still cover every one
MAX_SNAPSHOT = 1000  # exchanges a page gets when it connects (newest first)
PAIR_CONTEXT = 256  # earlier exchanges searched for the preflight of a pushed request
MAX_LISTENERS = 16  # pages open at once
QUEUE = 16  # pushes waiting for a slow page before it is disconnected (it reconnects)
HEARTBEAT = 15.0  # seconds between comments on a quiet stream (proxies, timeouts)
CLOSED_CHECK = 1.0  # seconds between looks at whether a quiet page's connection closed
CLEAR_HEADER = "X-Cors-Proxy-Inspector"  # a POST needs it: a cross-origin form cannot send it

ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "inspector.js": ("inspector.js", "text/javascript; charset=utf-8"),
    "inspector.css": ("inspector.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Current = Callable[[], tuple[int, Config]]  # the running generation's number and config
State = Callable[[], Awaitable[dict[str, Any]]]  # last reload, upstream: for /config
Learned = Callable[[], str]  # learning mode's rules so far, as YAML


class Listener:
    """One open page's event stream: pushes wait in ``queue`` (None: the end)."""

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.transport = transport
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE)

    def offer(self, data: bytes | None) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:  # the page reads slower than we push: let it reconnect
            if self.transport is not None:
                self.transport.abort()


class Inspector:
    def __init__(
        self,
        ring: Ring,
        current: Current,
        state: State,
        extra_clients: tuple[str, ...] = (),
        learned: Learned | None = None,
    ) -> None:
        self.ring = ring
        self.current = current
        self.state = state
        self.learned = learned  # None: not in learning mode (no /learned, no panel)
        self.extra_clients = extra_clients  # a container's gateway (published ports)
        self.listeners: set[Listener] = set()
        self.sent = 0  # the newest id pushed to the pages
        self._allowed: tuple[tuple[str, ...] | None, tuple[Network, ...]] = (None, ())
        self._assets: dict[str, bytes] = {}

    # -- access -------------------------------------------------------------------------

    def refusal(self, request: web.BaseRequest, cfg: Config, name: str) -> web.Response | None:
        ins = cfg.inspector
        if not ins.enabled:
            return _text(404, "the inspector is off (inspector.enabled: false in the config)")
        if self._allowed[0] != ins.allow:
            self._allowed = (ins.allow, networks((*ins.allow, *self.extra_clients)))
        if not client_allowed(request.remote or "", self._allowed[1]):
            return _text(
                403,
                "the inspector answers loopback clients only; "
                "add this client's network to inspector.allow in the config",
            )
        if not host_allowed(request.host, ins.hosts):
            return _text(
                403,
                "the inspector answers to localhost, *.localhost and IP addresses only "
                "(a page on another name may be a DNS rebinding attack); "
                "add the name to inspector.hosts in the config",
            )
        site = request.headers.get("Sec-Fetch-Site")
        # A link from another site may open the page itself (static HTML); its data needs
        # same-origin requests, which only the page makes.
        page = (
            name in ("", "index.html")
            and request.headers.get("Sec-Fetch-Mode") == "navigate"
            and request.method == "GET"
        )
        if site not in (None, "same-origin", "none") and not page:
            return _text(403, "the inspector's data is for its own page only")
        return None

    # -- dispatch -----------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest, name: str) -> web.StreamResponse:
        """Answer ``/__cors-proxy__/<name>`` (not ``health``)."""
        number, cfg = self.current()
        refused = self.refusal(request, cfg, name)
        if refused is not None:
            return refused
        if name == "clear":
            if request.method != "POST":
                return _text(405, "use POST", Allow="POST")
            return self.clear(request)
        if request.method not in ("GET", "HEAD"):
            return _text(405, "use GET", Allow="GET, HEAD")
        if name in ASSETS:
            return self.asset(name)
        if name == "exchanges":
            return self.exchanges(request, number, cfg)
        if name.startswith("exchanges/"):
            return self.one(name.removeprefix("exchanges/"), cfg)
        if name == "events":
            if request.method != "GET":
                return _text(405, "use GET", Allow="GET")
            return await self.events(request, number, cfg)
        if name == "config":
            return _json(await self.config(number, cfg))
        if name == "learned" and self.learned is not None:
            return web.Response(
                body=self.learned().encode(),
                headers={**SECURITY_HEADERS, "Content-Type": "application/yaml; charset=utf-8"},
            )
        return _json({"error": "not found", "detail": f"no inspector page {name!r}"}, 404)

    def asset(self, name: str) -> web.Response:
        file, kind = ASSETS[name]
        body = self._assets.get(file)
        if body is None:
            body = (resources.files("proxy.inspector") / "static" / file).read_bytes()
            self._assets[file] = body
        return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": kind})

    # -- the JSON API ---------------------------------------------------------------------

    def batch(self, after: int, limit: int, cfg: Config) -> list[dict[str, Any]]:
        """The newest exchanges above id ``after`` (at most ``limit``), newest first."""
        ring = self.ring
        lo = max(after + 1, ring.last_id - limit + 1)
        window = ring.window(lo - PAIR_CONTEXT, ring.last_id)
        entries = [e for e in window if e[0] >= lo]
        entries.reverse()
        return view.exchanges(entries, cfg, [e for e in window if e[0] < lo])

    def exchanges(self, request: web.BaseRequest, number: int, cfg: Config) -> web.Response:
        q = request.query
        try:
            after = int(q.get("after", "0"))
            limit = int(q.get("limit", str(self.ring.keep)))
        except ValueError:
            return _json({"error": "after and limit are whole numbers"}, 400)
        found = self.batch(after, max(0, min(limit, self.ring.keep)), cfg)
        wanted = _filters(q)
        return _json(
            {
                "exchanges": [ex for ex in found if wanted(ex)],
                "summary": view.summary(self.ring, number),
            }
        )

    def one(self, ident: str, cfg: Config) -> web.Response:
        entry = self.ring.get(int(ident)) if ident.isdigit() and len(ident) < 20 else None
        if entry is None:
            return _json({"error": "not found", "detail": f"exchange {ident} is not kept"}, 404)
        n = entry[0]
        around = self.ring.window(n - PAIR_CONTEXT, n + PAIR_CONTEXT)
        pair = view.pair_up(around).get(n)
        return _json(view.exchange(entry, cfg, pair))

    async def config(self, number: int, cfg: Config) -> dict[str, Any]:
        state = await self.state()
        learning = self.learned is not None
        return {"generation": number, "check": check_lines(cfg), "learning": learning, **state}

    def clear(self, request: web.BaseRequest) -> web.Response:
        origin = request.headers.get("Origin")
        if request.headers.get(CLEAR_HEADER) != "clear" or (
            origin is not None and origin != f"{request.scheme}://{request.host}"
        ):
            return _text(403, f"clearing needs the header {CLEAR_HEADER}: clear, from this page")
        self.ring.clear()
        number, _ = self.current()
        data = {"summary": view.summary(self.ring, number)}
        self.push(_event("clear", data, self.ring.last_id))
        return _json({"cleared": True, **data})

    # -- server-sent events ---------------------------------------------------------------

    async def events(
        self, request: web.BaseRequest, number: int, cfg: Config
    ) -> web.StreamResponse:
        if len(self.listeners) >= MAX_LISTENERS:
            return _text(503, f"too many inspector pages open (at most {MAX_LISTENERS})")
        last = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
        after = int(last) if last.isdigit() and len(last) < 20 else 0
        if after > self.ring.last_id:  # a page from before a restart
            after = 0
        resp = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        # No await between the snapshot and joining the listeners: nothing is missed.
        snapshot = {
            "exchanges": self.batch(after, min(self.ring.keep, MAX_SNAPSHOT), cfg),
            "summary": view.summary(self.ring, number),
            "learning": self.learned is not None,  # the page shows the learned rules
        }
        listener = self.listen(request.transport)
        try:
            await resp.write(b"retry: 2000\n\n" + _event("exchanges", snapshot, self.ring.last_id))
            quiet = 0.0
            while True:
                try:
                    data = await asyncio.wait_for(listener.queue.get(), CLOSED_CHECK)
                except TimeoutError:
                    if _page_gone(request):
                        break  # its place is free now, not at the next push or heartbeat
                    quiet += CLOSED_CHECK
                    if quiet < HEARTBEAT:
                        continue
                    data = b": still here\n\n"
                if data is None:
                    break
                quiet = 0.0
                await resp.write(data)
        except ConnectionError:
            pass  # the page was closed
        finally:
            self.unlisten(listener)
        return resp

    def listen(self, transport: asyncio.Transport | None) -> Listener:
        """A page starts listening: from now on each capture wakes the pushes."""
        listener = Listener(transport)
        if not self.listeners:
            self.sent = self.ring.last_id
            self.ring.wake = self._wake
        self.listeners.add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners:
            self.ring.wake = None

    def _wake(self) -> None:
        """Called by the ring after a capture (only while pages listen): push soon."""
        self.ring.wake = None  # until the push: one timer per TICK, not per exchange
        asyncio.get_running_loop().call_later(TICK, self._tick)

    def _tick(self) -> None:
        if not self.listeners:
            return
        number, cfg = self.current()
        found = self.batch(self.sent, MAX_BATCH, cfg)
        data = {
            "exchanges": found,
            "summary": view.summary(self.ring, number),
            "skipped": self.ring.last_id - self.sent - len(found),  # under load
        }
        self.sent = self.ring.last_id
        self.push(_event("exchanges", data, self.sent))
        self.ring.wake = self._wake

    def push(self, data: bytes) -> None:
        for listener in list(self.listeners):
            listener.offer(data)

    def config_changed(self) -> None:
        """A reload (applied or not): open pages fetch the config again."""
        if self.listeners:
            number, _ = self.current()
            summary = view.summary(self.ring, number)
            self.push(_event("config", {"summary": summary}, self.ring.last_id))

    def close(self) -> None:
        """Shutdown: end every event stream (their pages see the proxy go away)."""
        for listener in list(self.listeners):
            listener.offer(None)


def _page_gone(request: web.BaseRequest) -> bool:
    """The page's connection is closed, or the browser ended it (FIN: a page never
    half-closes an event stream, so the proxy keeping it half-open waits for nothing)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    return isinstance(request.protocol, AiohttpHandler) and request.protocol.peer_eof


def container_gateways() -> tuple[str, ...]:
    """In a container, the addresses a published port's connections come from: the
    default gateway (Docker's userland proxy, podman's rootless port forwarder)."""
    if not in_container():
        return ()
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            return tuple(default_gateways(f.read()))
    except OSError:
        return ()


def _event(kind: str, data: dict[str, Any], ident: int) -> bytes:
    # ensure_ascii: no raw line separators; json never emits a raw newline
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return f"event: {kind}\nid: {ident}\ndata: {body}\n\n".encode("ascii")


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, ensure_ascii=True).encode("ascii"),
        headers={**SECURITY_HEADERS, "Content-Type": "application/json"},
    )


def _text(status: int, text: str, **extra: str) -> web.Response:
    return web.Response(
        status=status,
        body=f"cors-proxy: {text}\n".encode(),
        headers={**SECURITY_HEADERS, **extra, "Content-Type": "text/plain; charset=utf-8"},
    )


def _filters(q: Any) -> Callable[[dict[str, Any]], bool]:
    blocked = q.get("blocked") in ("1", "true")
    errors = q.get("errors") in ("1", "true")
    origin = q.get("origin")
    path = q.get("path")
    search = (q.get("q") or "").lower()

    def wanted(ex: dict[str, Any]) -> bool:
        if blocked and not ex["blocked"]:
            return False
        if errors and not ex["error"]:
            return False
        if origin is not None and ex["origin"] != (None if origin == "" else origin):
            return False
        if path and path not in ex["path"]:
            return False
        return not search or search in json.dumps(ex, ensure_ascii=False).lower()

    return wanted
