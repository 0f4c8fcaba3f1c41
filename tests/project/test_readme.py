"""The README's "Why is my request blocked?" table is the browser oracle's own output."""

from __future__ import annotations

import pytest

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
