"""The inspector's ring (proxy/inspector/ring.py, pure): what it keeps, what it counts,
and that its memory stays within the bound the README states, whatever comes in."""

from __future__ import annotations

import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.inspector.ring import (
    MAX_FIELDS,
    MAX_HEAD_BYTES,
    MAX_ORIGINS,
    OTHER,
    Ring,
    bounded_fields,
    bounded_record,
    fields_size,
)
from proxy.log.record import Record

HEADERS = (("Host", "127.0.0.1:8080"), ("Origin", "http://localhost:3000"))


def rec(status: int = 200, origin: str | None = "http://localhost:3000", **extra: object) -> Record:
    r = Record("GET", "/api/x", status, origin, "allowed", "frontend", 1.5)
    for name, value in extra.items():
        setattr(r, name, value)
    return r


def test_keeps_the_last_n_newest_last_with_growing_ids() -> None:
    ring = Ring(3)
    for _ in range(5):
        ring.add(rec(), HEADERS, (), 0.0)
    assert [e[0] for e in ring.entries] == [3, 4, 5]
    assert ring.last_id == 5
    assert [e[0] for e in ring.window(0, 99)] == [3, 4, 5]
    assert [e[0] for e in ring.window(4, 4)] == [4]
    assert ring.window(6, 9) == []
    assert ring.window(1, 2) == []
    assert ring.get(4) is ring.entries[1]
    assert ring.get(2) is None
    assert ring.get(6) is None


def test_the_hot_path_keeps_references_not_copies() -> None:
    ring = Ring(10)
    r = rec()
    response = (("Content-Type", "application/json"),)
    ring.add(r, HEADERS, response, 0.0)
    _, _, ms, kept, request, sent = ring.entries[-1]
    assert kept is r
    assert request is HEADERS
    assert sent is response
    assert ms == 1.5


def test_a_preflight_answered_again_has_its_own_time() -> None:
    ring = Ring(10)
    r = rec()
    ring.add(r, HEADERS, (), 0.0)
    ring.again(r, HEADERS, (), 0.0, 0.01)
    assert [e[2] for e in ring.entries] == [1.5, 0.01]
    assert ring.total.requests == 2


def test_counts_cover_every_exchange_even_past_the_ring() -> None:
    ring = Ring(2)
    ring.add(rec(verdict="blocked", origin="http://evil.test"), HEADERS, (), 0.0)
    ring.add(rec(status=502), HEADERS, (), 0.0)
    ring.add(rec(status=500), HEADERS, (), 0.0)
    ring.add(rec(origin=None), HEADERS, (), 0.0)
    assert ring.total.as_dict() == {"requests": 4, "blocked": 1, "errors": 2}
    assert ring.origins["http://evil.test"].as_dict() == {"requests": 1, "blocked": 1, "errors": 0}
    assert ring.origins["http://localhost:3000"].errors == 2
    assert ring.origins[None].requests == 1
    ring.clear()
    assert ring.total.requests == 0
    assert not ring.origins
    assert not ring.entries
    ring.add(rec(), HEADERS, (), 0.0)
    assert ring.last_id == 5  # ids never repeat: a page asks for "after id N"


def test_distinct_origins_are_counted_in_bounded_memory() -> None:
    ring = Ring(1)
    for i in range(MAX_ORIGINS + 50):
        ring.add(rec(origin=f"http://{i}.test"), HEADERS, (), 0.0)
    ring.add(rec(origin="http://" + "a" * 5000), HEADERS, (), 0.0)
    assert len(ring.origins) == MAX_ORIGINS + 1
    assert ring.origins[OTHER].requests == 51


def test_resize_keeps_the_newest() -> None:
    ring = Ring(5)
    for _ in range(5):
        ring.add(rec(), HEADERS, (), 0.0)
    ring.resize(2)
    assert ring.keep == 2
    assert [e[0] for e in ring.entries] == [4, 5]


def test_wake_is_called_only_when_set() -> None:
    ring = Ring(5)
    woken: list[int] = []
    ring.add(rec(), HEADERS, (), 0.0)
    ring.wake = lambda: woken.append(ring.last_id)
    ring.add(rec(), HEADERS, (), 0.0)
    assert woken == [2]


def test_a_large_record_is_kept_trimmed() -> None:
    ring = Ring(5)
    big = rec(path="/" + "p" * 100_000, hints=tuple("h" * 5000 for _ in range(50)))
    big.repro = ("curl " + "x" * 100_000,)
    ring.add(big, HEADERS, (), 0.0)
    kept = ring.entries[-1][3]
    assert kept is not big
    assert len(kept.path) == 2048
    assert kept.path.endswith("…")
    assert len(bounded_record(rec(path="/" + "é" * 5000)).path) == 512  # 4 bytes each, at most
    assert len(kept.hints) == 8
    assert all(len(h) == 1024 for h in kept.hints)
    assert kept.repro == ()
    assert big.path.startswith(kept.path[:-1])


@given(
    st.lists(
        st.tuples(st.text(max_size=300), st.text(max_size=30_000)),
        max_size=300,
    )
)
def test_bounded_fields_stay_within_the_limits(fields: list[tuple[str, str]]) -> None:
    out = bounded_fields(fields)
    assert len(out) <= MAX_FIELDS
    assert fields_size(out) <= MAX_HEAD_BYTES + 256 * 4 + 8
    for (name, value), (n, v) in zip(fields, out, strict=False):
        assert n == name or (n.endswith("…") and name.startswith(n[:-1]))
        assert v == value or (v.endswith("…") and value.startswith(v[:-1]))


def _worst_entry(
    i: int, wide: str
) -> tuple[Record, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """Every field past its limit, in ASCII or astral characters (4 bytes each)."""
    head = tuple((f"X-{i}-{n}" + wide * 40, wide * 5000) for n in range(120))
    r = Record(wide * 5000, "/" + wide * 50_000 + str(i), 500, "http://" + wide * 9000, "denied",
               "r" * 9000, 1.0, reason=wide * 9000, diagnosis=wide * 9000, note=wide * 9000,
               verdict="blocked", console=wide * 90_000, hints=(wide * 9000,) * 40,
               fix=wide * 9000, repro=(wide * 9000,) * 9)  # fmt: skip
    return r, bounded_fields(head), bounded_fields(head)


def _fast_lane_worst(i: int) -> tuple[Record, Any, tuple[tuple[str, str], ...]]:
    """A 16 KiB head as the fast lane keeps it (by reference, nothing trimmed): a long
    path, origin and preflight note, about 100 fields; the response at its bound."""
    tag = str(i)  # no two entries share a string
    path = "/" + "p" * 6000 + tag
    origin = "http://" + "o" * 2000 + tag
    fields = [("Host", "h" + tag), ("Origin", origin)]
    fields += [(f"X-F{n}-{tag}", tag + "v" * 70) for n in range(97)]
    r = Record("OPTIONS", path, 204, origin, "preflight-ok", "r", 1.0,
               note="for GET with " + "x" * 6000 + tag)  # fmt: skip
    response = bounded_fields([(f"Y{n}", tag + "w" * 4000) for n in range(10)])
    return r, CIMultiDictProxy(CIMultiDict(fields)), response


WORST_BYTES_PER_EXCHANGE = 72 * 1024  # README "Limits": the inspector's worst case
TYPICAL_BYTES_PER_EXCHANGE = 3 * 1024


@pytest.mark.parametrize("wide", ["a", "é", "😀", "fast lane"])
def test_memory_per_kept_exchange_within_the_stated_bound(wide: str) -> None:
    keep = 40
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ring = Ring(keep)
    for i in range(keep + 5):  # the raw inputs go: only what the ring holds remains
        r, request, response = _fast_lane_worst(i) if wide == "fast lane" else _worst_entry(i, wide)
        ring.add(r, request, response, 0.0)
    del r, request, response
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(ring.entries) == keep
    assert held / keep <= WORST_BYTES_PER_EXCHANGE, held / keep


def test_memory_of_a_typical_exchange() -> None:
    """What a browser's GET costs when kept: its record; the headers are the fast lane's
    own (shared) objects, so only the references count."""
    keep = 200
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ring = Ring(keep)
    for i in range(keep):
        r = Record("GET", f"/api/items/{i}?page=2", 200, "http://localhost:3000", "allowed",
                   "frontend", 3.2)  # fmt: skip
        ring.add(r, HEADERS, HEADERS, 0.0)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert held / keep <= TYPICAL_BYTES_PER_EXCHANGE, held / keep
    assert sys.getsizeof(ring.entries[0]) < 200
