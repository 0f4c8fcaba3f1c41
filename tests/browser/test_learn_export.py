"""Issue 20 in Chromium: what a page did through `cors-proxy learn`, exported to nginx,
works again in the browser, and what it did not do is blocked."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from proxy.config.loader import load
from tests.browser.helpers import FAILED_TO_FETCH, PageDriver
from tests.browser.servers import FlaskUpstream, PageServer
from tests.support.cli import Proc
from tests.support.engines import start_nginx

pytestmark = pytest.mark.browser

OpenPage = Callable[..., PageDriver]
JSON_PUT: dict[str, Any] = {
    "method": "PUT",
    "body": "{}",
    "headers": {"Content-Type": "application/json", "X-Requested-With": "fetch"},
    "credentials": "include",
}
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("/api/login", {"credentials": "include"}),  # sets the session cookie
    ("/api/hello", {"credentials": "include"}),  # reads X-Request-Id
    ("/api/items/7", JSON_PUT),  # a preflight, then the PUT
]


def test_learned_then_exported_to_nginx(
    open_page: OpenPage, flask_app: FlaskUpstream, page_server: PageServer, tmp_path: Path
) -> None:
    learner = Proc("learn", "--upstream", flask_app.url, "--listen", "127.0.0.1:0")
    base = learner.url.replace("127.0.0.1", "localhost")  # the page's site: cookies work
    page = open_page("localhost")
    try:
        while_learning = [page.fetch(base + path, init) for path, init in STEPS]
    finally:
        learner.p.send_signal(signal.SIGINT)
        learned, err = learner.p.communicate(timeout=15)
    assert learner.p.returncode == 0, err
    assert all(r.get("ok") for r in while_learning), while_learning
    path = tmp_path / "learned.yaml"
    path.write_text(learned)
    cfg = load(str(path))
    assert cfg.warnings == ()
    [rule] = cfg.rules
    assert rule.origins == (page_server.origin("localhost"),)
    assert rule.allow_credentials

    nginx = start_nginx(replace(cfg, upstream=flask_app.url), "learned.yaml", tmp_path)
    try:
        again = open_page("localhost")  # a fresh context: no cookie, no preflight cache
        there = nginx.url.replace("127.0.0.1", "localhost")
        results = [again.fetch(there + path, init) for path, init in STEPS]
        assert [r["status"] for r in results] == [r["status"] for r in while_learning]
        assert results[1]["headers"]["x-request-id"] == "req-42"
        # nothing more: a method the page never used, and another origin
        r, text = again.fetch_blocked(there + "/api/items/7", {**JSON_PUT, "method": "PATCH"})
        assert r == FAILED_TO_FETCH
        assert "Method PATCH is not allowed by Access-Control-Allow-Methods" in text
        other = open_page("127.0.0.1")
        r, text = other.fetch_blocked(there + "/api/hello")
        assert "No 'Access-Control-Allow-Origin' header is present" in text
    finally:
        nginx.stop()
