"""Wiring: the servers, the log sink, config generations and reload, health, shutdown.

A low-level ``web.Server`` with one handler serves every request: no router or
middleware on the hot path (the bench notes measured them). The handler dispatches
to the proxy's own endpoints, the WebSocket bridge or the forwarder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy import __version__
from proxy.config.loader import load
from proxy.config.model import Config, Overrides
from proxy.errors import ConfigError
from proxy.export.learn import Observation
from proxy.forward import Forwarder
from proxy.generation import Generation, RequestPlan
from proxy.http.aiohttp_server import (
    MAX_FIELD_SIZE,
    AiohttpHandler,
    AiohttpLogBridge,
    AiohttpRequest,
    AiohttpResponse,
    AiohttpServer,
)
from proxy.http.downstream import Replay
from proxy.http.endpoints import OWN_PREFIX, own_endpoint
from proxy.http.fastlane import FastRequest, FastResponse, FastServer, parse_head
from proxy.http.probe import accepts
from proxy.http.rawclient import RawUpstream
from proxy.http.tls import client_context
from proxy.http.upstream import UpstreamClient
from proxy.http.websocket import AnyWebSocket, bridge, is_upgrade
from proxy.log.record import Record
from proxy.log.sink import LogSink

SHUTDOWN_TIMEOUT = 5.0  # seconds in-flight requests get after SIGTERM
WS_CLOSE_TIMEOUT = 2.0  # seconds a WebSocket peer gets to answer the 1001 close frame
WATCH_INTERVAL = 1.0  # config file polling; inotify does not see bind-mount edits
# Seconds an idle keep-alive connection stays open, on the fast lane and on aiohttp's
# server alike (nginx's keepalive_timeout; aiohttp's own default is 3,630 s).
KEEPALIVE_TIMEOUT = 75.0
# Seconds a request head may take from its first byte on the fast lane (nginx's
# client_header_timeout); on aiohttp's server the idle timeout above bounds it.
HEAD_TIMEOUT = 60.0
# Seconds a client may read nothing of an answer before it is cut, on both servers (nginx's
# send_timeout): a client that never reads never pins an upstream connection.
SEND_TIMEOUT = 60.0
# Seconds a connection may wait, accepted but unread, under limits.max_connections.
HELD_TIMEOUT = 60.0
# Seconds a reload's replaced upstream client lives on for the exchanges still using it
# (then closed; at shutdown at once).
RETIRE_AFTER = 60.0
WATCH_SETTLE = 0.1  # a changed file is read once it stops changing (editors write in steps)


class ProxyServer:
    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        overrides: Overrides | None = None,
        log_stream: TextIO | None = None,
        make_client: Callable[[Config], UpstreamClient] | None = None,
        fast_lane: bool = True,
        observe: Callable[[Observation], None] | None = None,
        learned: Callable[[], str] | None = None,
    ) -> None:
        # Learning mode's rules so far, as YAML: served at /__cors-proxy__/learned (the
        # inspector page can show the same text).
        self.learned = learned
        self.config_path = config_path
        self.fast_lane = fast_lane  # False: aiohttp's server answers everything (tests)
        self.overrides = overrides or Overrides()
        self.log = LogSink(log_stream or sys.stderr, config.log_format)
        self._make_client = make_client or _default_client
        self.generation = Generation.build(1, config, self._make_client(config))
        # observe: learning mode, every allowed cross-origin exchange
        self.forwarder = Forwarder(lambda: self.generation, self.log, observe)
        self.ws_session: aiohttp.ClientSession | None = None
        self.open_sockets: weakref.WeakSet[AnyWebSocket] = weakref.WeakSet()
        self.runner: web.ServerRunner | None = None
        self.site: web.TCPSite | None = None
        self.server: AiohttpServer | None = None
        self.idle: set[RequestHandler] = set()  # kept-alive between requests (limits only)
        self.port = 0
        self.listening: tuple[str, int] | None = None  # the address bound, as configured
        self.own_origins: frozenset[str] = frozenset()  # pages the proxy serves (start())
        self._watch_task: asyncio.Task[None] | None = None
        # upstream clients a reload replaced, each with the task that closes it later
        self._retiring: dict[asyncio.Future[None], UpstreamClient] = {}
        self._log_bridge = AiohttpLogBridge(self.log)
        self._file_stamp = _stamp(config_path)

    def max_connections(self) -> int | None:
        return self.generation.config.max_connections

    # -- request dispatch -----------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        proto = request.protocol
        if isinstance(proto, AiohttpHandler):
            proto.body = request.content
        if self.generation.config.max_connections is None:
            return await self.dispatch(request)
        self.idle.discard(proto)
        try:
            return await self.dispatch(request)
        finally:
            if self.server is not None and self.server.held:
                proto.close()  # after this response: a waiting connection takes the slot
            else:
                self.idle.add(proto)

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.raw_path.startswith(OWN_PREFIX):
            return await own_endpoint(request, self.health, self.learned)
        if is_upgrade(request):
            return await self.websocket(request)
        response = AiohttpResponse(request, send_timeout=SEND_TIMEOUT)
        await self.forwarder.serve(AiohttpRequest(request), response)
        assert response.response is not None, "the forwarder answers every request"
        return response.response

    # -- the fast lane's handler (http.fastlane.LaneHandler) ------------------------------

    def prepare(self, raw: bytes) -> RequestPlan | None:
        """The request head ``raw``, parsed and planned once per config generation (its
        request cache); None: aiohttp's server should have the connection."""
        gen = self.generation
        plan = gen.requests.get(raw)
        if plan is None:
            head = parse_head(raw)
            if head is None:
                return None
            plan = gen.plan(raw, head)
        return plan

    def answer_now(
        self, plan: RequestPlan, request: FastRequest, response: FastResponse
    ) -> Replay | bool:
        """A preflight, answered without a task."""
        return self.forwarder.answer_now(request, response, plan)

    def answer(
        self, plan: RequestPlan, request: FastRequest, response: FastResponse
    ) -> Awaitable[None]:
        """Any other body-less request (never an own endpoint or an upgrade: those are
        handed over to aiohttp's server)."""
        return self.forwarder.forward(request, response, plan)

    def take_over(self) -> asyncio.Protocol:
        assert self.server is not None
        return self.server.handler()

    def log_line(self, text: str) -> None:
        self.log.line(text)

    def internal_error(self, text: str) -> None:
        self.log.message(text)

    async def websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        gen = self.generation
        started = time.monotonic()
        origin = request.headers.get("Origin")
        allowed = origin is None or origin in self.own_origins
        allowed = allowed or gen.policy.origin_allowed(request.raw_path, origin or "")
        rule = gen.policy.rule_for(request.raw_path, origin)
        rec = Record(
            request.method, request.raw_path, 0, origin, "ws", rule.name if rule else None, 0.0
        )
        if self.ws_session is None:
            # No count limit of its own (aiohttp's default of 100 made the 101st upgrade
            # wait while 100 idle sockets were open): limits.max_connections bounds them.
            self.ws_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        try:
            return await bridge(
                request,
                session=self.ws_session,
                upstream=gen.target,
                upstream_authority=gen.target.authority
                if gen.config.host_header == "upstream"
                else None,
                origin_allowed=allowed,
                tls=client_context(gen.config.upstream_tls)
                if gen.target.scheme == "https"
                else None,
                open_sockets=self.open_sockets,
                rec=rec,
            )
        finally:
            rec.ms = (time.monotonic() - started) * 1000
            self.log.record(rec)

    async def health(self) -> dict[str, Any]:
        """The body of ``/__cors-proxy__/health``."""
        gen = self.generation
        limit = min(gen.config.connect_timeout, 1.0)
        reachable = await accepts(gen.target.host, gen.target.port, limit)
        return {
            "status": "ok",
            "version": __version__,
            "upstream": gen.config.upstream,
            "upstream_reachable": reachable,
            "config_generation": gen.number,
            "config": self.config_path,
            "log": {"dropped_lines": self.log.dropped, "waiting_bytes": self.log.waiting},
        }

    # -- config reload --------------------------------------------------------------------

    def reload(self, why: str) -> bool:
        """Load the config file again; keep the running config when the new one is bad."""
        old = self.generation
        self._file_stamp = _stamp(self.config_path)  # the watcher must not load it again
        try:
            cfg = load(self.config_path, self.overrides, empty_ok=False)
        except ConfigError as exc:
            for problem in exc.problems:
                self.log.message(f"config error: {problem}")
            self.log.message(
                f"config reload ({why}) rejected; generation {old.number} stays active",
                generation=old.number,
            )
            return False
        for warning in cfg.warnings:
            self.log.message(f"config warning: {warning}")
        client = old.client
        if (cfg.upstream, cfg.connect_timeout, cfg.read_timeout, cfg.upstream_tls) != (
            old.config.upstream,
            old.config.connect_timeout,
            old.config.read_timeout,
            old.config.upstream_tls,
        ):
            client = self._make_client(cfg)
            # In-flight exchanges keep the old pool (their generation's) until they finish.
            self._retire(old.client)
        gen = Generation.build(old.number + 1, cfg, client)
        if self.listening is not None:
            host, port = self.listening
            if cfg.listen_host != host or cfg.listen_port not in (port, self.port):
                self.log.message(
                    f"config note: listen {_address(cfg.listen_host, cfg.listen_port)} takes"
                    f" effect after a restart (listening on {_address(host, self.port)})"
                )
        self.generation = gen
        self.log.message(
            f"config generation {gen.number} active ({why}): {len(cfg.rules)} rule(s), "
            f"upstream {cfg.upstream}",
            generation=gen.number,
        )
        return True

    def _retire(self, client: UpstreamClient) -> None:
        """Close ``client`` once the exchanges in flight on it are done: ``RETIRE_AFTER``
        seconds from now, or at shutdown (``stop``), whichever comes first."""

        async def later() -> None:
            await asyncio.sleep(RETIRE_AFTER)
            await client.close()

        task = asyncio.ensure_future(later())
        self._retiring[task] = client
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            stamp = _stamp(self.config_path)
            if stamp == self._file_stamp:
                continue
            for _ in range(20):  # bounded: an editor that never stops writing still reloads
                await asyncio.sleep(WATCH_SETTLE)
                again = _stamp(self.config_path)
                if again == stamp:
                    break
                stamp = again
            if stamp is not None and stamp != self._file_stamp:  # not reloaded by SIGHUP
                self.reload("file changed")
            self._file_stamp = stamp

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.generation.config
        server_log = logging.getLogger("aiohttp.server")
        server_log.addHandler(self._log_bridge)
        server_log.propagate = False
        self.server = server = AiohttpServer(
            self,
            access_log=None,
            handler_cancellation=False,
            max_field_size=MAX_FIELD_SIZE,
            max_line_size=MAX_FIELD_SIZE,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            held_timeout=HELD_TIMEOUT,
        )
        if self.fast_lane:
            server.fast = FastServer(
                self,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
                head_timeout=HEAD_TIMEOUT,
                send_timeout=SEND_TIMEOUT,
            )
        self.runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self.runner.setup()
        self.site = site = web.TCPSite(self.runner, cfg.listen_host, cfg.listen_port)
        await site.start()
        self.port = self.runner.addresses[0][1]  # the real port when 0 was asked for
        self.listening = (cfg.listen_host, cfg.listen_port)  # as asked (port 0: any)
        self.own_origins = cfg.own_origins(self.port)
        if self.config_path:
            self._watch_task = asyncio.ensure_future(self.watch())

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self.site is not None:
            site, self.site = self.site, None  # stop() may run twice (tests, signals)
            await site.stop()  # no new connections from here on
        closing = [
            asyncio.wait_for(
                ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"proxy shutting down"),
                WS_CLOSE_TIMEOUT,
            )
            for ws in list(self.open_sockets)
        ]
        await asyncio.gather(*closing, return_exceptions=True)
        if self.server is not None and self.server.fast is not None:
            await self.server.fast.shutdown(SHUTDOWN_TIMEOUT)
        if self.runner is not None:
            await self.runner.cleanup()
        if self.ws_session is not None:
            await self.ws_session.close()
        await self.generation.client.close()
        retiring = list(self._retiring.items())
        for task, client in retiring:
            task.cancel()  # its client is closed now, not after RETIRE_AFTER
            await client.close()
        await asyncio.gather(*(task for task, _ in retiring), return_exceptions=True)
        logging.getLogger("aiohttp.server").removeHandler(self._log_bridge)
        self.log.close()  # a reader that stopped reading gets 2 s, not forever

    def listening_line(self) -> str:
        cfg = self.generation.config
        host = self.listening[0] if self.listening is not None else cfg.listen_host
        return f"listening on http://{_address(host, self.port)} -> {cfg.upstream}"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _default_client(cfg: Config) -> UpstreamClient:
    return RawUpstream(
        cfg.target,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        tls=client_context(cfg.upstream_tls) if cfg.target.scheme == "https" else None,
    )


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def run(server: ProxyServer, stdout: TextIO) -> int:
    """Serve until SIGINT/SIGTERM; SIGHUP reloads the config."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if server.config_path:
        loop.add_signal_handler(signal.SIGHUP, lambda: server.reload("SIGHUP"))
    await server.start()
    for warning in server.generation.config.warnings:
        server.log.message(f"config warning: {warning}")
    print(server.listening_line(), file=stdout, flush=True)
    await stop.wait()
    server.log.message("shutting down: finishing in-flight requests")
    await server.stop()  # bounded by SHUTDOWN_TIMEOUT; a second signal meanwhile is a no-op
    for sig in (signal.SIGINT, signal.SIGTERM):
        # A repeated SIGTERM (``docker stop`` racing a supervisor) while the interpreter
        # winds down must not turn a clean exit into "killed by signal".
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    return 0
