"""Wiring: the aiohttp server, the log sink, config reload, health, shutdown (I/O).

A low-level ``web.Server`` with one handler serves every request: no router or
middleware on the hot path (the bench notes measured them). The handler dispatches
to the proxy's own endpoints, the WebSocket bridge or the forwarder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import weakref
from collections.abc import Callable
from typing import TextIO

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from proxy import __version__
from proxy.config import Config, Overrides, load
from proxy.errors import ConfigError
from proxy.forward import OWN_PREFIX, Forwarder, Generation
from proxy.logfmt import Record, safe
from proxy.upstream import AiohttpUpstream, UpstreamClient
from proxy.websocket import bridge, is_upgrade

SHUTDOWN_TIMEOUT = 5.0  # seconds in-flight requests get after SIGTERM
WATCH_INTERVAL = 1.0  # config file polling; inotify does not see bind-mount edits


class LogSink:
    """Buffers log lines and writes them once per event-loop tick (cheap per line)."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.fmt = fmt
        # Colors only for people: a terminal, and not when NO_COLOR is set.
        self.color = fmt == "text" and _isatty(stream) and "NO_COLOR" not in os.environ
        self._lines: list[str] = []
        self._scheduled = False

    def record(self, rec: Record) -> None:
        self.line(rec.json() if self.fmt == "json" else rec.text(self.color))

    def message(self, text: str, **fields: object) -> None:
        if self.fmt == "json":
            self.line(json.dumps({"message": text, **fields}, ensure_ascii=True, default=str))
        else:
            self.line(text)

    def line(self, text: str) -> None:
        self._lines.append(text)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()


class _AiohttpLogBridge(logging.Handler):
    """aiohttp logs a full traceback for every malformed request it rejects with 400;
    the terminal gets one line instead."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage | LineTooLong | HttpProcessingError):
            first = (getattr(exc, "message", "") or str(exc)).strip().splitlines()
            why = first[0].rstrip(":") if first else type(exc).__name__
            self.sink.message(f"rejected a malformed request with {exc.code}: {safe(why)}")
        elif record.levelno >= logging.WARNING:
            text = record.getMessage() + (f": {exc!r}" if exc else "")
            self.sink.message(f"aiohttp: {safe(text)}")


class ProxyServer:
    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        overrides: Overrides | None = None,
        log_stream: TextIO | None = None,
        make_client: Callable[[Config], UpstreamClient] | None = None,
    ) -> None:
        self.config_path = config_path
        self.overrides = overrides or Overrides()
        self.log = LogSink(log_stream or sys.stderr, config.log_format)
        self._make_client = make_client or _default_client
        self.generation = Generation.build(1, config)
        # The client (a ClientSession) needs a running loop: made in start().
        self.client: UpstreamClient | None = None
        self.forwarder: Forwarder | None = None
        self.ws_session: aiohttp.ClientSession | None = None
        self.open_sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.runner: web.ServerRunner | None = None
        self.port = 0
        self._watch_task: asyncio.Task[None] | None = None
        self._log_bridge = _AiohttpLogBridge(self.log)
        self._file_stamp = _stamp(config_path)

    # -- request dispatch -----------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.raw_path.startswith(OWN_PREFIX):
            return await self.own_endpoint(request)
        if is_upgrade(request):
            return await self.websocket(request)
        assert self.forwarder is not None
        return await self.forwarder.handle(request)

    async def websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        gen = self.generation
        started = time.monotonic()
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.host}"
        allowed = origin is None or origin == own
        allowed = allowed or gen.policy.origin_allowed(request.raw_path, origin or "")
        rule = gen.policy.rule_for(request.raw_path)
        rec = Record(
            request.method, request.raw_path, 0, origin, "ws", rule.name if rule else None, 0.0
        )
        if self.ws_session is None:
            self.ws_session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        try:
            return await bridge(
                request,
                session=self.ws_session,
                upstream=gen.config.upstream,
                upstream_authority=gen.upstream_authority
                if gen.config.host_header == "upstream"
                else None,
                origin_allowed=allowed,
                open_sockets=self.open_sockets,
                rec=rec,
            )
        finally:
            rec.ms = (time.monotonic() - started) * 1000
            self.log.record(rec)

    async def own_endpoint(self, request: web.BaseRequest) -> web.StreamResponse:
        gen = self.generation
        if request.path == OWN_PREFIX + "health":
            reachable = await _reachable(gen.config.upstream, min(gen.config.connect_timeout, 1.0))
            body = {
                "status": "ok",
                "version": __version__,
                "upstream": gen.config.upstream,
                "upstream_reachable": reachable,
                "config_generation": gen.number,
                "config": self.config_path,
            }
            return web.json_response(body, headers={"Cache-Control": "no-store"})
        return web.json_response(
            {"error": "not found", "detail": f"{OWN_PREFIX} is reserved for cors-proxy"},
            status=404,
        )

    # -- config reload --------------------------------------------------------------------

    def reload(self, why: str) -> bool:
        """Load the config file again; keep the running config when the new one is bad."""
        old = self.generation
        try:
            cfg = load(self.config_path, self.overrides)
        except ConfigError as exc:
            for problem in exc.problems:
                self.log.message(f"config error: {problem}")
            self.log.message(
                f"config reload ({why}) rejected; generation {old.number} stays active",
                generation=old.number,
            )
            return False
        gen = Generation.build(old.number + 1, cfg)
        for warning in cfg.warnings:
            self.log.message(f"config warning: {warning}")
        if (cfg.upstream, cfg.connect_timeout, cfg.read_timeout) != (
            old.config.upstream,
            old.config.connect_timeout,
            old.config.read_timeout,
        ):
            old_client = self.client
            self.client = self._make_client(cfg)
            if self.forwarder is not None:
                self.forwarder.client = self.client
            # In-flight exchanges keep the old pool until they finish.
            if old_client is not None:
                asyncio.get_running_loop().call_later(
                    60, lambda: asyncio.ensure_future(old_client.close())
                )
        if (cfg.listen_host, cfg.listen_port) != (old.config.listen_host, old.config.listen_port):
            self.log.message("config note: a new listen address takes effect after a restart")
        self.generation = gen
        self.log.message(
            f"config generation {gen.number} active ({why}): {len(cfg.rules)} rule(s), "
            f"upstream {cfg.upstream}",
            generation=gen.number,
        )
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            stamp = _stamp(self.config_path)
            if stamp != self._file_stamp:
                self._file_stamp = stamp
                if stamp is not None:
                    self.reload("file changed")

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.generation.config
        self.client = self._make_client(cfg)
        self.forwarder = Forwarder(lambda: self.generation, self.client, self.log.record)
        server_log = logging.getLogger("aiohttp.server")
        server_log.addHandler(self._log_bridge)
        server_log.propagate = False
        server = web.Server(
            self.handle,
            access_log=None,
            handler_cancellation=False,
            max_field_size=32768,
            max_line_size=32768,
        )
        self.runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.listen_host, cfg.listen_port)
        await site.start()
        self.port = self.runner.addresses[0][1]  # the real port when 0 was asked for
        if self.config_path:
            self._watch_task = asyncio.ensure_future(self.watch())

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        for ws in list(self.open_sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"proxy shutting down")
        if self.runner is not None:
            await self.runner.cleanup()
        if self.ws_session is not None:
            await self.ws_session.close()
        if self.client is not None:
            await self.client.close()
        logging.getLogger("aiohttp.server").removeHandler(self._log_bridge)
        self.log.flush()

    def listening_line(self) -> str:
        cfg = self.generation.config
        host = f"[{cfg.listen_host}]" if ":" in cfg.listen_host else cfg.listen_host
        return f"listening on http://{host}:{self.port} -> {cfg.upstream}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _default_client(cfg: Config) -> UpstreamClient:
    """The httptools client when httptools is installed (a third of ClientSession's CPU per
    request, bench/RESULTS.md), else aiohttp's ClientSession."""
    try:
        from proxy.rawclient import RawUpstream
    except ImportError:  # httptools missing: the `fast` extra is not installed
        return AiohttpUpstream(
            cfg.upstream, connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout
        )
    return RawUpstream(
        cfg.upstream, connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout
    )


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def _reachable(upstream: str, limit: float) -> bool:
    from yarl import URL

    url = URL(upstream)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host, url.port), timeout=limit
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


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
    await server.stop()
    return 0
