"""Issue 6 in Chromium: for each classic mistake, the proxy's log line carries the very
console text Chromium prints, the cause and the fix."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.browser.helpers import FAILED_TO_FETCH, PageDriver
from tests.browser.servers import FlaskUpstream, MakeProxy, PageServer, ProxyProcess, page_rule

pytestmark = pytest.mark.browser

OpenPage = Callable[..., PageDriver]


def console_tail(text: str) -> str:
    """Chromium's message after the URL part, which the proxy prints verbatim too."""
    return text[text.index("has been blocked by CORS policy") :]


def log_line(proxy: ProxyProcess, needle: str) -> str:
    log = proxy.wait_for_log(needle, "browser: ")
    lines = [ln for ln in log.splitlines() if needle in ln]
    assert len(lines) == 1, log
    return lines[0]


def test_origin_not_listed_simple_get(
    open_page: OpenPage, proxy: ProxyProcess, page_server: PageServer
) -> None:
    page = open_page("127.0.0.1")
    path = f"/api/hello?explain={uuid.uuid4().hex[:6]}"
    r, text = page.fetch_blocked(proxy.origin + path)
    assert r == FAILED_TO_FETCH
    line = log_line(proxy, f"GET {path}")
    assert console_tail(text) in line
    assert f"Access to fetch at '{proxy.origin}{path}' from origin '{page.origin}'" in line
    # the near miss and the fix
    assert f"the rules have {page_server.origin('localhost')} (different host" in line
    assert f'fix: add "{page.origin}" to rules[0].origins' in line


def test_origin_not_listed_preflight(open_page: OpenPage, proxy: ProxyProcess) -> None:
    page = open_page("127.0.0.1")
    path = f"/api/items/explain-{uuid.uuid4().hex[:6]}"
    r, text = page.fetch_blocked(
        proxy.origin + path,
        {"method": "PUT", "body": "{}", "headers": {"Content-Type": "application/json"}},
    )
    assert r == FAILED_TO_FETCH
    assert "Response to preflight request doesn't pass access control check" in text
    line = log_line(proxy, f"OPTIONS {path}")
    assert console_tail(text) in line
    assert f'fix: add "{page.origin}" to rules[0].origins' in line


@pytest.mark.parametrize(
    ("init", "said", "code", "fix"),
    [
        (
            {"method": "PUT", "headers": {"X-Api-Key": "k"}},
            "Request header field x-api-key is not allowed by Access-Control-Allow-Headers"
            " in preflight response.",
            "HeaderDisallowedByPreflightResponse",
            "fix: add x-api-key to rules[0].allow_headers",
        ),
        (
            {"method": "PROPFIND"},
            "Method PROPFIND is not allowed by Access-Control-Allow-Methods in preflight response.",
            "MethodDisallowedByPreflightResponse",
            "fix: add PROPFIND to rules[0].allow_methods",
        ),
    ],
    ids=["header-not-allowed", "method-not-allowed"],
)
def test_preflight_refused_by_the_rule(
    page: PageDriver,
    proxy: ProxyProcess,
    flask_app: FlaskUpstream,
    init: dict[str, object],
    said: str,
    code: str,
    fix: str,
) -> None:
    """Issue 17: an allowed origin asking for a method or header the rule does not allow
    gets a 204 naming the origin, so Chromium names the method or header instead of
    reporting a missing Access-Control-Allow-Origin; the upstream sees nothing."""
    path = f"/api/items/explain-{uuid.uuid4().hex[:6]}"
    r, text = page.fetch_blocked(proxy.origin + path, init)
    assert r == FAILED_TO_FETCH
    assert text == (
        f"Access to fetch at '{proxy.origin}{path}' from origin '{page.origin}' has been"
        f" blocked by CORS policy: {said}"
    )
    assert page.cors_issues == [code]
    assert flask_app.state.hits_for(path) == []  # neither the preflight nor the request
    line = log_line(proxy, f"OPTIONS {path}")
    assert f"OPTIONS {path} 204 " in line
    assert f"browser: {text}" in line  # the log says what Chromium says, verbatim
    assert fix in line
    assert "is not allowed;" not in line  # no near miss about an origin that is fine


def test_upstream_star_with_credentials_when_preserved(
    page: PageDriver, make_proxy: MakeProxy, flask_app: FlaskUpstream, page_server: PageServer
) -> None:
    proxy = make_proxy(
        "preserve",
        flask_app.url,
        upstream_cors="preserve",
        rules=[page_rule(page_server, paths=["/own/*", "/api/*"])],
    )
    path = f"/own/data?explain={uuid.uuid4().hex[:6]}"
    # Authorization makes the credentials mode visible to the proxy (cookies would too).
    init = {"credentials": "include", "headers": {"Authorization": "Bearer t"}}
    r, text = page.fetch_blocked(proxy.origin + path, init)
    assert r == FAILED_TO_FETCH
    assert "must not be the wildcard '*'" in text
    line = log_line(proxy, f"GET {path}")
    assert console_tail(text) in line
