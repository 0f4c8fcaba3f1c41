"""The README's "Why is my request blocked?" table is the browser oracle's own output."""

from __future__ import annotations

import re

import pytest

from proxy.cli import _parser
from proxy.diagnosis.oracle import Exchange, evaluate
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
URL, ORIGIN = "http://127.0.0.1:8080/api/x", "http://localhost:3000"
ACAO = "Access-Control-Allow-Origin"

CASES = {
    "origin not allowed": (Exchange(URL, ORIGIN, "GET", (), False, False), 200, []),
    "preflight refused": (Exchange(URL, ORIGIN, "PUT", (), False, True), 403, []),
    "header": (
        Exchange(URL, ORIGIN, "PUT", ("x-api-key",), False, True),
        204,
        [(ACAO, ORIGIN), ("Access-Control-Allow-Methods", "PUT")],
    ),
    "method": (
        Exchange(URL, ORIGIN, "PUT", (), False, True),
        204,
        [(ACAO, ORIGIN), ("Access-Control-Allow-Methods", "GET")],
    ),
    "two values": (
        Exchange(URL, ORIGIN, "GET", (), False, False),
        200,
        [(ACAO, "*"), (ACAO, ORIGIN)],
    ),
    "star with credentials": (Exchange(URL, ORIGIN, "GET", (), True, False), 200, [(ACAO, "*")]),
    "no credentials": (Exchange(URL, ORIGIN, "GET", (), True, False), 200, [(ACAO, ORIGIN)]),
    "other origin": (
        Exchange(URL, ORIGIN, "GET", (), False, False),
        200,
        [(ACAO, "http://localhost:3001")],
    ),
    "preflight status": (Exchange(URL, ORIGIN, "PUT", (), False, True), 500, [(ACAO, ORIGIN)]),
}


@pytest.mark.parametrize("case", CASES)
def test_table_row_is_what_the_oracle_prints(case: str) -> None:
    exchange, status, headers = CASES[case]
    verdict = evaluate(exchange, status, headers)
    assert not verdict.allowed
    tail = verdict.console.split("has been blocked by CORS policy: ", 1)[1]
    assert f"| `{tail}` |" in README, tail


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_command_line_table_lists_every_flag() -> None:
    """Every flag of ``cors-proxy --help`` has its row in the README's "Command line"."""
    rows = [line for line in _section("Command line").splitlines() if line.startswith("| `")]
    flags = [
        flag
        for action in _parser()._actions
        for flag in action.option_strings
        if flag.startswith("--")
    ]
    assert flags, "no flags found"
    missing = [f for f in flags if not any(re.search(rf"[` ]{f}(?![\w-])", r) for r in rows)]
    assert not missing, f"flags without a row in the README's command-line table: {missing}"


def test_readme_test_command_is_what_ci_runs() -> None:
    """CI (``.ci/run``) runs exactly the test command the README gives."""
    command = "bash .ci/setup-machine && python -m pytest"
    assert f"\n{command}\n" in _section("Quickstart")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    runs = [line for line in ci.splitlines() if "python -m pytest" in line]
    assert runs == [command], runs


def test_quickstart_points_the_page_at_localhost() -> None:
    """The page on http://localhost:3000 calls the proxy as http://localhost:8080: the same
    site, so cookies work (127.0.0.1 there is the cookie trap the README warns about)."""
    quickstart = _section("Quickstart")
    assert "at **`http://localhost:8080`**" in quickstart
    assert "frontend at `http://127.0.0.1:8080`" not in README
