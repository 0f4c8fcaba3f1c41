"""The browser side of a test: a page on its own origin, and what Chromium said about it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, ConsoleMessage, Page

# Playwright adds most of these itself; listing them keeps the set explicit. The resolver
# rule keeps Chromium's background lookups (update.googleapis.com, ...) off the network;
# `MAP *` also covers IP literals, so 127.0.0.1 must be excluded as well as localhost.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]

CORS_BLOCKED = "has been blocked by CORS policy"
FAILED_TO_FETCH = {"error": "TypeError", "message": "Failed to fetch"}


class PageDriver:
    """One page (in its own browser context) plus the console and CDP CORS issues."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[tuple[str, str]] = []
        self.cors_issues: list[str] = []
        page.on("console", self._on_console)
        self.cdp: CDPSession = page.context.new_cdp_session(page)
        self.cdp.on("Audits.issueAdded", self._on_issue)
        self.cdp.send("Audits.enable")

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))

    def _on_issue(self, event: dict[str, Any]) -> None:
        issue = event["issue"]
        if issue["code"] == "CorsIssue":
            status = issue["details"]["corsIssueDetails"]["corsErrorStatus"]
            self.cors_issues.append(status["corsError"])

    @property
    def origin(self) -> str:
        return self.page.evaluate("location.origin")  # type: ignore[no-any-return]

    def fetch(self, url: str, init: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(
            "([u, i]) => probeFetch(u, i)", [url, init or {}]
        )
        return result

    def expect_console(
        self, predicate: Callable[[str], bool], action: Callable[[], Any], timeout: float = 5_000
    ) -> tuple[Any, str]:
        """Run ``action`` and wait for a console message whose text satisfies ``predicate``
        (messages arrive asynchronously, so the wait must wrap the action)."""
        with self.page.expect_console_message(
            lambda m: predicate(m.text), timeout=timeout
        ) as message:
            result = action()
        return result, message.value.text

    def fetch_blocked(self, url: str, init: dict[str, Any] | None = None) -> tuple[Any, str]:
        """A fetch Chromium must block: (its result, the console's CORS message)."""
        return self.expect_console(lambda t: CORS_BLOCKED in t, lambda: self.fetch(url, init))

    def errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]
