"""`cors-proxy learn` as users run it: a fixed piece of frontend traffic, Ctrl-C, and
the learned YAML."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.cli import Proc
from tests.support.matrix import Case, Verdict, send, verdict

PAGE = "http://localhost:3000"
OTHER = "http://127.0.0.1:5173"
# What a frontend did while learning: a JSON PUT with a custom header (after its
# preflight), a credentialed GET whose answer has custom headers, a 404, a static file
# from a second origin, and requests the learner must leave out (Origin: null, none).
TRAFFIC = [
    Case("preflight", "/api/echo", PAGE, "PUT", ("content-type", "x-custom")),
    Case("simple", "/api/echo", PAGE, "PUT", ("x-custom",)),
    Case("credentials", "/api/hello", PAGE, credentials=True),
    Case("simple", "/api/status/404", OTHER),
    Case("simple", "/static/app.js", OTHER),
    Case("simple", "/api/hello", "null"),
    Case("no-origin", "/api/hello", None),
]


def learn(
    upstream: str, work: Path, traffic: list[Case] = TRAFFIC
) -> tuple[str, Path, list[Verdict]]:
    """Run the learner over ``traffic``; the printed YAML, the file it wrote, and the
    browser's verdict on each exchange while learning."""
    out = work / "learned.yaml"
    p = Proc("learn", "--upstream", upstream, "--listen", "127.0.0.1:0", "--write", str(out))
    try:
        verdicts = [verdict(p.url, c, send(p.url, c)) for c in traffic]
    finally:
        p.p.send_signal(signal.SIGINT)
        printed, err = p.p.communicate(timeout=15)
    assert p.p.returncode == 0, err[-2000:]
    return printed, out, verdicts
