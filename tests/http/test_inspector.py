"""The inspector's endpoints on real sockets (proxy/http/inspector.py): the JSON API, the
event stream, who may see them, the ring's bound, and what it costs to shut down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from proxy.http.fastlane import MAX_HEAD
from proxy.http.inspector import MAX_LISTENERS
from proxy.inspector.ring import MAX_HEAD_BYTES
from tests.support import ORIGIN
from tests.support.proxy import MakeProxy, RunningProxy
from tests.support.upstream_app import Upstream

EVIL = "http://evil.test"
INSPECTOR = "/__cors-proxy__/"


@pytest.fixture
async def p(make_proxy: MakeProxy, upstream: Upstream) -> RunningProxy:
    """The proxy with the default test config, in front of the Flask app."""
    return await make_proxy(upstream.url)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def exchanges(s: aiohttp.ClientSession, p: RunningProxy, query: str = "") -> dict[str, Any]:
    async with s.get(p.url + INSPECTOR + "exchanges" + query) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
        return data


async def settled(s: aiohttp.ClientSession, p: RunningProxy, count: int) -> dict[str, Any]:
    """The exchanges once ``count`` are kept: an exchange is kept after its last byte
    went out, so the client may be a step ahead."""
    for _ in range(100):
        data = await exchanges(s, p)
        if len(data["exchanges"]) >= count:
            return data
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {count} exchanges: {data}")


async def test_the_json_api_tells_everything_the_page_shows(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    secret = {"Cookie": "session=s3cr3t", "Authorization": "Bearer s3cr3t-token"}
    async with session.get(
        p.url + "/api/hello?token=s3cr3t", headers={"Origin": EVIL, **secret}
    ) as r:
        assert r.status == 200
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
           "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    async with session.options(p.url + "/api/echo", headers=pre) as r:
        assert r.status == 204
    async with session.put(
        p.url + "/api/echo", json={}, headers={"Origin": ORIGIN, "X-Api-Key": "s3cr3t"}
    ) as r:
        assert r.status == 200
    async with session.get(p.url + "/api/boom", headers={"Origin": ORIGIN}) as r:
        assert r.status == 500

    data = await settled(session, p, 4)
    assert "s3cr3t" not in json.dumps(data)  # cookies, tokens, keys: masked everywhere
    # newest first, in the order they ended (a response's log line and capture follow
    # its last byte, so a request the client did not wait for may end after the next)
    ids = [e["id"] for e in data["exchanges"]]
    assert ids == sorted(ids, reverse=True)
    found = {(e["method"], e["path"].partition("?")[0]): e for e in data["exchanges"]}
    blocked, preflight = found["GET", "/api/hello"], found["OPTIONS", "/api/echo"]
    put, boom = found["PUT", "/api/echo"], found["GET", "/api/boom"]
    assert blocked["blocked"]
    assert blocked["verdict"] == "blocked"
    assert blocked["browser"] == (
        f"Access to fetch at '{p.url}/api/hello?token=••••••' from origin '{EVIL}' has been "
        "blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present on the "
        "requested resource."
    )
    assert blocked["fix"]["text"] == f'add "{EVIL}" to rules[0].origins'
    assert blocked["fix"]["yaml"] == {
        "where": "rules[0] (frontend)",
        "key": "origins",
        "line": f'origins: ["{ORIGIN}", "{EVIL}"]',
        "applied": False,
    }
    headers = {h["name"]: h for h in blocked["request_headers"]}
    assert headers["Cookie"]["value"] == "session=••••••"
    assert headers["Cookie"]["masked"]
    assert headers["Origin"]["cors"]
    assert any(c.startswith("curl -i -X GET") for c in blocked["curl"])
    assert (preflight["pair"], put["pair"]) == (put["id"], preflight["id"])
    assert preflight["preflight_for"] == {"method": "PUT", "headers": "content-type"}
    assert boom["error"]
    assert "traceback is in the Flask console" in boom["upstream_error"]
    summary = data["summary"]
    assert (summary["requests"], summary["blocked"], summary["errors"]) == (4, 1, 1)
    assert {o["origin"]: o["requests"] for o in summary["origins"]} == {ORIGIN: 3, EVIL: 1}

    one = await (await session.get(p.url + INSPECTOR + f"exchanges/{preflight['id']}")).json()
    assert one == preflight
    async with session.get(p.url + INSPECTOR + "exchanges/999") as r:
        assert r.status == 404
    assert [e["id"] for e in (await exchanges(session, p, "?blocked=1"))["exchanges"]] == [
        blocked["id"]
    ]
    assert [e["id"] for e in (await exchanges(session, p, "?errors=1"))["exchanges"]] == [
        boom["id"]
    ]
    by_origin = await exchanges(session, p, f"?origin={EVIL}")
    assert [e["id"] for e in by_origin["exchanges"]] == [blocked["id"]]
    by_path = await exchanges(session, p, "?path=/api/echo")
    assert {e["id"] for e in by_path["exchanges"]} == {put["id"], preflight["id"]}
    searched = await exchanges(session, p, "?q=zerodivision&limit=2")
    assert searched["exchanges"] == []  # not in debug mode: no exception text to find
    after = await exchanges(session, p, f"?after={ids[1]}")
    assert [e["id"] for e in after["exchanges"]] == [ids[0]]


async def test_a_preflight_answered_again_is_kept_too(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    """The fast lane answers a repeated preflight from its known heads, without a
    decision: the page still sees it, with its own time."""
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    for _ in range(3):
        async with session.options(p.url + "/api/echo", headers=pre) as r:
            assert r.status == 204
    kept = (await settled(session, p, 3))["exchanges"]
    assert [(e["method"], e["cors"]) for e in kept] == [("OPTIONS", "preflight-ok")] * 3
    assert "0.0ms" in await p.logs()  # at least one came from the replay


def test_the_fast_lanes_heads_are_within_the_rings_bound() -> None:
    """The ring keeps the fast lane's request heads by reference: README's memory bound
    holds because they are no larger than what it keeps of any other head."""
    assert MAX_HEAD <= MAX_HEAD_BYTES


async def test_the_ring_keeps_the_last_n(
    make_proxy: MakeProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    p = await make_proxy(upstream.url, inspector={"keep": 3})
    for i in range(5):
        async with session.get(p.url + f"/api/hello?n={i}", headers={"Origin": ORIGIN}) as r:
            await r.read()
    data = await settled(session, p, 3)
    while data["summary"]["requests"] < 5:
        await asyncio.sleep(0.02)
        data = await exchanges(session, p)
    assert [e["path"] for e in data["exchanges"]] == [f"/api/hello?n={i}" for i in (4, 3, 2)]
    assert (data["summary"]["requests"], data["summary"]["kept"]) == (5, 3)


async def test_no_cors_headers_a_strict_policy_and_no_external_assets(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    for name in ("", "inspector.js", "inspector.css", "exchanges", "config"):
        async with session.get(p.url + INSPECTOR + name, headers={"Origin": ORIGIN}) as r:
            assert r.status == 200, name
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            csp = r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp
            assert "script-src 'self'" in csp
            assert "require-trusted-types-for 'script'" in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
            assert r.headers["Cache-Control"] == "no-store"
            body = await r.text()
            assert "http://" not in body.replace("http://127.0.0.1", "") or name in (
                "exchanges",
                "config",
            ), f"{name} refers to something off this page"
    async with session.get(p.url + INSPECTOR) as r:
        page = await r.text()
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script src="inspector.js" defer></script>' in page
    assert "<script>" not in page  # no inline script: the policy would refuse it


def non_loopback_address() -> str:
    """This machine's address on its default route (connect() on UDP sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
        except OSError as exc:
            pytest.fail(f"this test needs a non-loopback IPv4 address ({exc})")
        address: str = s.getsockname()[0]
    assert not address.startswith("127."), address
    return address


@pytest.mark.parametrize("allowed", [False, True], ids=["loopback-only", "widened"])
async def test_loopback_clients_only_unless_allowed(
    make_proxy: MakeProxy, upstream: Upstream, session: aiohttp.ClientSession, allowed: bool
) -> None:
    address = non_loopback_address()
    inspector = {"allow": [f"{address}/32"]} if allowed else {}
    p = await make_proxy(upstream.url, listen="0.0.0.0:0", inspector=inspector)
    outside = f"http://{address}:{p.port}"
    for name in ("", "exchanges", "events"):
        async with session.get(outside + INSPECTOR + name) as r:
            if allowed:
                assert r.status == 200
                continue
            assert r.status == 403
            assert "loopback clients only" in await r.text()
            assert "inspector.allow" in await r.text()
    async with session.get(outside + INSPECTOR + "health") as r:
        assert r.status == 200  # the health check stays open (container probes)
    async with session.get(outside + "/api/hello", headers={"Origin": ORIGIN}) as r:
        assert r.status == 200  # the proxy itself serves everyone it listens for
    async with session.get(p.url + INSPECTOR + "exchanges") as r:
        assert r.status == 200  # loopback always


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "attacker.example"}, 403),  # DNS rebinding: the page's own "origin"
        ({"Host": "localhost"}, 200),
        ({"Host": "app.localhost:1234"}, 200),
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, 403),
        ({"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, 200),
        ({"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, 200),
    ],
)
async def test_host_names_and_fetch_metadata(
    make_proxy: MakeProxy,
    upstream: Upstream,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
) -> None:
    p = await make_proxy(upstream.url)
    async with session.get(p.url + INSPECTOR + "exchanges", headers=headers) as r:
        assert r.status == status, await r.text()


async def test_a_link_from_another_site_still_opens_the_page(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    async with session.get(p.url + INSPECTOR, headers=link) as r:
        assert r.status == 200  # static HTML; what it shows needs same-origin requests
    for data in ("exchanges", "config", "events"):  # a link straight to the data: no
        async with session.get(p.url + INSPECTOR + data, headers=link) as r:
            assert r.status == 403, data


async def test_turned_off(
    make_proxy: MakeProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    p = await make_proxy(upstream.url, inspector={"enabled": False})
    async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
        assert r.status == 200
    assert p.server.forwarder is not None
    assert p.server.forwarder.ring is None  # nothing kept, nothing paid
    assert not p.server.ring.entries
    async with session.get(p.url + INSPECTOR) as r:
        assert r.status == 404
        assert "inspector.enabled: false" in await r.text()
    async with session.get(p.url + INSPECTOR + "health") as r:
        assert r.status == 200


async def test_clear_needs_its_header_and_this_page(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
        await r.read()
    clear = p.url + INSPECTOR + "clear"
    async with session.post(clear) as r:
        assert r.status == 403  # a cross-site form can POST, but not with a custom header
    mine = {"X-Cors-Proxy-Inspector": "clear"}
    async with session.post(clear, headers={**mine, "Origin": EVIL}) as r:
        assert r.status == 403
    async with session.get(clear) as r:
        assert r.status == 405
    assert len((await settled(session, p, 1))["exchanges"]) == 1
    async with session.post(clear, headers={**mine, "Origin": p.url}) as r:
        assert r.status == 200
        assert (await r.json())["summary"]["requests"] == 0
    assert (await exchanges(session, p))["exchanges"] == []


async def read_event(
    resp: aiohttp.ClientResponse, limit: float = 5.0
) -> tuple[str, dict[str, Any]]:
    """The next named event of a text/event-stream (comments and retry lines skipped)."""
    kind, data = "", ""
    async with asyncio.timeout(limit):
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and kind:
                return kind, json.loads(data)


async def test_events_push_new_exchanges_within_a_fraction_of_a_second(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    async with session.get(p.url + "/api/hello?before", headers={"Origin": ORIGIN}) as r:
        await r.read()
    await settled(session, p, 1)
    async with session.get(p.url + INSPECTOR + "events") as events:
        assert events.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert not [h for h in events.headers if h.lower().startswith("access-control-")]
        kind, first = await read_event(events)
        assert kind == "exchanges"
        assert [e["path"] for e in first["exchanges"]] == ["/api/hello?before"]
        started = time.monotonic()
        async with session.get(p.url + "/api/hello?after", headers={"Origin": EVIL}) as r:
            await r.read()
        kind, pushed = await read_event(events)
        assert time.monotonic() - started < 1.0
        assert kind == "exchanges"
        assert [(e["path"], e["blocked"]) for e in pushed["exchanges"]] == [
            ("/api/hello?after", True)
        ]
        assert pushed["summary"]["blocked"] == 1
        last = pushed["exchanges"][0]["id"]
        p.server.reload("test")  # an open page hears of a reload
        assert (await read_event(events))[0] == "config"
    # a page that reconnects says where it was: only what is newer comes
    async with session.get(p.url + "/api/hello?later", headers={"Origin": ORIGIN}) as r:
        await r.read()
    await settled(session, p, 3)
    async with session.get(
        p.url + INSPECTOR + "events", headers={"Last-Event-ID": str(last)}
    ) as events:
        _, again = await read_event(events)
        assert [e["path"] for e in again["exchanges"]] == ["/api/hello?later"]


async def test_nothing_is_pushed_while_no_page_listens(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    assert p.server.ring.wake is None
    async with session.get(p.url + INSPECTOR + "events") as events:
        await read_event(events)
        assert p.server.ring.wake is not None
    for _ in range(50):  # the next push finds the page gone
        if not p.server.inspector.listeners:
            break
        async with session.get(p.url + "/api/hello") as r:
            await r.read()
        await asyncio.sleep(0.1)
    assert not p.server.inspector.listeners
    assert p.server.ring.wake is None


async def test_shutdown_ends_open_event_streams_at_once(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    async with session.get(p.url + INSPECTOR + "events") as events:
        await read_event(events)
        started = time.monotonic()
        await p.server.stop()
        assert time.monotonic() - started < 2.0  # not the 5 s in-flight grace
        async with asyncio.timeout(2):
            assert await events.content.read() == b""


async def test_config_panel(
    p: RunningProxy, session: aiohttp.ClientSession, upstream: Upstream
) -> None:
    async with session.get(p.url + INSPECTOR + "config") as r:
        c = await r.json()
    assert c["generation"] == 1
    assert c["check"][0].startswith("config OK: ")
    assert "  rules[0] 'frontend': paths /api/*" in c["check"]
    assert c["last_reload"] is None
    assert c["upstream"] == {"url": upstream.url, "reachable": True, "last_failure": None}

    path = Path(p.server.config_path or "")
    good = await asyncio.to_thread(path.read_text)
    await asyncio.to_thread(path.write_text, good.replace("max_age: 600", "max_age: 86400"))
    assert p.server.reload("SIGHUP")
    await asyncio.to_thread(path.write_text, good + "\nbogus: 1\n")
    assert not p.server.reload("file changed")
    async with session.get(p.url + INSPECTOR + "config") as r:
        c = await r.json()
    assert c["generation"] == 2
    assert c["last_reload"]["why"] == "file changed"
    assert not c["last_reload"]["applied"]
    messages = c["last_reload"]["messages"]
    assert len(messages) == 1
    assert messages[0].startswith("config error: bogus: unknown key (known: listen, upstream")


async def test_the_upstreams_last_failure(
    make_proxy: MakeProxy, session: aiohttp.ClientSession
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    p = await make_proxy(dead, upstream_wait=0)
    async with session.get(p.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
        assert r.status == 502
    async with session.get(p.url + INSPECTOR + "config") as r:
        up = (await r.json())["upstream"]
    assert not up["reachable"]
    assert up["last_failure"]["reason"] == "connection refused"
    assert "nothing listens on 127.0.0.1" in up["last_failure"]["detail"]
    kept = (await settled(session, p, 1))["exchanges"][0]
    assert kept["error"]
    assert {h["name"] for h in kept["response_headers"]} >= {"X-Cors-Proxy-Error"}


async def test_a_seventeenth_page_is_refused_until_one_closes(
    p: RunningProxy, session: aiohttp.ClientSession
) -> None:
    async with contextlib.AsyncExitStack() as pages:
        for _ in range(MAX_LISTENERS):
            events = await pages.enter_async_context(session.get(p.url + INSPECTOR + "events"))
            await read_event(events)
        async with session.get(p.url + INSPECTOR + "events") as refused:
            assert refused.status == 503
            assert await refused.text() == (
                f"cors-proxy: too many inspector pages open (at most {MAX_LISTENERS})\n"
            )
            assert not [h for h in refused.headers if h.lower().startswith("access-control-")]
    for _ in range(150):  # the closed pages' streams end on the proxy's side too (1 s)
        if not p.server.inspector.listeners:
            break
        await asyncio.sleep(0.02)
    async with session.get(p.url + INSPECTOR + "events") as events:
        assert events.status == 200
        await read_event(events)


async def test_learned_rules_are_the_inspectors_guarded_like_its_json(
    make_proxy: MakeProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    """`cors-proxy learn`'s rules so far: for the inspector's page (and curl) only."""
    address = non_loopback_address()
    p = await make_proxy(upstream.url, learn=True, listen="0.0.0.0:0")
    async with session.get(p.url + "/api/hello", headers={"Origin": EVIL}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == EVIL  # learning: every origin
    learned = p.url + INSPECTOR + "learned"
    page = {"Origin": p.url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    for headers in ({}, page, {"Host": "localhost"}):
        async with session.get(learned, headers=headers) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"] == "application/yaml; charset=utf-8"
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            assert "require-trusted-types-for 'script'" in r.headers["Content-Security-Policy"]
            assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
            assert r.headers["Cache-Control"] == "no-store"
            rules = yaml.safe_load(await r.text())["rules"]
        assert [(x["paths"], x["origins"]) for x in rules] == [(["/api/hello"], [EVIL])]
    refused = [
        ({"Host": "attacker.example"}, "DNS rebinding"),
        ({"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, "own page"),
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, "own page"),
    ]
    for headers, why in refused:
        async with session.get(learned, headers=headers) as r:
            assert r.status == 403, headers
            assert why in await r.text()
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    async with session.get(f"http://{address}:{p.port}{INSPECTOR}learned") as r:
        assert r.status == 403
        assert "loopback clients only" in await r.text()
    async with session.post(learned, headers=page) as r:
        assert r.status == 405


async def test_the_page_hears_whether_the_proxy_is_learning(
    make_proxy: MakeProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    for learn in (True, False):
        p = await make_proxy(upstream.url, learn=learn)
        async with session.get(p.url + INSPECTOR + "config") as r:
            assert (await r.json())["learning"] is learn
        async with session.get(p.url + INSPECTOR + "events") as events:
            kind, first = await read_event(events)
        assert (kind, first["learning"]) == ("exchanges", learn)
        async with session.get(p.url + INSPECTOR + "learned") as r:
            assert r.status == (200 if learn else 404)
