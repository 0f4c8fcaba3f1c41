"""What the inspector shows of an exchange (proxy/inspector/view.py, pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from proxy.config.loader import load
from proxy.config.model import Config
from proxy.inspector import view
from proxy.inspector.mask import MASK
from proxy.inspector.ring import Entry, Ring
from proxy.log.record import BrowserVerdict, Record

PAGE = "http://localhost:3000"


def cfg(tmp_path: Path) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(
        "rules:\n  - name: frontend\n    paths: ['/api/*']\n"
        f"    origins: ['{PAGE}']\n    allow_credentials: true\n"
    )
    return load(str(path))


def entry(ident: int, when: float, rec: Record, request: object, response: object) -> Entry:
    return (ident, when, rec.ms, rec, request, response)  # type: ignore[return-value]


def blocked() -> Record:
    return Record(
        "GET", "/api/items?token=abc", 200, "http://127.0.0.1:5173", "denied", "frontend", 2.0,
        reason="origin 'http://127.0.0.1:5173' is not allowed by rule 'frontend'",
        verdict="blocked",
        console="Access to fetch at 'http://localhost:8080/api/items?token=abc' from origin "
        "'http://127.0.0.1:5173' has been blocked by CORS policy: No 'Access-Control-Allow-Origin'"
        " header is present on the requested resource.",
        hints=("the rules have http://localhost:3000 (different host: ...)",),
        fix='add "http://127.0.0.1:5173" to rules[0].origins',
    )  # fmt: skip


REQUEST = (
    ("Host", "localhost:8080"),
    ("Sec-Fetch-Mode", "cors"),
    ("sec-ch-ua", '"Chromium";v="156"'),
    ("Origin", "http://127.0.0.1:5173"),
    ("Cookie", "session=s3cr3t"),
    ("Authorization", "Bearer s3cr3t-token"),
    ("X-Api-Key", "s3cr3t"),
)
RESPONSE = (("Content-Type", "application/json"), ("Vary", "Origin"), ("Set-Cookie", "a=s3cr3t"))


def test_a_blocked_exchange_in_full(tmp_path: Path) -> None:
    ex = view.exchange(entry(7, 1000.0, blocked(), REQUEST, RESPONSE), cfg(tmp_path))
    text = json.dumps(ex)
    assert "s3cr3t" not in text
    assert "token=abc" not in text
    assert ex["blocked"]
    assert ex["verdict"] == "blocked"
    assert not ex["error"]
    assert ex["browser"].endswith(
        "No 'Access-Control-Allow-Origin' header is present on the requested resource."
    )
    assert ex["path"] == f"/api/items?token={MASK}"
    assert ex["cause"][0].startswith("origin 'http://127.0.0.1:5173' is not allowed")
    assert (
        ex["fix"]["yaml"]["line"] == 'origins: ["http://localhost:3000", "http://127.0.0.1:5173"]'
    )
    rows = {r["name"]: r for r in ex["request_headers"]}
    assert rows["Origin"]["cors"]
    assert not rows["Origin"]["masked"]
    assert rows["Cookie"] == {
        "name": "Cookie",
        "value": f"session={MASK}",
        "cors": False,
        "masked": True,
    }
    assert rows["X-Api-Key"]["masked"]
    assert rows["Authorization"]["masked"]
    resp = {r["name"]: r for r in ex["response_headers"]}
    assert resp["Vary"]["cors"]
    assert resp["Set-Cookie"]["value"] == f"a={MASK}"
    # curl: the preflight that credentials and the custom header need, then the request
    assert len(ex["curl"]) == 2
    assert ex["curl"][0].startswith("curl -i -X OPTIONS 'http://localhost:8080/api/items?token=")
    assert "'Authorization: <your authorization>'" in ex["curl"][1]
    assert "'X-Api-Key: <your x-api-key>'" in ex["curl"][1]
    assert "sec-" not in " ".join(ex["curl"]).lower()  # the browser's own fields left out


def test_no_origin_no_response(tmp_path: Path) -> None:
    rec = Record("GET", "/health", 200, None, "no-origin", "frontend", 1.0)
    ex = view.exchange(
        entry(1, 0.0, rec, (("Host", "h:1"), ("Accept", "*/*")), None), cfg(tmp_path)
    )
    assert ex["response_headers"] is None
    assert ex["curl"] == ["curl -i -X GET http://h:1/health -H 'Accept: */*'"]
    assert ex["fix"] is None
    assert not ex["blocked"]


def test_cookie_findings_for_every_exchange_that_sets_the_cookie(tmp_path: Path) -> None:
    """The log names a cookie problem once; the page shows it on each exchange."""
    rec = Record("GET", "/api/login", 200, PAGE, "allowed", "frontend", 1.0)
    response = (("Set-Cookie", "sid=x; SameSite=None"),)
    ex = view.exchange(entry(1, 0.0, rec, (("Host", "localhost:8080"),), response), cfg(tmp_path))
    assert len(ex["cookies"]) == 1
    assert "SameSite=None without Secure" in ex["cookies"][0]


def test_upstream_error_and_preflight_details(tmp_path: Path) -> None:
    err = Record("GET", "/api/boom", 500, PAGE, "allowed", "frontend", 8.0,
                 diagnosis="ZeroDivisionError: division by zero (app.py:20 in boom)")  # fmt: skip
    ex = view.exchange(entry(1, 0.0, err, (), ()), cfg(tmp_path))
    assert ex["error"]
    assert ex["upstream_error"].startswith("ZeroDivisionError")
    pre = Record("OPTIONS", "/api/x", 204, PAGE, "preflight-ok", "frontend", 0.1,
                 note="for PUT with x-custom")  # fmt: skip
    req = (("Access-Control-Request-Method", "PUT"), ("Access-Control-Request-Headers", "x-custom"))
    ex = view.exchange(entry(2, 0.0, pre, req, ()), cfg(tmp_path))
    assert ex["preflight"]
    assert ex["preflight_for"] == {"method": "PUT", "headers": "x-custom"}
    assert ex["note"] == ""  # said by preflight_for already


def _preflight(
    path: str = "/api/x", method: str = "PUT"
) -> tuple[Record, tuple[tuple[str, str], ...]]:
    rec = Record("OPTIONS", path, 204, PAGE, "preflight-ok", "frontend", 0.1)
    return rec, (("Access-Control-Request-Method", method),)


def test_preflight_and_request_are_paired() -> None:
    p, preq = _preflight()
    put = Record("PUT", "/api/x", 201, PAGE, "allowed", "frontend", 3.0)
    get = Record("GET", "/api/x", 200, PAGE, "allowed", "frontend", 3.0)
    other = Record("PUT", "/api/y", 201, PAGE, "allowed", "frontend", 3.0)
    entries = [
        entry(1, 100.0, p, preq, ()),
        entry(2, 100.1, get, (), ()),  # not the method the preflight asked for
        entry(3, 100.1, other, (), ()),  # another path
        entry(4, 100.2, put, (), ()),
        entry(5, 100.3, put, (), ()),  # a second PUT had no preflight of its own
        entry(6, 200.0, p, preq, ()),
        entry(7, 200.0 + view.PAIR_SECONDS + 1, put, (), ()),  # too late
    ]
    assert view.pair_up(entries) == {1: 4, 4: 1}
    # newest first, with the preflight in the context before the batch
    shown = view.exchanges(list(reversed(entries[3:5])), load(None), entries[:3])
    assert [(e["id"], e["pair"]) for e in shown] == [(5, None), (4, 1)]


def test_summary_counts_and_origins() -> None:
    ring = Ring(2)
    verdicts: list[tuple[str | None, BrowserVerdict | Literal[""]]] = [
        (PAGE, ""), (PAGE, "blocked"), ("http://b.test", ""), (None, "")
    ]  # fmt: skip
    for origin, verdict in verdicts:
        r = Record("GET", "/", 200, origin, "allowed", None, 1.0, verdict=verdict)
        ring.add(r, (), (), 0.0)
    s = view.summary(ring, 3)
    assert (s["requests"], s["blocked"], s["errors"], s["kept"], s["keep"]) == (4, 1, 0, 2, 2)
    assert s["origins"][0] == {"origin": PAGE, "requests": 2, "blocked": 1, "errors": 0}
    assert s["generation"] == 3
    assert s["last_id"] == 4
