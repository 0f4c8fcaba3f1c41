"""What a page in real Chromium gets through the proxy (issue 4's nine scenarios).

CORS is enforced by the browser, so these tests let Chromium judge the proxy's headers:
a page on http://localhost:<p> calls the proxy on http://localhost:<x>, which forwards
to a real Flask app. Where the point is a failure, Chromium's console message and the
DevTools (CDP) CORS issue code are asserted too.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.flask_app import SESSION_COOKIE, SSE_GAP
from tests.browser.helpers import CORS_BLOCKED, FAILED_TO_FETCH, PageDriver
from tests.browser.servers import (
    FlaskUpstream,
    MakeProxy,
    PageServer,
    ProxyProcess,
    WsEchoServer,
    closed_port,
)

pytestmark = pytest.mark.browser

OpenPage = Callable[..., PageDriver]
FLASK_APP = Path(__file__).with_name("flask_app.py")
DIVIDE_LINE = next(
    n for n, line in enumerate(FLASK_APP.read_text().splitlines(), 1) if "1 / 0" in line
)


def only_line(log: str, needle: str) -> str:
    """The one log line that contains ``needle`` (one line per exchange)."""
    found = [line for line in log.splitlines() if needle in line]
    assert len(found) == 1, f"{needle!r} in {len(found)} lines of the proxy log:\n{log}"
    return found[0]


def assert_no_cors_error(page: PageDriver) -> None:
    assert page.cors_issues == [], page.console
    assert not [t for _, t in page.console if CORS_BLOCKED in t], page.console


# 1 ------------------------------------------------------------------------------------
def test_1_simple_get_reads_exposed_header_only(
    page: PageDriver, proxy: ProxyProcess, flask_app: FlaskUpstream
) -> None:
    r = page.fetch(proxy.origin + "/api/hello")

    assert r.get("error") is None, (r, page.console)
    assert (r["status"], r["type"]) == (200, "cors")
    assert r["json"]["hello"] == "browser"
    assert r["headers"].get("x-request-id") == "req-42"  # listed in expose_headers
    assert "x-secret" not in r["headers"]  # not exposed: hidden from the script...
    line = only_line(proxy.wait_for_log("GET /api/hello 200"), "GET /api/hello 200")
    assert f"origin={page.origin}" in line
    req = urllib.request.Request(proxy.origin + "/api/hello", headers={"Origin": page.origin})
    with urllib.request.urlopen(req, timeout=5) as resp:  # ...though it is on the wire
        assert resp.headers["X-Secret"] == "hidden"
        resp.read()
    assert flask_app.state.hits_for("/api/hello")[0].headers["origin"] == page.origin
    assert_no_cors_error(page)
    assert page.errors() == []


# 2 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_2_preflighted_credentialed_request_carries_cookie(
    page: PageDriver, proxy: ProxyProcess, flask_app: FlaskUpstream, method: str
) -> None:
    login = page.fetch(proxy.origin + "/api/login", {"credentials": "include"})
    assert login.get("status") == 200, (login, page.console)

    path = f"/api/items/{method.lower()}-{uuid.uuid4().hex[:8]}"
    r = page.fetch(
        proxy.origin + path,
        {
            "method": method,
            "credentials": "include",
            "headers": {
                "Content-Type": "application/json",
                "X-Custom": "custom-1",
                "Authorization": "Bearer t0ken",
            },
            "body": json.dumps({"n": 1}),
        },
    )

    assert r.get("error") is None, (r, page.console)
    assert r["status"] == 200
    assert r["json"] == {
        "method": method,
        "item": path.rsplit("/", 1)[1],
        "body": {"n": 1},
        "authorization": "Bearer t0ken",
        "custom": "custom-1",
        "session": SESSION_COOKIE,  # set through the proxy earlier, sent back upstream
        "origin": page.origin,
    }
    # Chromium preflighted (JSON, X-Custom, Authorization); the proxy answered it itself.
    assert [h.method for h in flask_app.state.hits_for(path)] == [method]
    log = proxy.wait_for_log(f"OPTIONS {path}", f"{method} {path}")
    assert " 204 " in only_line(log, f"OPTIONS {path}")
    assert_no_cors_error(page)


# 3 ------------------------------------------------------------------------------------
def test_3_disallowed_origin_is_blocked_and_preflight_never_reaches_flask(
    open_page: OpenPage, proxy: ProxyProcess, flask_app: FlaskUpstream
) -> None:
    page = open_page("127.0.0.1")  # the same page on an origin the rule does not list
    path = f"/api/items/denied-{uuid.uuid4().hex[:8]}"

    r, text = page.fetch_blocked(
        proxy.origin + path,
        {
            "method": "PUT",
            "headers": {"Content-Type": "application/json", "X-Custom": "x"},
            "body": "{}",
        },
    )

    assert r == FAILED_TO_FETCH
    assert f"from origin '{page.origin}' has been blocked by CORS policy" in text
    assert "Response to preflight request doesn't pass access control check" in text
    assert page.cors_issues == ["PreflightMissingAllowOriginHeader"]
    assert flask_app.state.hits_for(path) == []  # neither the OPTIONS nor the PUT
    assert " 403 " in only_line(proxy.wait_for_log(f"OPTIONS {path}"), f"OPTIONS {path}")

    # A simple GET is not preflighted: it reaches Flask, but the page cannot read it.
    page.cors_issues.clear()
    r, text = page.fetch_blocked(proxy.origin + "/api/hello")
    assert r == FAILED_TO_FETCH
    assert "No 'Access-Control-Allow-Origin' header is present" in text
    assert page.cors_issues == ["MissingAllowOriginHeader"]


# 4: the mission case ------------------------------------------------------------------
@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
def test_4_control_flask_500_without_proxy_is_a_cors_error(
    page: PageDriver,
    flask_app: FlaskUpstream,
    flask_debug_app: FlaskUpstream,
    debug: bool,
) -> None:
    flask = flask_debug_app if debug else flask_app
    before = len(flask.state.hits_for("/api/divide"))

    r, text = page.fetch_blocked(flask.url + "/api/divide")

    # The view ran and raised, but all the page learns is "Failed to fetch".
    assert r == FAILED_TO_FETCH
    assert "No 'Access-Control-Allow-Origin' header is present" in text
    assert page.cors_issues == ["MissingAllowOriginHeader"]
    assert len(flask.state.hits_for("/api/divide")) == before + 1


def fetch_error_status(page: PageDriver, url: str, status: int) -> dict[str, Any]:
    """A credentialed fetch that must give the page ``status`` (not a CORS error).

    Chromium logs either "the server responded with a status of N" or a CORS message."""
    r: dict[str, Any]
    r, text = page.expect_console(
        lambda t: f"status of {status}" in t or CORS_BLOCKED in t,
        lambda: page.fetch(url, {"credentials": "include"}),
    )
    assert f"the server responded with a status of {status}" in text, page.console
    assert r.get("error") is None, (r, page.console)
    assert (r["status"], r["ok"], r["type"]) == (status, False, "cors")
    assert_no_cors_error(page)
    return r


def test_4_debug_flask_500_through_proxy_is_seen_and_explained(
    page: PageDriver, make_proxy: MakeProxy, flask_debug_app: FlaskUpstream
) -> None:
    proxy = make_proxy("debug-flask", flask_debug_app.url)

    r = fetch_error_status(page, proxy.origin + "/api/divide", 500)

    assert "ZeroDivisionError" in str(r["text"])  # the debugger page reaches the script
    line = only_line(proxy.wait_for_log("GET /api/divide"), "GET /api/divide")
    assert " 500 " in line
    assert "ZeroDivisionError: division by zero" in line
    assert f"(flask_app.py:{DIVIDE_LINE} in divide_view)" in line


def test_4_plain_flask_500_through_proxy_is_seen_and_explained(
    page: PageDriver, proxy: ProxyProcess
) -> None:
    r = fetch_error_status(page, proxy.origin + "/api/divide", 500)

    assert "Internal Server Error" in str(r["text"])
    line = only_line(proxy.wait_for_log("GET /api/divide"), "GET /api/divide")
    assert " 500 " in line
    assert "traceback is in the Flask console" in line


# 5 ------------------------------------------------------------------------------------
def test_5_upstream_down_is_a_readable_502(page: PageDriver, make_proxy: MakeProxy) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    # upstream_wait rides out Flask's reloader (refused connects are retried); keep it short.
    proxy = make_proxy("upstream-down", dead, upstream_wait=1)

    r = fetch_error_status(page, proxy.origin + "/api/hello", 502)

    assert r["headers"].get("x-cors-proxy-error"), r["headers"]  # exposed to scripts
    assert {"error", "upstream", "detail"} <= set(r["json"]), r["json"]
    assert r["json"]["upstream"] == dead
    assert proxy.health()["upstream_reachable"] is False
    assert " 502 " in only_line(proxy.wait_for_log("GET /api/hello"), "GET /api/hello")


# 6 ------------------------------------------------------------------------------------
def test_6_upstream_with_its_own_star_cors_still_works_with_credentials(
    page: PageDriver, proxy: ProxyProcess, flask_app: FlaskUpstream
) -> None:
    # Control: Flask's own `Access-Control-Allow-Origin: *` fails a credentialed call.
    r, text = page.fetch_blocked(flask_app.url + "/own/data", {"credentials": "include"})
    assert r == FAILED_TO_FETCH
    assert "must not be the wildcard '*' when the request's credentials mode is 'include'" in text
    assert page.cors_issues == ["WildcardOriginNotAllowed"]
    page.cors_issues.clear()
    page.console.clear()

    r = page.fetch(proxy.origin + "/own/data", {"credentials": "include"})

    assert r.get("error") is None, (r, page.console)
    assert (r["status"], r["json"]) == (200, {"own": True})
    assert_no_cors_error(page)


# 7 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("host_header", ["preserve", "upstream"])
def test_7_redirect_to_external_url_for_stays_on_the_proxy(
    page: PageDriver, make_proxy: MakeProxy, flask_app: FlaskUpstream, host_header: str
) -> None:
    proxy = make_proxy(f"host-{host_header}", flask_app.url, host_header=host_header)

    r = page.fetch(proxy.origin + "/api/go", {"credentials": "include"})

    assert r.get("error") is None, (r, page.console)
    assert r["redirected"] is True
    assert r["url"] == proxy.origin + "/api/hello"
    assert (r["status"], r["json"]["hello"]) == (200, "browser")
    assert_no_cors_error(page)


# 8 ------------------------------------------------------------------------------------
def test_8_event_source_gets_events_one_by_one(
    page: PageDriver, proxy: ProxyProcess, flask_app: FlaskUpstream
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    token = uuid.uuid4().hex
    gate = flask_app.state.gate(token)  # Flask sends "last" only once this is set
    try:
        page.page.evaluate("u => openEventSource(u)", f"{proxy.origin}/api/events?token={token}")
        try:
            page.page.wait_for_function(
                "window.sse.events.length >= 2 || window.sse.errors > 0", timeout=8_000
            )
        except PlaywrightTimeoutError:
            pytest.fail(
                "the page did not get the first two events while Flask held the stream "
                f"open: buffered? events={page.page.evaluate('window.sse.events')}"
            )
        assert page.page.evaluate("window.sse.errors") == 0, page.console
        assert not gate.is_set()
        first, second = page.page.evaluate("window.sse.events")
        assert (first["data"], second["data"]) == ("first", "second")
        # They arrived apart, as Flask sent them, while the stream was still open (the
        # gate is the proof; the gap only shows they were not delivered as one batch).
        assert second["t"] - first["t"] >= SSE_GAP * 1000 * 0.25, (first, second)
    finally:
        gate.set()
    page.page.wait_for_function("window.sse.events.length >= 3", timeout=8_000)
    assert [e["data"] for e in page.page.evaluate("window.sse.events")] == [
        "first",
        "second",
        "last",
    ]
    assert page.page.evaluate("window.sse.errors") == 0
    assert_no_cors_error(page)


# 9 ------------------------------------------------------------------------------------
def test_9_websocket_from_allowed_origin_echoes(
    page: PageDriver, make_proxy: MakeProxy, ws_upstream: WsEchoServer
) -> None:
    proxy = make_proxy("websocket", ws_upstream.url)
    before = len(ws_upstream.origins)

    r = page.page.evaluate(
        "([u, m]) => probeWebSocket(u, m)", [f"ws://localhost:{proxy.port}/ws", "hello"]
    )

    assert r == {"opened": True, "messages": ["echo: hello"], "error": False, "closeCode": 1000}
    assert ws_upstream.origins[before:] == [page.origin]


def test_9_websocket_from_disallowed_origin_is_refused(
    open_page: OpenPage,
    page_server: PageServer,
    make_proxy: MakeProxy,
    ws_upstream: WsEchoServer,
) -> None:
    proxy = make_proxy("websocket", ws_upstream.url)
    page = open_page("127.0.0.1")
    before = len(ws_upstream.origins)
    url = f"ws://localhost:{proxy.port}/ws"

    r, text = page.expect_console(
        lambda t: "WebSocket connection to" in t,
        lambda: page.page.evaluate("([u, m]) => probeWebSocket(u, m)", [url, "hello"]),
    )

    assert r == {"opened": False, "messages": [], "error": True, "closeCode": 1006}
    assert f"WebSocket connection to '{url}' failed" in text
    assert "403" in text, text
    assert ws_upstream.origins[before:] == []  # the upstream never saw the handshake
    line = only_line(proxy.wait_for_log("GET /ws"), "GET /ws")
    assert " 403 " in line
    assert f"origin={page_server.origin('127.0.0.1')}" in line
