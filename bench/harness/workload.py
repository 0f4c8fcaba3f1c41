"""What the benchmark sends and what a correct answer carries, shared by the wrk scripts,
the correctness check and the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parents[1]
REPO_DIR: Final = BENCH_DIR.parent
HOST: Final = "127.0.0.1"
HELLO_BODY: Final = '{"message":"hello","n":42}'
PREFLIGHT_METHOD: Final = "PUT"
COOKIE: Final = "session=0123456789abcdef"
PREFLIGHT_HEADERS: Final = "content-type,x-requested-with"
SCENARIOS: Final = ("small", "preflight", "big")  # timed with wrk; "slow" runs after them
SCENARIO_TITLES: Final = {
    "small": "small GET /api/hello with Origin and a Cookie (credentials)",
    "preflight": f"preflight OPTIONS /api/hello (Origin, ACRM {PREFLIGHT_METHOD}, ACRH "
    f"{PREFLIGHT_HEADERS})",
    "big": "large download GET /big (64 MiB) with Origin",
}
BASELINES: Final = ("direct", "nginx-cors")


def request_headers(scenario: str, origin: str) -> dict[str, str]:
    """The headers of a scenario's request (wrk's and the check's alike)."""
    if scenario == "small":
        return {"Origin": origin, "Cookie": COOKIE}
    if scenario == "preflight":
        return {
            "Origin": origin,
            "Access-Control-Request-Method": PREFLIGHT_METHOD,
            "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
        }
    assert scenario == "big", scenario
    return {"Origin": origin}


def method_and_path(scenario: str) -> tuple[str, str]:
    return ("OPTIONS" if scenario == "preflight" else "GET"), (
        "/big" if scenario == "big" else "/api/hello"
    )
