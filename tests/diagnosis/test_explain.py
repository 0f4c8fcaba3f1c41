"""explain(): what the forwarder saw becomes what the log record gets (pure)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

from proxy.diagnosis.explain import (
    MAX_COOKIES_KEPT,
    MAX_KEY_CHARS,
    MAX_PAGES,
    MAX_REMEMBERED,
    NOTHING,
    ONCE_BYTES,
    REFUSED_COOKIES_BYTES,
    Explainer,
    Explanation,
    Once,
    RefusedCookie,
    RefusedCookies,
    Seen,
)
from proxy.log.record import Record
from proxy.policy.cors import CorsRule

ORIGIN = "http://localhost:3000"
PROXY = "http://localhost:8080"
RULE = CorsRule("frontend", origins=(ORIGIN,), allow_credentials=True)
ACAO = ("Access-Control-Allow-Origin", ORIGIN)


def seen(**kw: Any) -> Seen:
    base: dict[str, Any] = {
        "method": "GET",
        "url": PROXY + "/api/x",
        "origin": ORIGIN,
        "client_origin": PROXY,
        "request_headers": {},
        "rule": RULE,
        "allowed": True,
        "origin_allowed": True,
        "fix": "",
        "status": 200,
        "response_headers": [ACAO],
    }
    return Seen(**{**base, **kw})


def record() -> Record:
    return Record("GET", "/api/x", 200, ORIGIN, "allowed", "frontend", 1.0)


def test_the_common_exchange_has_nothing_to_say() -> None:
    assert Explainer().explain(seen()) is NOTHING


def test_notes_accumulate_in_order() -> None:
    e = Explainer().explain(
        seen(
            status=500,
            upstream_cors=[("Access-Control-Allow-Headers", "*")],
            body=b"oops",
            retried=True,
        )
    )
    assert [n.split(" ", 3)[:3] for n in e.notes] == [
        ["upstream", "also", "sends"],
        ["served", "after", "waiting"],
        ["without", "cors-proxy", "the"],
    ]
    rec = record()
    rec.add_note("first")
    e.apply(rec)
    assert rec.note.split(" | ")[0] == "first"
    assert rec.note.count(" | ") == 3
    assert "Access-Control-Allow-Headers: '*' removed" in rec.text()
    assert "would have reported a CORS error" in rec.text()


def test_a_conflict_is_said_once_per_value() -> None:
    explainer = Explainer()
    mine = [("Access-Control-Allow-Origin", "*")]
    first = explainer.explain(seen(upstream_cors=mine))
    assert first.notes
    assert "'*' replaced with 'http://localhost:3000'" in first.notes[0]
    assert explainer.explain(seen(upstream_cors=mine)).notes == ()
    other = explainer.explain(seen(upstream_cors=[("Access-Control-Allow-Origin", "x")]))
    assert other.notes


def test_upstream_values_are_shortened_in_the_note() -> None:
    e = Explainer().explain(seen(upstream_cors=[("Access-Control-Allow-Headers", "x" * 5000)]))
    assert len(e.notes[0]) < 400


def test_cookie_problems_said_once() -> None:
    explainer = Explainer()
    page = "http://127.0.0.1:3000"  # another site than the proxy's localhost
    cookie = ["session=1; Path=/"]
    rule = CorsRule("any", origins=(page,), allow_credentials=True)
    first = explainer.explain(seen(origin=page, rule=rule, cookies=cookie))
    assert any("third-party cookie" in h for h in first.hints), first
    assert explainer.explain(seen(origin=page, rule=rule, cookies=cookie)).hints == ()


def test_refused_origin_gets_the_browsers_words_and_the_fix() -> None:
    e = Explainer().explain(
        seen(
            origin="http://127.0.0.1:3000",
            allowed=False,
            origin_allowed=False,
            fix='add "http://127.0.0.1:3000" to rules[0].origins',
            response_headers=[],
        )
    )
    assert e.verdict == "blocked"
    assert "No 'Access-Control-Allow-Origin' header" in e.console
    assert e.hints
    assert "different host" in e.hints[0]
    assert e.fix.startswith("add ")


def test_once_is_bounded_and_forgets_the_oldest() -> None:
    once = Once(limit=3)
    assert all(once.first(k) for k in ("a", "b", "c", "d"))
    assert len(once) == 3
    assert once.first("a")  # forgotten, so said again
    assert not once.first("d")


def test_once_keeps_long_keys_as_digests() -> None:
    once = Once(limit=10)
    long = "o" * (MAX_KEY_CHARS * 100)
    assert once.first(("cookie", long))
    assert not once.first(("cookie", long))
    assert once.first(("cookie", long + "!"))
    assert once.first(("o" * MAX_KEY_CHARS, "x"))  # short parts, too long together
    assert once.first(("o" * MAX_KEY_CHARS, "y"))
    assert not once.first(("o" * MAX_KEY_CHARS, "y"))
    long_a, long_b = ("o" * MAX_KEY_CHARS + "ab", "c"), ("o" * MAX_KEY_CHARS + "a", "bc")
    assert once.first(long_a)
    assert once.first(long_b)  # the same characters, other parts: another digest
    assert once.first(("ab", "c"))
    assert all(len(key) <= MAX_KEY_CHARS for key in once._keys if isinstance(key, str))
    assert ("ab", "c") in once._keys  # a short key is kept as it is


WIDE = "\U0001f600"  # CPython stores a string with it in 4 bytes a character


def held(fill: Callable[[], object]) -> int:
    """The bytes still allocated after ``fill()``, kept alive by what it returns."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept is not None
    return grown


def test_a_table_of_things_said_holds_at_most_once_bytes() -> None:
    """Keys a client chooses (a path, Origin, Host) as long and wide as they come."""

    def fill() -> Once:
        once = Once()
        for n in range(4 * MAX_REMEMBERED):
            once.first((f"{n}{WIDE * 5000}", 500))  # kept as a digest
        for n in range(4 * MAX_REMEMBERED):
            once.first((f"{n}{WIDE * 120}", WIDE * (MAX_KEY_CHARS - 130)))  # just fits
        assert len(once) == MAX_REMEMBERED
        return once

    assert held(fill) <= ONCE_BYTES


def test_refused_cookies_hold_at_most_their_bytes() -> None:
    def fill() -> RefusedCookies:
        cookies = RefusedCookies()
        why = RefusedCookie(WIDE * 200, "did not store it", WIDE * 300)
        for n in range(2 * MAX_PAGES):
            pair = (f"http://{n}{'p' * 5000}.test", WIDE * 10_000)
            for name in range(2 * MAX_COOKIES_KEPT):
                # distinct strings, as each response's Set-Cookie parses to
                reason = RefusedCookie(why.set_by + str(n), why.fate, why.why + str(name))
                cookies.remember(pair, f"{name}{WIDE * 1000}", reason)
        return cookies

    assert held(fill) <= REFUSED_COOKIES_BYTES


def test_hostile_values_cannot_grow_the_memory() -> None:
    explainer = Explainer()
    for n in range(2000):
        page = f"http://h{n}.test"
        rule = CorsRule("any", origins=(page,), allow_credentials=True)
        explainer.explain(seen(origin=page, rule=rule, cookies=["a=1; SameSite=None"]))
        explainer.explain(seen(upstream_cors=[("Access-Control-Allow-Origin", f"v{n}")]))
    assert len(explainer.cookies_said) <= explainer.cookies_said.limit
    assert len(explainer.conflicts_said) <= explainer.conflicts_said.limit


def error(
    explainer: Explainer, path: str = "/api/x", status: int = 500, body: bytes = b"x"
) -> Explanation:
    return explainer.explain(seen(url=PROXY + path, status=status, body=body))


def test_the_long_note_in_full_once_per_path_and_status() -> None:
    explainer = Explainer()
    full = "without cors-proxy the browser would have reported a CORS error"
    short = "without cors-proxy: a CORS error, not this 500"
    assert error(explainer).notes[0].startswith(full)
    assert error(explainer, "/api/x?poll=2").notes == (short,)  # the query does not count
    assert error(explainer, "/api/y").notes[0].startswith(full)
    assert error(explainer, "/api/x", 502).notes[0].startswith(full)
    assert error(explainer).notes == (short,)


def test_a_repeated_diagnosis_is_summarised_until_another_one() -> None:
    explainer = Explainer()
    page = b"<title>ZeroDivisionError: division by zero // Werkzeug Debugger</title>"
    other = b"<title>KeyError: 'x' // Werkzeug Debugger</title>"
    first = error(explainer, body=page).diagnosis
    assert first.startswith("ZeroDivisionError: division by zero")
    assert error(explainer, "/api/y", body=page).diagnosis == (
        "again: ZeroDivisionError (2nd time in a row; the first of these lines has the details)"
    )
    assert "3rd time in a row" in error(explainer, body=page).diagnosis
    assert error(explainer, body=other).diagnosis.startswith("KeyError: 'x'")
    assert error(explainer, body=page).diagnosis == first


def test_ordinals() -> None:
    from proxy.diagnosis.explain import _ordinal

    assert [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th",
    ]  # fmt: skip


def test_a_refused_cookie_is_named_when_a_later_401_lacks_it() -> None:
    explainer = Explainer()
    page = "http://127.0.0.1:3000"  # another site than the proxy's localhost
    rule = CorsRule("any", origins=(page,), allow_credentials=True)
    login = explainer.explain(
        seen(url=PROXY + "/login?next=/", origin=page, rule=rule, cookies=["sid=1; Path=/"])
    )
    assert any("cookie 'sid' not stored" in h for h in login.hints)
    denied = explainer.explain(seen(origin=page, rule=rule, status=401, body=b""))
    (hint,) = [h for h in denied.hints if "that cookie's doing" in h]
    assert hint.startswith(
        "this 401 may be that cookie's doing: the request carries no cookie 'sid', and the"
        " browser did not store it when the answer to /login set it (the page"
    )
    sent = explainer.explain(seen(origin=page, rule=rule, status=403, sent_cookies="sid=1"))
    assert not [h for h in sent.hints if "that cookie's doing" in h]
    elsewhere = explainer.explain(seen(origin="http://localhost:3000", status=401, body=b""))
    assert not [h for h in elsewhere.hints if "that cookie's doing" in h]  # another page


def test_a_cookie_set_again_and_kept_is_forgotten() -> None:
    explainer = Explainer()
    bad = CorsRule("bad", origins=(ORIGIN,), allow_credentials=False)
    explainer.explain(seen(rule=bad, cookies=["sid=1"]))
    assert explainer.explain(seen(status=401)).hints  # not allowed with credentials
    explainer.explain(seen(cookies=["sid=2; Path=/"]))  # same site, credentials: kept
    assert not explainer.explain(seen(status=401)).hints


def test_refused_cookies_are_bounded() -> None:
    cookies = RefusedCookies(limit=3)
    gone = RefusedCookie("/login", "did not store it", "why")
    for n in range(10):
        for name in range(MAX_COOKIES_KEPT + 5):
            cookies.remember((f"http://p{n}.test", PROXY), f"c{name}", gone)
    assert len(cookies) == 3
    assert len(cookies.missing(("http://p9.test", PROXY), "")) == MAX_COOKIES_KEPT
    assert cookies.missing(("http://p0.test", PROXY), "") == []  # the oldest pair forgotten
