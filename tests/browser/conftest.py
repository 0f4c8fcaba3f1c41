"""Fixtures for the real-browser tests: Chromium (Playwright sync API, Debian's chromium)
and, for the inspector, Firefox (Debian's firefox-esr over Marionette: ``firefox``).

    page      http://localhost:<p>/index.html     (ThreadingHTTPServer; the calling origin)
    proxy     http://localhost:<x>                (`python -m proxy --config`, a subprocess)
    upstream  http://127.0.0.1:<f>                (Flask under Werkzeug's threaded server)

The same page served as http://127.0.0.1:<p> is a second origin the proxy does not allow.
One browser per module, a fresh context (cookies, preflight cache) per test. No asyncio
loop ever runs in the test thread: the sync Playwright API refuses to run inside one.

The fixtures are module-scoped, not session-scoped, on purpose: while the sync Playwright
API is open it marks its own event loop as running in the main thread, and the
pytest-asyncio tests that run after this directory would fail with "Runner.run() cannot
be called from a running event loop". So each browser test module gets its own browser,
closed (with the servers and proxies) before the next module starts.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser import firefox as fx
from tests.browser.flask_app import AppState, make_wsgi
from tests.browser.helpers import CHROMIUM_ARGS, PageDriver
from tests.browser.servers import (
    FlaskUpstream,
    MakeProxy,
    PageServer,
    ProxyProcess,
    WsEchoServer,
    WsgiServer,
    page_rule,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

HERE = Path(__file__).resolve().parent
INSTALL_HINT = (
    "the browser tests need Chromium and Playwright: "
    "apt-get install -y --no-install-recommends chromium; pip install playwright==1.65.2 "
    "(never `playwright install`)"
)

logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    exe = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not exe:
        pytest.fail(f"chromium not found. {INSTALL_HINT}")  # fail, never skip
    return exe


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"playwright is not importable ({exc}). {INSTALL_HINT}")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_executable: str) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=chromium_executable, args=CHROMIUM_ARGS, timeout=30_000
    )
    yield b
    b.close()


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fx.Firefox]:
    """Debian's firefox-esr, headless, over Marionette (tests/browser/firefox.py)."""
    exe = fx.firefox_executable()
    if not exe:
        pytest.fail(f"firefox-esr not found. {fx.INSTALL_HINT}")  # fail, never skip
    try:
        fx.load_marionette()
    except ImportError as exc:
        pytest.fail(f"marionette_driver is not importable ({exc}). {fx.INSTALL_HINT}")
    browser = fx.Firefox(exe, tmp_path_factory.mktemp("firefox") / "profile")
    yield browser
    browser.stop()


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    srv = PageServer(HERE / "static")
    yield srv
    srv.stop()


def _flask(debug: bool) -> Iterator[FlaskUpstream]:
    state = AppState()
    srv = WsgiServer(make_wsgi(state, debug=debug))
    yield FlaskUpstream(srv, state)
    srv.stop()


@pytest.fixture(scope="module")
def flask_app() -> Iterator[FlaskUpstream]:
    """Flask not in debug mode: an unhandled error gives Werkzeug's generic 500 page."""
    yield from _flask(debug=False)


@pytest.fixture(scope="module")
def flask_debug_app() -> Iterator[FlaskUpstream]:
    """Flask in debug mode, as `flask run --debug`: the debugger's traceback page."""
    yield from _flask(debug=True)


@pytest.fixture(scope="module")
def ws_upstream() -> Iterator[WsEchoServer]:
    srv = WsEchoServer()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy_pool(
    tmp_path_factory: pytest.TempPathFactory, page_server: PageServer
) -> Iterator[dict[str, ProxyProcess]]:
    """Running proxies by name, started on first use, stopped with SIGTERM at the end
    (each must exit 0)."""
    pool: dict[str, ProxyProcess] = {}
    yield pool
    codes = {name: p.stop() for name, p in pool.items()}
    bad = {name: code for name, code in codes.items() if code != 0}
    if bad:
        pytest.fail(f"proxies did not exit 0 on SIGTERM: {bad}")


@pytest.fixture
def make_proxy(
    proxy_pool: dict[str, ProxyProcess],
    tmp_path_factory: pytest.TempPathFactory,
    page_server: PageServer,
) -> MakeProxy:
    """make_proxy(name, upstream=URL, **config) -> a running proxy whose log() covers this
    test only. The config defaults to one rule for the page's localhost origin."""

    def _make(name: str, upstream: str, **config: Any) -> ProxyProcess:
        if name not in proxy_pool:
            data: dict[str, Any] = {
                "listen": "127.0.0.1:0",
                "upstream": upstream,
                "timeouts": {"connect": 3, "read": 30},
                "rules": [page_rule(page_server)],
            }
            data.update(config)
            workdir = tmp_path_factory.getbasetemp() / "proxies"
            proxy_pool[name] = ProxyProcess(data, workdir, name)
        proxy = proxy_pool[name]
        assert proxy.config["upstream"] == upstream, f"proxy {name!r} reused for another upstream"
        assert proxy.proc.poll() is None, f"proxy {name!r} died:\n{proxy.stderr_path.read_text()}"
        proxy.mark()
        return proxy

    return _make


@pytest.fixture
def proxy(make_proxy: MakeProxy, flask_app: FlaskUpstream) -> ProxyProcess:
    """The everyday setup: the proxy in front of Flask (not in debug mode)."""
    return make_proxy("main", flask_app.url)


@pytest.fixture
def open_page(browser: Browser, page_server: PageServer) -> Iterator[Callable[..., PageDriver]]:
    """open_page(host="localhost") -> PageDriver on http://<host>:<p>/index.html, in a
    fresh context each time."""
    contexts: list[BrowserContext] = []

    def _open(host: str = "localhost") -> PageDriver:
        ctx = browser.new_context()
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        driver = PageDriver(ctx.new_page())
        driver.page.goto(page_server.origin(host) + "/index.html")
        return driver

    yield _open
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def page(open_page: Callable[..., PageDriver]) -> PageDriver:
    """The page on the allowed origin, http://localhost:<p>."""
    return open_page("localhost")
