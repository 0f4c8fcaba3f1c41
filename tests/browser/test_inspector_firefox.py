"""Issue 19 item 7 in Firefox: the inspector page at /__cors-proxy__/ runs in a real
Firefox (Debian's firefox-esr, headless, over Marionette: tests/browser/firefox.py) as it
does in Chromium. A blocked exchange appears live (server-sent events, no reload), marked
blocked; opened by a click or by the keyboard, its detail holds Chromium's console text
and the one-line YAML fix, and Copy puts the fix on Firefox's clipboard; the filters and
keys work; the page follows light and dark. Firefox's console (its console service, read
in the parent process) reports no script error and no Content-Security-Policy violation.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.firefox import Firefox, load_marionette
from tests.browser.servers import PageServer, ProxyProcess

pytestmark = pytest.mark.browser

INSPECTOR = "/__cors-proxy__/"
LIVE_WITHIN = 3.0  # seconds from the response to the row on the page

# Firefox's clipboard, read in the parent process (headless Firefox has its own).
READ_CLIPBOARD = """
const t = Cc["@mozilla.org/widget/transferable;1"].createInstance(Ci.nsITransferable);
t.init(null);
t.addDataFlavor("text/plain");
Services.clipboard.getData(t, Ci.nsIClipboard.kGlobalClipboard, null);
const data = {};
t.getTransferData("text/plain", data);
return data.value.QueryInterface(Ci.nsISupportsString).data;
"""


class FirefoxInspector:
    """The inspector page in Firefox's tab, its event stream open."""

    def __init__(self, firefox: Firefox, proxy: ProxyProcess) -> None:
        driver = load_marionette()
        self.firefox = firefox
        self.client: Any = firefox.client
        self.by: Any = driver.by.By
        self.key: Any = driver.keys.Keys
        self._wait: Any = driver.wait.Wait
        self.since = firefox.now_ms()
        self.client.navigate(proxy.origin + INSPECTOR)
        # the page's own script ran: it opened the stream and said so
        self.until("#live.on", "the event stream never opened")
        self.loaded_at: float = self.js("return performance.timeOrigin;")

    def js(self, script: str, *args: Any) -> Any:
        return self.client.execute_script(script, script_args=list(args))

    def wait(self, check: Any, message: str, timeout: float = 5.0) -> Any:
        return self._wait(self.client, timeout=timeout, interval=0.05).until(check, message=message)

    def until(self, selector: str, message: str, timeout: float = 5.0) -> Any:
        return self.wait(
            lambda _: self.js("return document.querySelector(arguments[0]);", selector),
            message=f"{message} ({selector})",
            timeout=timeout,
        )

    def element(self, selector: str) -> Any:
        return self.client.find_element(self.by.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        text: str = self.element(selector).text
        return text

    def row(self, path: str, timeout: float = 5.0) -> Any:
        """The list's row for ``path``, once the page shows it."""
        return self.wait(
            lambda _: self.js(
                "return [...document.querySelectorAll('#rows tr')]"
                ".find((tr) => tr.querySelector('td.path').textContent === arguments[0]);",
                path,
            ),
            message=f"no row for {path}",
            timeout=timeout,
        )

    def visible_paths(self) -> list[str]:
        paths: list[str] = self.js(
            "return [...document.querySelectorAll('#rows tr:not([hidden]) td.path')]"
            ".map((td) => td.textContent);"
        )
        return paths

    def focused(self) -> str:
        focused: str = self.js("return document.activeElement.id;")
        return focused

    def keys(self, keys: str) -> None:
        """Key presses as a user types them (trusted events, to whatever has focus)."""
        self.client.actions.sequence("key", "keyboard").send_keys(keys).perform()

    def errors(self) -> list[str]:
        return self.firefox.console_errors(self.since)


@pytest.fixture
def inspector(firefox: Firefox, proxy: ProxyProcess) -> Iterator[FirefoxInspector]:
    ins = FirefoxInspector(firefox, proxy)
    yield ins
    assert ins.errors() == []  # no script error, no CSP violation
    # the list came live: the page was never reloaded
    assert ins.js("return performance.timeOrigin;") == ins.loaded_at


def exchange(proxy: ProxyProcess, path: str, origin: str) -> int:
    """A GET through the proxy as a page on ``origin`` makes it (urllib, not a browser)."""
    request = urllib.request.Request(proxy.origin + path, headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


def unique(prefix: str = "/api/hello") -> str:
    return f"{prefix}?firefox={uuid.uuid4().hex[:8]}"


def test_firefox_is_the_real_one(firefox: Firefox) -> None:
    assert firefox.client.session_capabilities["browserName"] == "firefox"
    assert int(firefox.version.split(".")[0]) >= 115, firefox.version


def test_a_blocked_exchange_shows_live_with_chromiums_words_and_the_fix(
    proxy: ProxyProcess, inspector: FirefoxInspector, page_server: PageServer
) -> None:
    import time

    other = page_server.origin("127.0.0.1")  # an origin the rule does not list
    path = unique()
    assert exchange(proxy, path, other) == 200  # the upstream answered; CORS did not allow
    sent = time.monotonic()
    row = inspector.row(path, timeout=LIVE_WITHIN)
    assert time.monotonic() - sent < LIVE_WITHIN
    assert "BLOCKED" in row.text
    assert "blocked" in row.get_property("className").split()

    # a user clicks a cell of the row (WebDriver's element click refuses a <tr> in Firefox:
    # its hit test, document.elementsFromPoint, lists the cells and the table, never a row)
    row.find_element(inspector.by.CSS_SELECTOR, "td.path").click()
    console = inspector.until("#detail pre.console", "the detail did not open").text
    assert console == (
        f"Access to fetch at '{proxy.origin}{path}' from origin '{other}' has been blocked "
        "by CORS policy: No 'Access-Control-Allow-Origin' header is present on the "
        "requested resource."
    )
    assert inspector.text("#detail h2") == f"GET {path} → 200"
    assert f'add "{other}" to rules[0].origins' in inspector.text("#detail")
    fix = f'origins: ["{page_server.origin("localhost")}", "{other}"]'
    assert inspector.text("#detail pre.yaml") == fix

    copy = inspector.element("#detail button[aria-label='Copy the YAML fix']")
    copy.click()
    inspector.wait(lambda _: copy.text == "Copied ✓", f"the button says {copy.text!r}")
    assert inspector.firefox.chrome(READ_CLIPBOARD) == fix


def test_filters_and_the_keyboard(
    proxy: ProxyProcess, inspector: FirefoxInspector, page_server: PageServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    allowed, blocked = f"/api/hello?ok={tag}", f"/api/hello?no={tag}"
    assert exchange(proxy, allowed, page_server.origin("localhost")) == 200
    assert exchange(proxy, blocked, page_server.origin("127.0.0.1")) == 200
    for path in (allowed, blocked):
        inspector.row(path)

    inspector.element("#f-search").click()
    inspector.keys(tag)  # typed into the search box
    assert inspector.focused() == "f-search"
    assert sorted(inspector.visible_paths()) == sorted([allowed, blocked])
    key = inspector.key
    inspector.keys(key.ESCAPE)  # back to the list
    inspector.keys("b")  # blocked only
    assert inspector.element("#f-blocked").get_property("checked") is True
    assert inspector.visible_paths() == [blocked]
    inspector.keys(key.DOWN + key.ENTER)  # open it
    assert inspector.focused() == "detail-title"
    assert inspector.text("#detail h2") == f"GET {blocked} → 200"
    assert inspector.text("#detail pre.console").endswith(
        "has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header is "
        "present on the requested resource."
    )
    inspector.keys(key.ESCAPE + "/")  # / searches again
    assert inspector.focused() == "f-search"
    inspector.keys(key.ESCAPE + "b")  # all again
    assert sorted(inspector.visible_paths()) == sorted([allowed, blocked])

    inspector.element("#clear").click()  # a same-origin POST with the page's header
    inspector.wait(lambda _: not inspector.visible_paths(), "Clear left rows")
    assert inspector.text("#n-requests") == "0"


def test_the_config_panel(proxy: ProxyProcess, inspector: FirefoxInspector) -> None:
    inspector.element("#config summary").click()  # <details> opens: its toggle loads it
    rules = inspector.until("#config-body pre", "the config did not load")
    assert "frontend" in rules.text
    assert "upstream reachable" in inspector.text("#config-brief")


def test_light_and_dark(firefox: Firefox, inspector: FirefoxInspector) -> None:
    background = "return getComputedStyle(document.body).backgroundColor;"
    assert inspector.js(background) == "rgb(255, 255, 255)"
    firefox.set_pref("layout.css.prefers-color-scheme.content-override", 0)  # dark
    try:
        inspector.wait(
            lambda _: inspector.js(background) == "rgb(15, 17, 21)",
            "the page did not turn dark",
        )
    finally:
        firefox.set_pref("layout.css.prefers-color-scheme.content-override", 1)
    inspector.wait(lambda _: inspector.js(background) == "rgb(255, 255, 255)", "not light")
