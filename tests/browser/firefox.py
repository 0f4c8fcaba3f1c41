"""A real Firefox for the browser tests: Debian's `firefox-esr`, headless, driven over
Marionette (Mozilla's own remote protocol, built into every Firefox) with Mozilla's
client, `marionette_driver`. Playwright's Firefox is a patched build from a CDN and
geckodriver is not packaged by Debian; Marionette needs neither.

The browser runs with a fresh profile whose `user.js` asks for a free Marionette port
(`marionette.port` 0: Firefox writes the port it bound to `MarionetteActivePort` in the
profile, so there is no race for a port) and turns off updates, telemetry and first-run
pages. `-remote-allow-system-access` lets the client run script in the parent process
(the "chrome" context), where Firefox's console service holds every message the browser
console shows: script errors and Content-Security-Policy violations of the pages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "the Firefox test needs Debian's Firefox ESR and Mozilla's Marionette client: "
    "apt-get install -y --no-install-recommends firefox-esr; pip install marionette_driver==3.7.1"
)
STARTUP_TIMEOUT = 30.0

PREFS: dict[str, bool | int | str] = {
    "marionette.port": 0,  # any free port, written to <profile>/MarionetteActivePort
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "browser.newtabpage.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.proxy.type": 0,  # never a system proxy (http_proxy) for loopback pages
    # the page's light scheme unless a test asks for dark (0 dark, 1 light)
    "layout.css.prefers-color-scheme.content-override": 1,
}

# Script errors and CSP violations of web content since `since` (ms since the epoch), as
# the browser console lists them: errors only (warnings such as a deprecated API are not
# failures), plus every CSP report; Firefox's own chrome code is left out.
CONSOLE_ERRORS = """
const [since] = arguments;
const quiet = Ci.nsIScriptError.warningFlag | Ci.nsIScriptError.infoFlag;
return Services.console.getMessageArray()
  .filter((m) => m instanceof Ci.nsIScriptError && m.timeStamp >= since)
  .filter((m) => !m.isFromChromeContext && !/^(chrome|resource|about):/.test(m.sourceName))
  .filter((m) => !(m.flags & quiet) || m.category.startsWith("CSP"))
  .map((m) => `${m.category}: ${m.errorMessage} (${m.sourceName}:${m.lineNumber})`);
"""


def load_marionette() -> Any:
    """Mozilla's client, ``marionette_driver`` (``.marionette``, ``.by``, ``.keys``,
    ``.wait`` loaded). Its dependencies warn as they are imported (mozrunner imports
    ``telnetlib``, mozinfo calls ``distro.linux_distribution()``) and the suite turns
    warnings into errors: those two are silenced here, for the import only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"'telnetlib' is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", r"distro\.linux_distribution", DeprecationWarning)
        import marionette_driver.by
        import marionette_driver.keys
        import marionette_driver.marionette
        import marionette_driver.wait
    return marionette_driver


def firefox_executable() -> str | None:
    return os.environ.get("FIREFOX_PATH") or shutil.which("firefox-esr") or shutil.which("firefox")


def _pref(name: str, value: bool | int | str) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});"


class Firefox:
    """One headless Firefox with a Marionette session on its one tab.

    ``client`` is the ``marionette_driver.marionette.Marionette`` session (content
    context). ``stop()`` ends the session and the process (its exit code is returned).
    """

    def __init__(self, executable: str, profile: Path) -> None:
        marionette = load_marionette().marionette
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text("".join(_pref(k, v) + "\n" for k, v in PREFS.items()))
        self.profile = profile
        self.output_path = profile.parent / (profile.name + ".output.log")
        self._output = self.output_path.open("wb")
        self.proc = subprocess.Popen(
            [
                executable,
                *("-headless", "-marionette", "-remote-allow-system-access", "-no-remote"),
                *("-profile", str(profile), "about:blank"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        try:
            port = self._active_port()
            self.client: Any = marionette.Marionette(
                host="127.0.0.1", port=port, startup_timeout=30
            )
            self.client.start_session()
        except BaseException:
            self._end()
            raise
        self.version: str = self.client.session_capabilities["browserVersion"]

    def _active_port(self) -> int:
        written = self.profile / "MarionetteActivePort"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"firefox exited {self.proc.returncode}:\n{self.output()}")
            text = written.read_text().strip() if written.exists() else ""
            if text.isdigit():
                return int(text)
            time.sleep(0.05)
        raise RuntimeError(
            f"firefox wrote no Marionette port in {STARTUP_TIMEOUT} s:\n{self.output()}"
        )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")[-4000:]

    def chrome(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the parent process (``Services``, ``Ci`` in scope)."""
        with self.client.using_context(self.client.CONTEXT_CHROME):
            return self.client.execute_script(script, script_args=list(args))

    def now_ms(self) -> float:
        """The browser's clock, the one console messages are stamped with."""
        now: float = self.chrome("return Date.now();")
        return now

    def console_errors(self, since_ms: float) -> list[str]:
        errors: list[str] = self.chrome(CONSOLE_ERRORS, since_ms)
        return errors

    def set_pref(self, name: str, value: int) -> None:
        self.chrome("Services.prefs.setIntPref(arguments[0], arguments[1]);", name, value)

    def _end(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._output.close()
        return code

    def stop(self) -> int:
        try:
            self.client.delete_session()
        finally:
            code = self._end()
        return code
