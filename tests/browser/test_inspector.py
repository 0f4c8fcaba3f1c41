"""Issue 19 in Chromium: the inspector page at /__cors-proxy__/ shows a blocked exchange
within a second, in the browser's own words and with the fix; it masks secrets, shows a
hostile origin as text, cannot be read from another origin, and its filters work. And the
story the issue ends with, end to end: blocked, open the page, copy the fix, save the
config, the next request passes."""

from __future__ import annotations

import http.client
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.browser.helpers import FAILED_TO_FETCH, PageDriver
from tests.browser.servers import FlaskUpstream, MakeProxy, PageServer, ProxyProcess, page_rule
from tests.support.cli import Proc

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

pytestmark = pytest.mark.browser

OpenPage = Callable[..., PageDriver]
INSPECTOR = "/__cors-proxy__/"


class Inspector:
    """The inspector page in its own browser context, live."""

    def __init__(self, browser: Browser, origin: str, **context: Any) -> None:
        self.context: BrowserContext = browser.new_context(**context)
        self.context.set_default_timeout(10_000)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(origin + INSPECTOR)
        self.page.wait_for_selector("#live.on")  # the event stream is open

    def row(self, needle: str) -> Locator:
        return self.page.locator("#rows tr", has_text=needle)

    def detail(self) -> str:
        return self.page.locator("#detail").inner_text()

    def visible_paths(self) -> list[str]:
        return self.page.locator("#rows tr:not([hidden]) td.path").all_inner_texts()


@pytest.fixture
def inspector(browser: Browser, proxy: ProxyProcess) -> Iterator[Inspector]:
    ins = Inspector(browser, proxy.origin)
    yield ins
    assert ins.errors == []  # no script error, no CSP violation
    ins.context.close()


def unique(prefix: str = "/api/hello") -> str:
    return f"{prefix}?inspect={uuid.uuid4().hex[:8]}"


def console_tail(text: str) -> str:
    return text[text.index("has been blocked by CORS policy") :]


def test_a_blocked_exchange_shows_within_a_second_in_chromiums_words_with_the_fix(
    open_page: OpenPage, proxy: ProxyProcess, inspector: Inspector, page_server: PageServer
) -> None:
    page = open_page("127.0.0.1")  # an origin the rule does not list
    path = unique()
    r, console = page.fetch_blocked(proxy.origin + path)
    assert r == FAILED_TO_FETCH
    seen = time.monotonic()
    row = inspector.row(path)
    row.wait_for(timeout=1_000)  # live: no reload, within a second
    assert time.monotonic() - seen < 1.0
    assert "BLOCKED" in row.inner_text()
    assert row.evaluate("tr => tr.classList.contains('blocked')")
    assert inspector.page.locator("#learned").is_hidden()  # not learning: no such panel
    row.click()
    inspector.page.wait_for_selector("#detail pre.console")
    said = inspector.page.locator("#detail pre.console").inner_text()
    assert console_tail(console) in said  # Chromium's console, word for word
    assert f"Access to fetch at '{proxy.origin}{path}' from origin '{page.origin}'" in said
    assert f'add "{page.origin}" to rules[0].origins' in inspector.detail()
    assert inspector.page.locator("#detail pre.yaml").inner_text() == (
        f'origins: ["{page_server.origin("localhost")}", "{page.origin}"]'
    )


def test_secrets_are_masked(
    page: PageDriver, proxy: ProxyProcess, inspector: Inspector, flask_app: FlaskUpstream
) -> None:
    from tests.browser.flask_app import SESSION_COOKIE

    login = page.fetch(proxy.origin + "/api/login", {"credentials": "include"})
    assert login.get("status") == 200, login
    item = f"/api/items/{uuid.uuid4().hex[:8]}"
    init = {
        "method": "PUT",
        "credentials": "include",
        "headers": {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"},
        "body": "{}",
    }
    assert page.fetch(proxy.origin + item, init).get("status") == 200
    assert flask_app.state.hits_for(item)[0].headers["cookie"] == f"session={SESSION_COOKIE}"
    for needle in ("/api/login", item):
        inspector.row(needle).first.wait_for()
    inspector.row("/api/login").first.click()
    inspector.page.wait_for_selector("#detail table.headers")
    login_detail = inspector.detail()
    assert "Set-Cookie" in login_detail
    assert "session=••••••;" in login_detail
    assert "SameSite=Lax" in login_detail  # the attributes stay: the cookie doctor needs them
    put = inspector.page.locator("#rows tr").filter(
        has=inspector.page.locator("td.method", has_text="PUT")
    )
    put.filter(has_text=item).click()
    # (locators, not wait_for_function: polling a string would need 'unsafe-eval', which
    # the page's Content-Security-Policy refuses)
    inspector.page.locator("#detail h2", has_text=f"PUT {item}").wait_for()
    put_detail = inspector.detail()
    assert "Bearer •••••• (12 characters)" in put_detail
    assert "session=••••••" in put_detail
    # nowhere on the page, nowhere in what the page holds
    everything = inspector.page.evaluate("document.body.textContent")
    assert SESSION_COOKIE not in everything
    assert "s3cret-token" not in everything
    assert inspector.page.locator("#detail .badge.masked").count() >= 2


def test_a_hostile_origin_and_path_are_text_never_markup(
    proxy: ProxyProcess, inspector: Inspector
) -> None:
    origin = '"><img src=x onerror="window.pwned=1">'
    path = "/api/<script>window.pwned=2</script>?x=<b>bold</b>"
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", path, headers={"Origin": origin})
    assert conn.getresponse().status in (200, 404)
    conn.close()
    row = inspector.row("<script>window.pwned=2</script>")
    row.wait_for()
    assert origin in row.inner_text()
    row.click()
    inspector.page.wait_for_selector("#detail h2")
    assert path in inspector.detail()
    assert origin in inspector.detail()
    injected = inspector.page.evaluate(
        "document.querySelectorAll('#rows img, #rows script, #rows b, #detail img, "
        "#detail script, #detail b, #origins img').length"
    )
    assert injected == 0
    assert inspector.page.evaluate("window.pwned") is None


def test_the_page_cannot_be_read_from_another_origin(page: PageDriver, proxy: ProxyProcess) -> None:
    """No CORS headers on anything under /__cors-proxy__/: an allowed origin's script
    (the page the rules are for) cannot read it either."""
    for name in ("", "exchanges", "config", "events"):
        r = page.fetch(proxy.origin + INSPECTOR + name, {"credentials": "include"})
        assert r == FAILED_TO_FETCH, (name, r)
    # not even as an opaque response (Cross-Origin-Resource-Policy: same-origin)
    opaque = page.fetch(proxy.origin + INSPECTOR + "exchanges", {"mode": "no-cors"})
    assert opaque == FAILED_TO_FETCH
    posted = page.fetch(
        proxy.origin + INSPECTOR + "clear",
        {"method": "POST", "headers": {"X-Cors-Proxy-Inspector": "clear"}},
    )
    assert posted == FAILED_TO_FETCH  # its preflight is never granted


def test_filters_search_keyboard_and_clear(
    open_page: OpenPage, page: PageDriver, proxy: ProxyProcess, inspector: Inspector
) -> None:
    tag = uuid.uuid4().hex[:8]
    other = open_page("127.0.0.1")
    allowed, blocked, failing = (
        f"/api/hello?ok={tag}",
        f"/api/hello?no={tag}",
        f"/api/divide?e={tag}",
    )
    assert page.fetch(proxy.origin + allowed).get("status") == 200
    other.fetch_blocked(proxy.origin + blocked)
    assert page.fetch(proxy.origin + failing).get("status") == 500
    for path in (allowed, blocked, failing):
        inspector.row(path).wait_for()
    ins = inspector.page

    ins.fill("#f-search", tag)  # the search box
    assert sorted(inspector.visible_paths()) == sorted([allowed, blocked, failing])
    ins.check("#f-blocked")
    assert inspector.visible_paths() == [blocked]
    ins.uncheck("#f-blocked")
    ins.check("#f-errors")
    assert inspector.visible_paths() == [failing]
    ins.uncheck("#f-errors")
    ins.select_option("#f-origin", other.origin)
    assert inspector.visible_paths() == [blocked]
    ins.select_option("#f-origin", "")
    ins.fill("#f-path", "/api/divide")
    assert inspector.visible_paths() == [failing]
    ins.fill("#f-path", "")
    assert len(inspector.visible_paths()) == 3

    # the keyboard: Esc leaves the search box for the list, arrows move, Enter opens
    ins.press("#f-search", "Escape")
    ins.keyboard.press("ArrowDown")
    ins.keyboard.press("ArrowDown")
    focused = ins.evaluate("document.activeElement.querySelector('td.path')?.textContent")
    assert focused in (allowed, blocked, failing)
    ins.keyboard.press("Enter")
    assert ins.evaluate("document.activeElement.id") == "detail-title"
    assert focused in inspector.detail()
    ins.keyboard.press("Escape")
    ins.keyboard.press("/")
    assert ins.evaluate("document.activeElement.id") == "f-search"

    ins.click("#clear")
    ins.locator("#rows tr").first.wait_for(state="detached")
    assert ins.locator("#n-requests").inner_text() == "0"
    assert page.fetch(proxy.origin + allowed).get("status") == 200
    inspector.row(allowed).wait_for()  # and it goes on from there
    assert ins.locator("#n-requests").inner_text() == "1"


FLOW_CONFIG = """\
listen: "127.0.0.1:0"
upstream: "{upstream}"
timeouts: {{connect: 3, read: 30}}
rules:
  - name: frontend
    paths: ["/api/*"]
    origins: ["{origin}"]
    allow_methods: [GET, HEAD, POST, PUT, PATCH, DELETE]
    allow_headers: [Content-Type, Authorization, X-Custom]
    allow_credentials: true
"""


def test_the_story_blocked_open_the_page_copy_the_fix_save_and_it_passes(
    browser: Browser,
    open_page: OpenPage,
    make_proxy: MakeProxy,
    flask_app: FlaskUpstream,
    page_server: PageServer,
) -> None:
    """A developer whose fetch is blocked opens /__cors-proxy__/, sees the exchange marked
    blocked with the browser's words and the one-line YAML fix, copies it, saves the
    config (the proxy reloads it) and sees the next exchange pass."""
    proxy = make_proxy("story", flask_app.url, rules=[page_rule(page_server)])
    config = Path(proxy.config_path)
    config.write_text(FLOW_CONFIG.format(upstream=flask_app.url, origin=page_server.origin()))
    wait_for_generation(proxy, 2)  # the file as the developer wrote it

    app = open_page("127.0.0.1")  # their frontend runs on 127.0.0.1, the rule says localhost
    path = unique()
    r, console = app.fetch_blocked(proxy.origin + path)
    assert r == FAILED_TO_FETCH

    ins = Inspector(browser, proxy.origin, permissions=["clipboard-read", "clipboard-write"])
    row = ins.row(path)
    row.wait_for()
    assert "BLOCKED" in row.inner_text()
    row.click()
    said = ins.page.locator("#detail pre.console").inner_text()
    assert console_tail(console) in said
    ins.page.get_by_role("button", name="Copy the YAML fix").click()
    ins.page.get_by_role("button", name="Copy the YAML fix").filter(has_text="Copied").wait_for()
    copied = ins.page.evaluate("navigator.clipboard.readText()")
    assert copied == f'origins: ["{page_server.origin()}", "{app.origin}"]'

    # paste it over the rule's origins line, save
    text = config.read_text()
    edited = re.sub(r"^(\s+)origins: .*$", lambda m: m.group(1) + copied, text, count=1, flags=re.M)
    assert edited != text
    config.write_text(edited)
    assert yaml.safe_load(edited)["rules"][0]["origins"] == [page_server.origin(), app.origin]
    ins.page.locator("#config-brief", has_text="generation 3").wait_for()  # reloaded

    again = app.fetch(proxy.origin + path + "&again=1")
    assert again.get("status") == 200, (again, app.console)
    passed = ins.row(path + "&again=1")
    passed.wait_for()
    assert "BLOCKED" not in passed.inner_text()
    assert "allowed[frontend]" in passed.inner_text()
    assert ins.errors == []
    ins.context.close()


def wait_for_generation(proxy: ProxyProcess, number: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proxy.health()["config_generation"] < number:
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.1)


def test_learning_mode_shows_the_rules_learned_so_far_live(
    browser: Browser, open_page: OpenPage, flask_app: FlaskUpstream
) -> None:
    """`cors-proxy learn` in front of Flask: after a cross-origin fetch, the inspector's
    "Learned rules" panel (open by default) shows the YAML for exactly that origin and
    path; after another fetch it shows the new rules without a reload; Copy copies them,
    and Ctrl-C prints the same text."""
    learner = Proc("learn", "--upstream", flask_app.url, "--listen", "127.0.0.1:0")
    try:
        app = open_page("localhost")
        assert app.fetch(learner.url + "/api/hello").get("status") == 200, app.console
        ins = Inspector(browser, learner.url, permissions=["clipboard-read", "clipboard-write"])
        panel = ins.page.locator("#learned")
        shown = ins.page.locator("#learned-yaml")
        ins.page.locator("#learned-yaml", has_text="/api/hello").wait_for()
        assert panel.evaluate("details => details.open")
        assert "Ctrl-C" in panel.inner_text()
        assert "--write FILE" in panel.inner_text()
        rules = yaml.safe_load(shown.inner_text())["rules"]
        assert [(r["paths"], r["origins"]) for r in rules] == [(["/api/hello"], [app.origin])]

        ins.page.evaluate("window.stillTheSamePage = true")  # a reload would forget it
        other = open_page("127.0.0.1")
        assert other.fetch(learner.url + "/api/login").get("status") == 200, other.console
        ins.page.locator("#learned-yaml", has_text=other.origin).wait_for()  # live
        assert ins.page.evaluate("window.stillTheSamePage === true")
        rules = yaml.safe_load(shown.inner_text())["rules"]
        assert [(r["paths"], r["origins"]) for r in rules] == [
            (["/api/*"], sorted([app.origin, other.origin]))
        ]

        ins.page.get_by_role("button", name="Copy the learned rules").click()
        ins.page.get_by_role("button", name="Copy the learned rules").filter(
            has_text="Copied"
        ).wait_for()
        copied = ins.page.evaluate("navigator.clipboard.readText()")
        assert copied == shown.text_content()
        assert ins.errors == []  # no script error, no CSP or Trusted Types violation
        ins.context.close()
    finally:
        learner.p.send_signal(signal.SIGINT)
        printed, err = learner.p.communicate(timeout=15)
    assert learner.p.returncode == 0, err
    assert printed == copied  # what Ctrl-C prints is what the page showed
