"""Take docs/inspector.png, the README's screenshot of the inspector page.

    python docs/screenshot.py [--dark]

Runs what the browser tests run (a Flask app in debug mode, the proxy as users start it,
a page on two origins), has Chromium (Playwright with Debian's chromium) make a few
requests through the proxy, one of them from an origin the rule does not list, opens
/__cors-proxy__/ and selects the blocked exchange.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.flask_app import AppState, make_wsgi  # noqa: E402
from tests.browser.helpers import CHROMIUM_ARGS  # noqa: E402
from tests.browser.servers import PageServer, ProxyProcess, WsgiServer, page_rule  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    parser.add_argument("--out", default=str(ROOT / "docs" / "inspector.png"))
    args = parser.parse_args()
    flask = WsgiServer(make_wsgi(AppState(), debug=True))
    pages = PageServer(ROOT / "tests" / "browser" / "static")
    work = Path(tempfile.mkdtemp(prefix="inspector-shot-"))
    proxy = ProxyProcess(
        {"listen": "127.0.0.1:0", "upstream": flask.url, "rules": [page_rule(pages)]},
        work,
        "screenshot",
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=CHROMIUM_ARGS,
            )
            app = browser.new_page()
            app.goto(pages.origin("localhost") + "/index.html")
            api = proxy.origin
            calls = [
                (api + "/api/hello", {}),
                (api + "/api/login", {"credentials": "include"}),
                (
                    api + "/api/items/42",
                    {
                        "method": "PUT",
                        "credentials": "include",
                        "body": '{"done": true}',
                        "headers": {"Content-Type": "application/json", "X-Custom": "1"},
                    },
                ),
                (api + "/api/divide", {}),
                (api + "/api/hello?page=2", {}),
            ]
            for url, init in calls:
                app.evaluate("([u, i]) => probeFetch(u, i)", [url, init])
            other = browser.new_page()
            other.goto(pages.origin("127.0.0.1") + "/index.html")
            other.evaluate("u => probeFetch(u)", api + "/api/hello")
            context = browser.new_context(
                viewport={"width": 1440, "height": 860},
                color_scheme="dark" if args.dark else "light",
            )
            page = context.new_page()
            page.goto(api + "/__cors-proxy__/")
            page.wait_for_selector("#live.on")
            page.locator("#rows tr.blocked").first.click()
            page.wait_for_selector("#detail pre.yaml")
            page.wait_for_timeout(300)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        proxy.stop()
        pages.stop()
        flask.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    main()
