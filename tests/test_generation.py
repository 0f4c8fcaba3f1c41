"""The config generation's caches (proxy/generation.py): bounded in entries and bytes,
every estimate of an entry's memory an upper bound (measured with tracemalloc on the
fast lane's real code path), keys that hold every input, and a reload that drops them."""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from proxy import generation
from proxy.generation import Cache
from proxy.policy.cors import ActualDecision
from tests.support import ORIGIN
from tests.support.lane import FakeUpstream, Lane, make_lane


class TestCache:
    def test_bounded_in_entries(self) -> None:
        cache: Cache[int, str] = Cache(entries=3, budget=1000, largest=100)
        for n in range(10):
            cache.put(n, str(n), 1)
            assert 1 <= len(cache) <= 3
        assert cache.get(9) == "9"

    def test_bounded_in_bytes_and_large_entries_never_kept(self) -> None:
        cache: Cache[int, str] = Cache(entries=100, budget=250, largest=100)
        assert cache.put(1, "too large", 101) == "too large"
        assert cache.get(1) is None
        assert (len(cache), cache.size) == (0, 0)
        for n in range(10):
            cache.put(n, "x", 100)
            assert cache.size <= 250
            assert len(cache) <= 2
        cache.put(99, "y", 50)  # 200 + 50 fits
        assert cache.get(99) == "y"
        assert repr(cache) == "<Cache 3/100 entries, 250/250 B>"


def head(n: int, *, fields: int = 2, pad: int = 0, method: str = "GET") -> bytes:
    extra = "".join(f"X-{j}-{n}: {j}\r\n" for j in range(fields))
    return (
        f"{method} /api/{n}?{'q' * pad} HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
        "Access-Control-Request-Method: PUT\r\n"
        f"{extra}\r\n"
    ).encode()


# Worst cases for the request cache's estimate: many small fields, one long path (JSON
# escapes it), long denied origins and cookies, preflights that leave a replay.
HEADS: dict[str, Callable[[int], bytes]] = {
    "many fields": lambda n: head(n, fields=95),
    "long path": lambda n: head(n, pad=3800),
    "long origin": lambda n: (
        f"GET /api/{n} HTTP/1.1\r\nHost: x\r\nOrigin: http://{'a' * 900}{n}.test:3000\r\n"
        f"Cookie: {'c' * 2500}\r\n\r\n"
    ).encode(),
    "preflight": lambda n: head(n, pad=2000, method="OPTIONS"),
    "preflight, many fields": lambda n: head(n, fields=90, method="OPTIONS"),
}


@pytest.fixture
def lane(fake_lane: Lane) -> Lane:
    return fake_lane


@pytest.fixture
def measured() -> Iterator[Callable[[], int]]:
    """Bytes allocated and still held since the fixture started."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]

    def now() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base

    yield now
    tracemalloc.stop()


def quiet(lane: Lane) -> None:
    """Log lines go nowhere: what they would hold is not the caches'."""
    lane.proxy.log.stream = io.StringIO()
    lane.proxy.log.stream.write = len  # type: ignore[method-assign]


async def exchange(lane: Lane, raw: bytes) -> bytes:
    lane.send(raw)
    await lane.turn(20)
    return lane.client.take()


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("shape", list(HEADS))
async def test_a_request_plan_holds_less_than_its_estimate(
    shape: str, log_format: str, measured: Callable[[], int]
) -> None:
    lane = make_lane(log_format=log_format)
    quiet(lane)
    make = HEADS[shape]
    for n in range(3):  # the pooled upstream connection, the response plan
        await exchange(lane, make(n))
    gen = lane.proxy.generation
    before = measured()
    kept_before = gen.requests.size + gen.responses.size
    for n in range(100, 150):
        answer = await exchange(lane, make(n))
        assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 204 "))
    plans = [plan for raw, plan in gen.requests.items() if raw.startswith(make(100)[:3])]
    assert len(plans) == 53  # every one cached, every part worked out
    if shape.startswith("preflight"):
        assert all(plan.replay is not None for plan in plans)
    else:
        assert all(p.actual and p.upstream and p.line for p in plans)
    held = measured() - before
    estimated = gen.requests.size + gen.responses.size - kept_before
    assert 0 < held <= estimated, (held, estimated)
    await lane.server.shutdown(0)


def reply(n: int, shape: str) -> bytes:
    if shape == "many fields":
        fields = "".join(f"X-{j}: {n}\r\n" for j in range(200))
    elif shape == "tiny fields":
        fields = "".join(f"A{j}:\r\n" for j in range(300)) + f"B: {n}\r\n"
    else:
        fields = f"Set-Cookie: s={'v' * 3000}{n}\r\nX-Trace: {n}\r\n"
    return (
        "HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 14:13:46 GMT\r\n"
        f"{fields}Content-Length: 2\r\n\r\nok"
    ).encode()


@pytest.mark.parametrize("shape", ["many fields", "tiny fields", "long values"])
async def test_a_response_plan_holds_less_than_its_estimate(
    shape: str, measured: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generation, "LARGEST_RESPONSE", 1 << 30)  # keep even the largest
    up = FakeUpstream(reply=None)
    lane = make_lane(up)
    # the --origin rule names every response header: the largest plans
    assert lane.proxy.generation.config.rules[0].expose_headers == ("*",)
    quiet(lane)
    request = b"GET /api/x HTTP/1.1\r\nHost: x\r\nOrigin: " + ORIGIN.encode() + b"\r\n\r\n"

    async def one(n: int) -> None:
        lane.send(request)
        await lane.turn(5)
        up.answer(reply(n, shape))
        await lane.turn(10)
        assert lane.client.take().startswith(b"HTTP/1.1 200 OK\r\n")

    for n in range(3):
        await one(n)
    gen = lane.proxy.generation
    before, kept_before = measured(), gen.responses.size
    for n in range(100, 150):
        await one(n)
    assert len(gen.responses) == 53
    held = measured() - before
    estimated = gen.responses.size - kept_before
    assert 0 < held <= estimated, (held, estimated)
    await lane.server.shutdown(0)


async def test_the_caches_never_pass_their_budgets(
    measured: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endless distinct worst-case heads: the request cache stays within its budget (and
    the memory it holds with it); a head over the largest size is never cached."""
    monkeypatch.setattr(generation, "REQUEST_BYTES", 1 << 20)
    lane = make_lane()
    quiet(lane)
    # The inspector keeps the last exchanges, heads included, within its own bound
    # (tests/inspector/test_ring.py): off here, so what is measured is the cache.
    lane.proxy.forwarder.ring = None
    gen = lane.proxy.generation
    await exchange(lane, head(0))
    base = measured()
    for n in range(1, 200):
        await exchange(lane, HEADS["many fields"](n))
        assert gen.requests.size <= 1 << 20
    assert measured() - base <= (1 << 20) + 200 * len(gen.requests)
    monkeypatch.setattr(generation, "LARGEST_HEAD", 100)
    await exchange(lane, head(1000))
    assert gen.requests.get(head(1000)) is None  # planned, answered, not cached
    await lane.server.shutdown(0)


async def test_a_head_that_is_not_ascii_is_not_kept(lane: Lane) -> None:
    raw = head(1).replace(b"X-0-1: 0", "X-0-1: caf\u00e9".encode())
    assert (await exchange(lane, raw)).startswith(b"HTTP/1.1 200 OK\r\n")
    assert lane.proxy.generation.requests.get(raw) is None


class TestResponseKey:
    """The response cache holds every input in its key but the upstream's Date, whose
    value still reaches the client."""

    async def test_every_input_is_in_the_key(self) -> None:
        gen = make_lane().proxy.generation
        allowed = gen.policy.actual(path="/api/x", origin=ORIGIN)
        denied = gen.policy.actual(path="/api/x", origin="http://evil.test")
        fields = [("Location", "http://127.0.0.1:9/a"), ("X-A", "1")]
        base, _ = gen.response_plan(fields, allowed, "http://x")
        assert gen.response_plan(list(fields), allowed, "http://x")[0] is base  # cached
        others = [
            gen.response_plan(fields, denied, "http://x")[0],
            gen.response_plan(fields, allowed, "http://y")[0],
            gen.response_plan([*fields, ("X-B", "2")], allowed, "http://x")[0],
            gen.response_plan(fields[::-1], allowed, "http://x")[0],
        ]
        assert all(o is not base and o != base for o in others)
        assert ("Location", "http://y/a") in others[1].fields.items
        assert len(gen.responses) == 5

    async def test_the_date_is_left_out_of_the_key_and_comes_back(self) -> None:
        gen = make_lane().proxy.generation
        allowed = gen.policy.actual(path="/api/x", origin=ORIGIN)
        one, date1 = gen.response_plan([("Date", "d1"), ("X-A", "1")], allowed, "http://x")
        two, date2 = gen.response_plan([("date", "d2"), ("X-A", "1")], allowed, "http://x")
        assert one is two
        assert (date1, date2) == ("d1", "d2")
        assert all(n.lower() != "date" for n, _ in one.fields.items)
        twice = [("Date", "d1"), ("Date", "d2"), ("X-A", "1")]
        plan, date = gen.response_plan(twice, allowed, "http://x")
        assert date is None  # two Date fields pass as they came
        assert [v for n, v in plan.fields.items if n == "Date"] == ["d1", "d2"]

    async def test_a_decision_is_a_value(self) -> None:
        gen = make_lane().proxy.generation
        a = ActualDecision(True, (("Access-Control-Allow-Origin", ORIGIN),), "r", "", True)
        b = ActualDecision(True, (("Access-Control-Allow-Origin", ORIGIN),), "r", "", True)
        assert gen.response_plan([], a, "http://x")[0] is gen.response_plan([], b, "http://x")[0]


async def test_a_reload_starts_with_empty_caches(lane: Lane) -> None:
    await exchange(lane, head(1))
    old = lane.proxy.generation
    assert len(old.requests) == 1
    assert len(old.responses) == 1
    proxy = lane.proxy
    assert proxy.reload("test")  # the same flags again: a new generation
    assert proxy.generation is not old
    assert (len(proxy.generation.requests), len(proxy.generation.responses)) == (0, 0)
    assert (await exchange(lane, head(1))).startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(proxy.generation.requests) == 1
