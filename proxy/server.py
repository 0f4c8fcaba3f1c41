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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

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
from proxy.http.aiohttp_private import as_http11
from proxy.http.aiohttp_server import (
    MAX_FIELD_SIZE,
    AiohttpHandler,
    AiohttpLogBridge,
    AiohttpRequest,
    AiohttpResponse,
    AiohttpServer,
    client_fields,
)
from proxy.http.downstream import Replay
from proxy.http.endpoints import OWN_PREFIX, own_endpoint
from proxy.http.fastlane import FastRequest, FastResponse, FastServer, parse_head
from proxy.http.inspector import Inspector, container_gateways
from proxy.http.probe import accepts
from proxy.http.rawclient import RawUpstream
from proxy.http.tls import client_context
from proxy.http.upstream import UpstreamClient
from proxy.http.websocket import AnyWebSocket, bridge, is_upgrade
from proxy.inspector.ring import Ring, bounded_fields
from proxy.log.record import Record, safe
from proxy.log.sink import LogSink
from proxy.policy.target import Refusal, Target, request_target, version_refusal

if TYPE_CHECKING:
    from proxy.devserver.supervisor import DevServer

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
        self.config_path = config_path
        self.fast_lane = fast_lane  # False: aiohttp's server answers everything (tests)
        self.overrides = overrides or Overrides()
        self.log = LogSink(log_stream or sys.stderr, config.log_format)
        self._make_client = make_client or _default_client
        self.generation = Generation.build(1, config, self._make_client(config))
        # observe: learning mode, every allowed cross-origin exchange
        # The inspector: the last exchanges, kept while it is enabled, and its page; in
        # learning mode also the rules so far (learned: as YAML) at /__cors-proxy__/learned.
        self.ring = Ring(config.inspector.keep)
        self.inspector = Inspector(
            self.ring,
            lambda: (self.generation.number, self.generation.config),
            self.state,
            learned=learned,
        )
        self.last_reload: dict[str, Any] | None = None
        ring = self.ring if config.inspector.enabled else None
        self.forwarder = Forwarder(lambda: self.generation, self.log, observe, ring)
        self.ws_session: aiohttp.ClientSession | None = None
        self.open_sockets: weakref.WeakSet[AnyWebSocket] = weakref.WeakSet()
        self.runner: web.ServerRunner | None = None
        self.site: web.TCPSite | None = None
        self.server: AiohttpServer | None = None
        self.idle: set[RequestHandler] = set()  # kept-alive between requests (limits only)
        self.port = 0
        self.listening: tuple[str, int] | None = None  # the address bound, as configured
        self.own_origins: frozenset[str] = frozenset()  # pages the proxy serves (start())
        self.devserver: DevServer | None = None  # the supervised dev server (-- COMMAND)
        self.shutdown_timeout = SHUTDOWN_TIMEOUT
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
        target = request_target(request.method, request.raw_path)
        refusal = version_refusal(*request.version)
        if isinstance(target, Refusal):
            return await self.refuse(request, refusal or target)
        if refusal is not None:
            return await self.refuse(request, refusal)
        if target.path.startswith(OWN_PREFIX):
            return await own_endpoint(request, self.health, self.inspector)
        if is_upgrade(request):
            return await self.websocket(request, target)
        response = AiohttpResponse(request, send_timeout=SEND_TIMEOUT)
        await self.forwarder.serve(AiohttpRequest(request, target), response)
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

    def replayed(self, replay: Replay, started: float) -> None:
        """The log line of a preflight the fast lane answered again from ``replay``
        (the same head as before), and the exchange kept for the inspector."""
        ended = time.monotonic()
        ms = (ended - started) * 1000
        self.log.line(replay.line.render(ms))
        ring = self.forwarder.ring
        if ring is not None and replay.rec is not None:
            ring.again(replay.rec, replay.request or (), replay.fields.items, ended, ms)

    def internal_error(self, text: str) -> None:
        self.log.message(text)

    async def refuse(self, request: web.BaseRequest, refusal: Refusal) -> web.StreamResponse:
        """A request the proxy never forwards (``policy.target``): its status and reason,
        the connection closed after it, and its log line."""
        status, reason = refusal
        resp = web.Response(status=status, text=f"cors-proxy: {reason}\n")
        resp.force_close()  # what follows a request line the proxy refuses is not read
        await resp.prepare(as_http11(request))
        origin = request.headers.get("Origin")
        self.log.record(
            Record(
                request.method,
                request.raw_path,
                status,
                origin,
                "no-rule",
                None,
                0.0,
                reason=reason,
            )
        )
        return resp

    async def websocket(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        gen = self.generation
        started = time.monotonic()
        path = target.path
        origin = request.headers.get("Origin")
        allowed = origin is None or origin in self.own_origins
        allowed = allowed or gen.policy.origin_allowed(path, origin or "")
        rule = gen.policy.rule_for(path, origin)
        rec = Record(request.method, path, 0, origin, "ws", rule.name if rule else None, 0.0)
        if self.ws_session is None:
            # No count limit of its own (aiohttp's default of 100 made the 101st upgrade
            # wait while 100 idle sockets were open): limits.max_connections bounds them.
            self.ws_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        assert self.forwarder is not None
        key = self.forwarder.track(rec, started)
        try:
            return await bridge(
                request,
                path=path,
                fields=client_fields(request, target.host),
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
            ended = time.monotonic()
            rec.ms = (ended - started) * 1000
            self.forwarder.done(key, rec)
            if gen.config.inspector.enabled:
                self.ring.add(rec, bounded_fields(request.headers.items()), None, ended)

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
            "devserver": self.devserver.health() if self.devserver is not None else None,
        }

    async def state(self) -> dict[str, Any]:
        """What the inspector's config panel shows besides the rules."""
        health = await self.health()
        return {
            "last_reload": self.last_reload,
            "upstream": {
                "url": health["upstream"],
                "reachable": health["upstream_reachable"],
                "last_failure": self.forwarder.last_failure,
            },
            "health": health,
        }

    def use_upstream(self, url: str) -> tuple[str, int]:
        """Send requests to ``url`` from now on (the dev server's address, from its
        startup line); returns its host and port. Reloads keep it."""
        old = self.generation
        if url != old.config.upstream:
            self.overrides = replace(self.overrides, upstream=url)
            cfg = replace(old.config, upstream=url)
            # The same generation number (the config did not change), a new client.
            self.generation = Generation.build(old.number, cfg, self._make_client(cfg))
            self._retire(old.client)
        target = self.generation.target
        return target.host, target.port

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
            self._reloaded(why, False, old.number, [f"config error: {p}" for p in exc.problems])
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
        self.ring.resize(cfg.inspector.keep)
        self.forwarder.ring = self.ring if cfg.inspector.enabled else None
        self.log.message(
            f"config generation {gen.number} active ({why}): {len(cfg.rules)} rule(s), "
            f"upstream {cfg.upstream}",
            generation=gen.number,
        )
        self._reloaded(why, True, gen.number, [f"config warning: {w}" for w in cfg.warnings])
        return True

    def _reloaded(self, why: str, applied: bool, number: int, messages: list[str]) -> None:
        self.last_reload = {
            "time": time.time(),
            "why": why,
            "applied": applied,
            "generation": number,
            "messages": messages,
        }
        self.inspector.config_changed()

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
        self.inspector.extra_clients = container_gateways()
        self.forwarder.watch = self.devserver
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

    async def stop(self, close_log: bool = True) -> None:
        """Stop serving (exchanges in flight get ``shutdown_timeout``); ``close_log``:
        the log is done too (``run`` closes it itself, after the dev server's last words)."""
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self.site is not None:
            site, self.site = self.site, None  # stop() may run twice (tests, signals)
            await site.stop()  # no new connections from here on
        self.inspector.close()  # open pages' event streams end
        closing = [
            asyncio.wait_for(
                ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"proxy shutting down"),
                WS_CLOSE_TIMEOUT,
            )
            for ws in list(self.open_sockets)
        ]
        await asyncio.gather(*closing, return_exceptions=True)
        fast = self.server.fast if self.server is not None else None
        # The fast lane closes its idle connections now and waits for its answers; the
        # drain cuts off what is left first (a line each), so its grace is a little longer.
        lanes = asyncio.ensure_future(fast.shutdown(self.shutdown_timeout + 1)) if fast else None
        await self.drain(self.shutdown_timeout)
        if lanes is not None:
            await lanes
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
        if close_log:
            self.log.close()  # a reader that stopped reading gets 2 s, not forever
        else:
            self.log.flush()

    async def drain(self, limit: float) -> None:
        """Wait up to ``limit`` seconds for the exchanges in flight; cut off the rest,
        each with its log line."""
        fwd = self.forwarder
        if fwd is None:
            return
        await fwd.wait_idle(limit)
        if fwd.in_flight:
            fwd.cut_off(f"cut off at shutdown after {limit:g} s")
            await asyncio.sleep(0)  # the cancelled exchanges unwind

    def in_flight_text(self, limit: int = 5) -> str:
        """``GET /api/stream (12.0 s), PUT /api/items (0.3 s)``: what shutdown waits for."""
        assert self.forwarder is not None
        now = time.monotonic()
        flights = sorted(self.forwarder.in_flight.values(), key=lambda f: f[1])
        shown = [
            f"{safe(r.method, 20)} {safe(r.path, 80)} ({now - t:.1f} s)" for r, t, _ in flights
        ]
        more = len(shown) - limit
        return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")

    def listening_line(self) -> str:
        cfg = self.generation.config
        host = self.listening[0] if self.listening is not None else cfg.listen_host
        return f"listening on http://{_address(host, self.port)} -> {cfg.upstream}"

    def inspector_line(self) -> str | None:
        """Where the inspector page is, said on stderr after the startup line (None: off)."""
        cfg = self.generation.config
        if not cfg.inspector.enabled:
            return None
        host = self.listening[0] if self.listening is not None else cfg.listen_host
        if host in ("0.0.0.0", "::", ""):  # every interface: this machine's own name
            host = "localhost"
        return f"inspector: http://{_address(host, self.port)}{OWN_PREFIX}"


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


EXIT_INTERRUPTED = 130  # a second Ctrl-C: stopped at once (128 + SIGINT, as shells say)


async def run(
    server: ProxyServer,
    stdout: TextIO,
    command: Sequence[str] = (),
    *,
    upstream_from: str | None = None,
    name: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    more_lines: Sequence[str] = (),
) -> int:
    """Serve until SIGINT/SIGTERM; SIGHUP reloads the config.

    With a ``command`` (``cors-proxy ... -- COMMAND``), run it as the supervised dev
    server: ``upstream_from`` says where the upstream came from, or None to take it from
    the command's startup line. The proxy ends when it ends, with its exit code."""
    from proxy.devserver.supervisor import DevServer
    from proxy.http.probe import accepts as probe

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()  # a second Ctrl-C while shutting down
    signals: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and sig == signal.SIGINT:
            hurry.set()
        signals.append(sig)
        stop.set()

    # Handled before the child is spawned: exec resets handled signals to their default,
    # so a child never inherits an ignored SIGINT from whatever started the proxy.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    if server.config_path:
        loop.add_signal_handler(signal.SIGHUP, lambda: server.reload("SIGHUP"))
    devserver = None
    if command:
        devserver = server.devserver = DevServer(
            command,
            server.log,
            upstream=server.generation.config.upstream if upstream_from else None,
            upstream_from=upstream_from or "",
            use_upstream=server.use_upstream,
            accepts=probe,
            name=name,
            env=env,
            cwd=cwd,
        )
    await server.start()
    for warning in server.generation.config.warnings:
        server.log.message(f"config warning: {warning}")
    line = server.listening_line()
    if devserver is not None and devserver.upstream is None:
        line = line.rsplit(" -> ", 1)[0] + f" -> {devserver.name} (the address it prints)"
    # stdout holds the startup line (and the demo's page) only: scripts wait for it.
    print(line, *more_lines, sep="\n", file=stdout, flush=True)
    inspector = server.inspector_line()
    if inspector is not None:
        server.log.message(inspector)  # for the person at the terminal
    if devserver is not None:
        try:
            devserver.start()
        except OSError as exc:
            server.log.message(f"cannot run {command[0]!r}: {exc.strerror or exc}")
            await server.stop()
            return 127 if isinstance(exc, FileNotFoundError) else 126
    ended = asyncio.ensure_future(devserver.exited.wait() if devserver else asyncio.Event().wait())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
    ended.cancel()
    stopped.cancel()
    code = 0
    fwd = server.forwarder
    assert fwd is not None
    if devserver is not None and devserver.exited.is_set() and not stop.is_set():
        code = devserver.exit_code()  # it ended on its own: so does the proxy
        server.log.message(f"shutting down: {devserver.name} is not running")
    elif fwd.in_flight:
        again = "; Ctrl-C again to stop at once" if signals[-1] == signal.SIGINT else ""
        server.log.message(
            f"shutting down: finishing {len(fwd.in_flight)} in-flight exchange"
            f"{'s' if len(fwd.in_flight) != 1 else ''}: {server.in_flight_text()} "
            f"(up to {server.shutdown_timeout:g} s{again})"
        )
    else:
        server.log.message("shutting down")
    # bounded by shutdown_timeout; a second SIGINT meanwhile cuts the exchanges off
    stopping = asyncio.ensure_future(server.stop(close_log=False))
    hurried = asyncio.ensure_future(hurry.wait())
    await asyncio.wait({stopping, hurried}, return_when=asyncio.FIRST_COMPLETED)
    hurried.cancel()
    if hurry.is_set() and not stopping.done():
        fwd.cut_off("cut off at shutdown (a second Ctrl-C)")
        code = EXIT_INTERRUPTED
        await asyncio.wait({stopping}, timeout=1.0)
        if not stopping.done():
            stopping.cancel()
    if devserver is not None:
        await devserver.stop(hurry)
    if hurry.is_set() and code == 0:
        code = EXIT_INTERRUPTED  # a second Ctrl-C, also while the dev server stopped
    server.log.close()  # a reader that stopped reading gets 2 s, not forever
    for sig in (signal.SIGINT, signal.SIGTERM):
        # A repeated SIGTERM (``docker stop`` racing a supervisor) while the interpreter
        # winds down must not turn a clean exit into "killed by signal".
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    return code
