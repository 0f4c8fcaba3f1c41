"""Real servers on loopback ports for the browser tests, each in its own thread or process.

- ``WsgiServer``: Werkzeug's threaded dev server (what `flask run` uses) for the Flask app.
- ``PageServer``: a static file server; the page that calls ``fetch`` lives here.
- ``WsEchoServer``: an aiohttp WebSocket echo server on its own event loop (Flask has no
  WebSocket support); the test thread never runs an asyncio loop, as the Playwright
  sync API requires.
- ``ProxyProcess``: the real proxy, ``python -m proxy --config FILE``, as users run it.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from aiohttp import WSMsgType, web
from werkzeug.serving import make_server

from tests.browser.flask_app import AppState, WSGIApp
from tests.support.cli import proxy_command

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class WsgiServer:
    def __init__(self, app: WSGIApp) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer:
    """Serves ``static/``. ``origin("localhost")`` and ``origin("127.0.0.1")`` are two
    different origins for the same page: the first is allowed by the proxy's rule, the
    second is not."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def origin(self, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class WsEchoServer:
    """``/ws`` echoes text frames as ``echo: <text>`` and records each handshake's Origin."""

    def __init__(self) -> None:
        self.origins: list[str | None] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),))
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the WebSocket upstream did not start")

    async def _echo(self, request: web.Request) -> web.WebSocketResponse:
        self.origins.append(request.headers.get("Origin"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"echo: {msg.data}")
        return ws

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/ws", self._echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self.sock).start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()
        self.sock.close()


class ProxyProcess:
    """``python -m proxy --config FILE`` with ``listen: 127.0.0.1:0``.

    The port comes from the startup line on stdout; stderr (the exchange log and the
    5xx diagnoses) goes to a file that ``log()`` reads from the last ``mark()``.

    The child runs in ``workdir`` with the repository appended to ``PYTHONPATH``, so a
    ``PYTHONPATH`` set by the caller (a patched copy of the proxy) comes first.
    """

    def __init__(self, config: dict[str, Any], workdir: Path, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.stdout_path = workdir / f"{name}.stdout.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [*proxy_command(), "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=workdir,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self._first_line(self.proc.stdout)
        prefix = "listening on http://"
        if not line.startswith(prefix):
            self.proc.kill()
            self.proc.wait(5)
            self._stderr.close()
            raise RuntimeError(
                f"the proxy did not start: stdout {line!r}, stderr:\n{self.stderr_path.read_text()}"
            )
        self.startup_line = line
        hostport = line[len(prefix) :].split()[0]
        self.port = int(hostport.rsplit(":", 1)[1])
        # The page uses `localhost`, like the page's own origin: same site, so cookies flow.
        self.origin = f"http://localhost:{self.port}"
        self._drain = threading.Thread(target=self._copy_stdout, daemon=True)
        self._drain.start()
        self._mark = 0
        health = self.health()
        if health.get("status") != "ok":
            raise RuntimeError(f"the proxy is not healthy: {health}")

    def health(self) -> dict[str, Any]:
        """GET /__cors-proxy__/health, as a compose healthcheck would."""
        url = f"http://127.0.0.1:{self.port}/__cors-proxy__/health"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def _first_line(self, stream: IO[bytes]) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stream, selectors.EVENT_READ)
            while b"\n" not in buf and time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        first, _, rest = buf.partition(b"\n")
        self._early_stdout = rest
        return first.decode(errors="replace").strip()

    def _copy_stdout(self) -> None:
        assert self.proc.stdout is not None
        with self.stdout_path.open("wb") as out:
            out.write(self._early_stdout)
            shutil.copyfileobj(self.proc.stdout, out)

    def mark(self) -> None:
        """Start a new log window (one per test)."""
        self._mark = self.stderr_path.stat().st_size

    def log(self) -> str:
        with self.stderr_path.open("rb") as f:
            f.seek(self._mark)
            return f.read().decode(errors="replace")

    def wait_for_log(self, *needles: str, timeout: float = 5.0) -> str:
        """The log since ``mark()`` once it holds every needle (log lines follow responses)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if all(n in text for n in needles) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C or `docker stop`; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._drain.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()
        return code


@dataclass
class FlaskUpstream:
    server: WsgiServer
    state: AppState

    @property
    def url(self) -> str:
        return self.server.url


def page_rule(page_server: PageServer, **overrides: Any) -> dict[str, Any]:
    """The rule a developer writes for their frontend on http://localhost:<p>."""
    rule: dict[str, Any] = {
        "name": "frontend",
        "origins": [page_server.origin("localhost")],
        "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": ["Content-Type", "Authorization", "X-Custom"],
        "expose_headers": ["X-Request-Id"],
        "allow_credentials": True,
        "max_age": 600,
    }
    rule.update(overrides)
    return rule


MakeProxy = Callable[..., ProxyProcess]
