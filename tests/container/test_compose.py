"""The compose example comes up with podman-compose and its page works in Chromium.

This is the newcomer's path: `examples/compose/docker-compose.yaml` unchanged, a browser
on the frontend's origin, the API behind the proxy on another origin.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright

from tests.container.support import (
    BASE_IMAGE,
    CHROMIUM_ARGS,
    COMPOSE_DIR,
    Container,
    free_port,
    podman,
    request,
    unique,
    wait_for,
    wait_healthy,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(420)]

COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yaml"


@dataclass
class Compose:
    project: str
    proxy_port: int
    frontend_port: int
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = ["podman-compose", "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(cmd)}` took more than {timeout}s")
        if proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return proc

    def container(self, service: str) -> Container:
        """The service's container, found by the labels both compose tools set."""
        names = podman(
            "ps", "-a", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(names) == 1, f"containers of {service}: {names}"
        return Container(names[0])


@pytest.fixture
def compose(podman_ready: None) -> Iterator[Compose]:
    stack = Compose(
        project=unique("cpt-compose"),
        proxy_port=free_port(),
        frontend_port=free_port(),
        env={},
    )
    stack.env = {
        **os.environ,
        "BUILDAH_FORMAT": "docker",  # keep HEALTHCHECK in podman-built images
        "BASE_IMAGE": BASE_IMAGE,
        "PROXY_PORT": str(stack.proxy_port),
        "FRONTEND_PORT": str(stack.frontend_port),
    }
    try:
        yield stack
    finally:
        subprocess.run(
            ["podman-compose", "-p", stack.project, "-f", str(COMPOSE_FILE), "down", "-t", "0"],
            capture_output=True,
            env=stack.env,
            timeout=120,
            check=False,
        )


def test_compose_example_page_calls_api_through_proxy(compose: Compose, chromium_path: str) -> None:
    started = time.monotonic()
    compose.run("up", "-d", "--build")
    proxy = f"http://localhost:{compose.proxy_port}"
    frontend = f"http://localhost:{compose.frontend_port}"
    wait_healthy(
        f"http://127.0.0.1:{compose.proxy_port}",
        timeout=30,
        upstream=True,
        container=compose.container("cors-proxy"),
    )
    wait_for(
        "the frontend page",
        lambda: request("GET", f"http://127.0.0.1:{compose.frontend_port}/").status == 200,
        timeout=30,
    )
    up = time.monotonic() - started

    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()

            def on_console(msg: ConsoleMessage) -> None:
                if msg.type == "error":
                    console.append(msg.text)

            page.on("console", on_console)
            page.goto(f"{frontend}/?api={proxy}")
            # the page calls GET /api/hello on load and shows the result
            page.wait_for_selector("#result[data-done='/api/hello']", timeout=10_000)
            shown = page.text_content("#result") or ""
            assert '"ok": true' in shown, shown
            assert "hello from Flask" in shown

            hello: dict[str, Any] = page.evaluate("callApi('/api/hello')")
            assert hello == {
                "ok": True,
                "status": 200,
                "body": {"message": "hello from Flask", "origin": frontend},
            }
            # a preflighted request: JSON body
            echo = page.evaluate(
                """callApi('/api/echo', {method: 'POST',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({greeting: 'hi'})})"""
            )
            assert echo == {"ok": True, "status": 200, "body": {"you_sent": {"greeting": "hi"}}}
            # a Flask bug: the page sees the real 500, not "Failed to fetch"
            boom = page.evaluate("callApi('/api/boom')")
            assert boom["status"] == 500
            assert "error" not in boom
        finally:
            browser.close()
    assert not [text for text in console if "CORS policy" in text], console

    started = time.monotonic()
    compose.run("down", timeout=120)
    down = time.monotonic() - started
    # stop_signal: SIGINT for Flask and http.server, SIGTERM for the proxy: no 10 s waits
    assert down < 10, f"`down` took {down:.1f}s"
    print(f"compose up (build, start, healthy): {up:.1f}s; down: {down:.1f}s")
