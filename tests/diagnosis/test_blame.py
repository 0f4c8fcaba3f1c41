"""Joining a dev server's tracebacks to the exchanges that caused them (pure: times are
given, nothing runs)."""

from __future__ import annotations

from proxy.diagnosis.blame import HOLD, QUIET, Blame, merge
from proxy.diagnosis.console import RequestLine, Traced
from proxy.diagnosis.error_body import NOT_DEBUG_HINT
from proxy.diagnosis.werkzeug_page import Trace

BOOM = "ZeroDivisionError: division by zero (app.py:7 in boom)"
KEY = "KeyError: 'k' (app.py:9 in other)"


def traced(summary: str, started: float, **info: object) -> Traced:
    return Traced(Trace(summary.split(" (")[0], ()), summary, started, **info)  # type: ignore[arg-type]


def test_one_exchange_in_flight_gets_the_traceback() -> None:
    b = Blame("flask")
    b.begin(1, "GET", "/api/boom", 0.0)
    b.traceback(traced(BOOM, 0.01), 0.02)  # printed before the response (debug off)
    assert b.end(1, 500, 0.03) is True
    assert b.due(0.03) == [(1, BOOM)]


def test_a_5xx_without_a_traceback_waits_for_a_quiet_console_then_goes() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/abort", 0.0)
    b.output(0.0)
    assert b.end(1, 500, 0.01) is True
    assert b.due(0.02) == []
    assert b.due(0.01 + QUIET) == [(1, "")]


def test_a_traceback_being_read_keeps_the_line_waiting_up_to_hold() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/boom", 0.0)
    b.end(1, 500, 0.0)
    assert b.due(QUIET * 2, reading=True) == []
    assert b.next_check(QUIET * 2) == QUIET * 3  # looked at again soon
    assert b.due(HOLD, reading=True) == [(1, "")]
    assert b.next_check(HOLD) is None


def test_below_500_is_never_held_nor_blamed() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/ok", 0.0)
    b.begin(2, "GET", "/api/boom", 0.0)
    assert b.end(1, 200, 0.01) is False
    b.traceback(traced(BOOM, 0.02), 0.03)  # only /api/boom is left: timing decides
    b.end(2, 500, 0.04)
    assert b.due(0.04) == [(2, BOOM)]


def test_flask_names_the_request_before_its_traceback() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/a", 0.0)
    b.begin(2, "GET", "/api/boom?x=1", 0.0)
    b.begin(3, "POST", "/api/boom", 0.0)
    b.traceback(traced(BOOM, 0.1, method="GET", path="/api/boom"), 0.1)
    for key in (1, 2, 3):
        b.end(key, 500, 0.2)
    found = dict(b.due(0.2 + HOLD))
    assert found == {1: "", 2: BOOM, 3: ""}


def test_the_request_line_after_the_traceback_decides() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/a", 0.0)
    b.begin(2, "GET", "/api/b", 0.0)
    b.traceback(traced(BOOM, 0.1), 0.12)
    b.request_line(RequestLine("GET", "/api/b", 500), 0.13)
    b.traceback(traced(KEY, 0.14), 0.15)
    b.request_line(RequestLine("GET", "/api/a", 500), 0.16)
    b.end(1, 500, 0.17)
    b.end(2, 500, 0.17)
    assert dict(b.due(0.17)) == {1: KEY, 2: BOOM}


def test_the_request_line_just_before_decides_for_werkzeug() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/a", 0.0)
    b.begin(2, "GET", "/api/b", 0.0)
    b.request_line(RequestLine("GET", "/api/a", 500), 0.1)
    b.traceback(traced(BOOM, 0.1, adjacent=RequestLine("GET", "/api/a", 500)), 0.11)
    b.end(1, 500, 0.12)
    assert b.due(0.12) == [(1, BOOM)]


def test_when_it_cannot_be_told_each_line_says_so() -> None:
    b = Blame("flask")
    b.begin(1, "GET", "/api/a", 0.0)
    b.begin(2, "GET", "/api/b", 0.0)
    b.traceback(traced(BOOM, 0.1), 0.1)  # no request line ever comes
    b.end(1, 500, 0.2)
    b.end(2, 500, 0.2)
    assert b.due(0.25) == []
    found = dict(b.due(0.2 + HOLD))
    for key in (1, 2):
        assert "cannot be told" in found[key], found
        assert "2 exchanges were in flight (GET /api/a, GET /api/b)" in found[key]
        assert BOOM in found[key]


def test_identical_requests_are_interchangeable() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/boom", 0.0)
    b.begin(2, "GET", "/api/boom", 0.01)
    b.traceback(traced(BOOM, 0.1), 0.1)
    b.end(1, 500, 0.2)
    b.end(2, 500, 0.2)
    assert dict(b.due(0.2)) == {1: BOOM}
    assert dict(b.due(0.2 + HOLD)) == {2: ""}


def test_exchanges_begun_after_the_traceback_are_not_candidates() -> None:
    b = Blame()
    b.begin(1, "GET", "/api/a", 0.0)
    b.traceback(traced(BOOM, 0.05), 0.1)
    b.begin(2, "GET", "/api/b", 0.06)
    b.end(1, 500, 0.1)
    b.end(2, 500, 0.1)
    assert dict(b.due(0.1)) == {1: BOOM}


def test_a_traceback_for_a_request_that_did_not_use_the_proxy_is_ignored() -> None:
    b = Blame()
    b.traceback(traced(BOOM, 0.0, method="GET", path="/direct"), 0.0)
    b.begin(1, "GET", "/api/a", 0.1)
    b.end(1, 500, 0.2)
    assert b.due(0.2 + HOLD) == [(1, "")]


def test_the_child_exiting_settles_every_exchange_in_flight() -> None:
    b = Blame("flask")
    b.begin(1, "GET", "/api/exit", 0.0)
    b.child_exited("exited with code 3", 0.1)
    assert b.end(1, 502, 0.2) is True
    assert b.due(0.2) == [(1, "flask exited with code 3 during this exchange")]


def test_drain_and_forget() -> None:
    b = Blame()
    b.begin(1, "GET", "/a", 0.0)
    b.begin(2, "GET", "/b", 0.0)
    b.end(1, 500, 0.1)
    b.forget(2)
    assert b.drain() == [(1, "")]


def test_merge_keeps_one_copy_and_replaces_the_generic_hint() -> None:
    generic = f"500 Internal Server Error ({NOT_DEBUG_HINT})"
    assert merge(generic, BOOM) == BOOM
    assert merge("", BOOM) == BOOM
    assert merge(BOOM, BOOM) == BOOM
    assert merge("error: db down", BOOM) == f"error: db down; {BOOM}"
    assert merge(BOOM, "") == BOOM
