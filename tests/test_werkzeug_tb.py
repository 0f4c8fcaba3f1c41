"""The Werkzeug debugger page parser: real pages from the installed Werkzeug, frozen
fixtures from other versions, a live Flask app, and garbage that must never crash it."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.diagnostics import NOT_DEBUG_HINT, diagnose_body
from proxy.werkzeug_tb import parse_debugger_page, summarize
from tests.make_fixtures import CHAINED, raising, render
from tests.upstream_app import Upstream

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def summary_of(page: str | bytes) -> str:
    body = page.encode() if isinstance(page, str) else page
    trace = parse_debugger_page(body)
    assert trace is not None
    return summarize(trace)


class TestRenderedNow:
    def test_plain_name_error(self) -> None:
        exc = raising("def hello():\n    return x\n", "/srv/app/app.py", "hello()")
        assert summary_of(render(exc)) == "NameError: name 'x' is not defined (app.py:2 in hello)"

    def test_chained_from(self) -> None:
        exc = raising(CHAINED, "/srv/app/views.py", "outer()")
        assert summary_of(render(exc)) == "KeyError: 'missing' (views.py:8 in outer)"

    def test_during_handling(self) -> None:
        src = "def f():\n    try:\n        1/0\n    except ZeroDivisionError:\n        {}['k']\n"
        exc = raising(src, "/srv/app/app.py", "f()")
        assert summary_of(render(exc)) == "KeyError: 'k' (app.py:5 in f)"

    def test_note(self) -> None:
        src = "def f():\n    e = ValueError('v')\n    e.add_note('while loading config')\n    raise e\n"
        exc = raising(src, "/srv/app/app.py", "f()")
        assert summary_of(render(exc)) == "ValueError: v (app.py:4 in f)"

    def test_syntax_error(self) -> None:
        exc = raising(
            "def f():\n    compile('x = (', '/srv/app/broken.py', 'exec')\n",
            "/srv/app/app.py",
            "f()",
        )
        s = summary_of(render(exc))
        assert s.startswith("SyntaxError: ")
        assert "broken.py:1" in s

    def test_library_frame_is_named_after_the_app_frame(self) -> None:
        lib = "/venv/lib/python3.11/site-packages/jinja2/environment.py"
        namespace: dict[str, object] = {}
        exec(
            compile("def render(t):\n    raise TypeError('bad template')\n", lib, "exec"), namespace
        )
        exec(compile("def view():\n    return render('x')\n", "/srv/app/app.py", "exec"), namespace)
        with pytest.raises(TypeError) as info:
            exec("view()", namespace)
        assert summary_of(render(info.value)) == (
            "TypeError: bad template (app.py:2 in view; raised in jinja2/environment.py:2)"
        )


class TestFrozenFixtures:
    def test_werkzeug_3(self) -> None:
        page = (FIXTURES / "werkzeug-3-nameerror.html").read_bytes()
        assert summary_of(page) == "NameError: name 'x' is not defined (app.py:13 in hello)"

    def test_werkzeug_3_chained(self) -> None:
        page = (FIXTURES / "werkzeug-3-chained.html").read_bytes()
        assert summary_of(page) == "KeyError: 'missing' (views.py:8 in outer)"

    def test_truncated_capture(self) -> None:
        page = (FIXTURES / "werkzeug-3-truncated.html").read_bytes()
        # 4 KiB still hold the HTML frame list; the title alone survives much less.
        assert summary_of(page) == "NameError: name 'x' is not defined (app.py:13 in hello)"
        assert summary_of(page[:300]) == "NameError: name 'x' is not defined"

    def test_werkzeug_2_0_style(self) -> None:
        page = (FIXTURES / "werkzeug-2.0-style.html").read_bytes()
        assert summary_of(page) == (
            "werkzeug.exceptions.BadRequestKeyError: 400 Bad Request: The browser (or proxy) sent a "
            "request that this server could not understand. (views.py:31 in create_user; raised in "
            "werkzeug/datastructures.py:377)"
        )

    def test_html_fallback_without_the_comment(self) -> None:
        page = (FIXTURES / "werkzeug-2.0-style.html").read_text()
        page = page[: page.rfind("<!--")]
        s = summary_of(page)
        assert s.startswith("werkzeug.exceptions.BadRequestKeyError: 400 Bad Request")
        assert s.endswith("(views.py:31 in create_user; raised in werkzeug/datastructures.py:377)")

    def test_generic_page_says_where_the_traceback_is(self) -> None:
        page = (FIXTURES / "flask-generic-500.html").read_bytes()
        assert parse_debugger_page(page) is None
        d = diagnose_body(500, "text/html; charset=utf-8", None, page)
        assert d is not None
        assert d.kind == "werkzeug-generic"
        assert d.summary.startswith(
            "Internal Server Error: The server encountered an internal error"
        )
        assert d.hint == NOT_DEBUG_HINT


class TestDiagnoseBody:
    def test_gzip_debugger_page(self) -> None:
        page = (FIXTURES / "werkzeug-3-nameerror.html").read_bytes()
        d = diagnose_body(500, "text/html; charset=utf-8", "gzip", gzip.compress(page))
        assert d is not None
        assert d.summary == "NameError: name 'x' is not defined (app.py:13 in hello)"

    def test_truncated_gzip(self) -> None:
        page = (FIXTURES / "werkzeug-3-nameerror.html").read_bytes()
        d = diagnose_body(500, "text/html", "gzip", gzip.compress(page)[:600])
        assert d is not None
        assert d.summary.startswith("NameError: name 'x' is not defined")

    @pytest.mark.parametrize(
        ("ctype", "body", "summary"),
        [
            ("application/json", b'{"error": "user 7 not found"}', "error: user 7 not found"),
            ("application/problem+json", b'{"title": "Bad", "detail": "no"}', "detail: no"),
            ("text/plain", b"database is locked\nmore", "database is locked"),
            ("text/plain", b"evil\x1b[31m line", "evil\\x1b[31m line"),
        ],
    )
    def test_other_bodies(self, ctype: str, body: bytes, summary: str) -> None:
        d = diagnose_body(500, ctype, None, body)
        assert d is not None
        assert d.summary == summary

    @pytest.mark.parametrize(
        ("ctype", "enc", "body"),
        [
            ("application/octet-stream", None, b"\x00\x01"),
            ("text/html", "br", b"xx"),
            ("application/json", None, b"[1]"),
            ("text/html", None, b"<p>hi</p>"),
        ],
    )
    def test_nothing_useful(self, ctype: str, enc: str | None, body: bytes) -> None:
        assert diagnose_body(500, ctype, enc, body) is None

    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(max_size=3000),
        st.sampled_from([None, "text/html", "application/json", "text/plain"]),
        st.sampled_from([None, "gzip", "deflate"]),
    )
    def test_garbage_never_raises(self, body: bytes, ctype: str | None, enc: str | None) -> None:
        diagnose_body(500, ctype, enc, body)
        diagnose_body(500, "text/html", None, b"<title>x // Werkzeug Debugger</title>" + body)
        diagnose_body(
            500, "text/html", None, b"<title>x // Werkzeug Debugger</title><!--" + body + b"-->"
        )


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_live_flask_debug_page(debug_upstream: Upstream) -> None:
    status, body = fetch(debug_upstream.url + "/api/boom")
    assert status == 500
    d = diagnose_body(status, "text/html; charset=utf-8", None, body)
    assert d is not None
    assert d.kind == "werkzeug-debugger"
    assert d.summary.startswith("NameError: name 'undefined_name' is not defined (upstream_app.py:")
    assert d.summary.endswith(" in boom)")


def test_live_flask_without_debug(upstream: Upstream) -> None:
    status, body = fetch(upstream.url + "/api/boom")
    d = diagnose_body(status, "text/html; charset=utf-8", None, body)
    assert d is not None
    assert d.hint == NOT_DEBUG_HINT
