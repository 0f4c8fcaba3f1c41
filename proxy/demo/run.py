"""``cors-proxy demo``: the bundled Flask app as the supervised child, a page on a second
origin (http://localhost:3000), the proxy in front (http://localhost:8080) with the
bundled rule set; other free ports when those are taken (wiring, I/O)."""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from aiohttp import web

from proxy.config.loader import load
from proxy.config.model import Overrides
from proxy.errors import ConfigError

PAGE_PORT = 3000
PROXY_PORT = 8080
INSTALL_HINT = (
    "cors-proxy demo needs Flask, which comes with the demo extra: "
    "pip install 'cors-dev-proxy[demo]' (from a checkout: pip install '.[demo]')"
)


def main(args: Sequence[str]) -> int:
    if args:
        print(f"cors-proxy demo: takes no options (got {' '.join(args)})", file=sys.stderr)
        return 2
    try:
        import flask  # noqa: F401  (only to know it is there: the child imports it)
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    from proxy.cli import run_loop
    from proxy.server import ProxyServer

    bundled = resources.files("proxy.demo")
    page_sock = _bind(PAGE_PORT)
    page_origin = f"http://localhost:{page_sock.getsockname()[1]}"
    proxy_port = PROXY_PORT if _free(PROXY_PORT) else 0
    with tempfile.TemporaryDirectory(prefix="cors-proxy-demo-") as tmp:
        # The app runs from a copy: its frames show as app.py, like a user's own file.
        app = Path(tmp) / "app.py"
        app.write_bytes(bundled.joinpath("app.py").read_bytes())
        rules = Path(tmp) / "cors-proxy-demo.yaml"
        rules.write_text(
            bundled.joinpath("rules.yaml").read_text().replace("{page_origin}", page_origin)
        )
        try:
            cfg = load(str(rules), Overrides(listen=f"127.0.0.1:{proxy_port}"))
        except ConfigError as exc:  # pragma: no cover  (the bundled file is tested)
            page_sock.close()
            raise SystemExit(f"cors-proxy demo: {exc}") from None
        server = ProxyServer(cfg, config_path=None)
        page = bundled.joinpath("page.html").read_text()

        async def demo() -> int:
            from proxy.server import run

            site = await _serve_page(page_sock, page, lambda: f"http://localhost:{server.port}")
            try:
                return await run(
                    server,
                    sys.stdout,
                    [sys.executable, str(app)],
                    name="demo-app",
                    more_lines=(f"demo page: {page_origin}/",),
                    cwd=tmp,
                )
            finally:
                await site.cleanup()

        return run_loop(server, demo)


def _bind(port: int) -> socket.socket:
    """A listening socket on ``port`` of 127.0.0.1, or on a free port when it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _free(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _serve_page(
    sock: socket.socket, page: str, proxy_url: Callable[[], str]
) -> web.AppRunner:
    """The page on its own origin; it calls the proxy at the address it listens on."""

    async def index(request: web.Request) -> web.Response:
        html = page.replace("{proxy}", proxy_url())
        headers = {"Cache-Control": "no-store"}
        return web.Response(text=html, content_type="text/html", headers=headers)

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", no_icon)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
