"""`cors-proxy demo` in real Chromium: the bundled page, the proxy and the bundled Flask
app, as a new user starts them (issue 18 item 8). Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.helpers import PageDriver
from tests.support import ROOT
from tests.support.cli import proxy_command
from tests.support.devserver import gone, group_members, watchdogs_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser


class Demo:
    """``cors-proxy demo`` in its own session (Ctrl-C goes to its process group)."""

    def __init__(self) -> None:
        self.p = subprocess.Popen(
            [*proxy_command(), "demo"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.p.stdout is not None
        self.out = [self.p.stdout.readline().rstrip("\n") for _ in range(2)]

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            with self._cond:
                self.err.append(line.rstrip("\n"))
                self._cond.notify_all()

    def line(self, start: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [x for x in self.err if x.startswith(start)]
                if found:
                    return found[-1]
                assert time.monotonic() < deadline, "\n".join(self.err[-40:])
                self._cond.wait(0.1)

    def stop(self) -> int:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)  # Ctrl-C in its terminal
        code = self.p.wait(15)
        self._reader.join(5)
        for stream in (self.p.stdout, self.p.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    d = Demo()
    yield d
    if d.p.poll() is None:
        d.p.kill()
        d.p.wait(5)


@pytest.mark.browser
def test_the_demo_page_explains_each_exchange(browser: Browser, demo: Demo) -> None:
    listening, page_line = demo.out
    assert listening.startswith("listening on http://127.0.0.1:"), demo.out
    assert listening.endswith("-> demo-app (the address it prints)")
    assert page_line.startswith("demo page: http://localhost:"), demo.out
    url = page_line.removeprefix("demo page: ")
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    try:
        page = PageDriver(ctx.new_page())
        page.page.goto(url)
        proxy = page.page.locator("#proxy-origin").inner_text()
        assert proxy.startswith("http://localhost:")

        def press(button: str) -> str:
            result = page.page.locator(f"#{button}-result")
            page.page.locator(f"#{button}").click()
            page.page.wait_for_function(
                f"document.querySelector('#{button}-result').textContent.length > 3"
            )
            return result.inner_text()

        first = press("put")
        assert first.startswith("status 200"), first
        assert '"cookie_came_back":false' in first.replace(" ", "")
        second = press("put")
        assert '"cookie_came_back":true' in second.replace(" ", ""), second
        assert demo.line("PUT /api/profile 200 origin=http://localhost:").count("cors=allowed")

        blocked = press("header")
        assert blocked.startswith("blocked by the browser (TypeError: Failed to fetch)")
        refused = demo.line("OPTIONS /api/items ")
        assert "x-api-key" in refused
        assert "fix: add x-api-key to rules[0].allow_headers" in refused.lower()

        boom = press("boom")
        assert boom.startswith("status 500"), boom
        line = demo.line("GET /api/cart/total 500 ")
        assert "ZeroDivisionError: division by zero (app.py:" in line
        assert " in cart_total)" in line

        dead = press("dead")
        assert dead.startswith("status 502, X-Cors-Proxy-Error: upstream closed the connection")
        assert "upstream closed the connection" in demo.line("POST /api/orders 502 ")
        health = page.page.request.get(proxy + "/__cors-proxy__/health").json()
    finally:
        ctx.close()
    pid = health["devserver"]["pid"]
    members = group_members(pid) + watchdogs_of(pid)
    assert health["devserver"]["running"] is True
    assert demo.stop() == 0
    assert gone([*members, pid], pid)
