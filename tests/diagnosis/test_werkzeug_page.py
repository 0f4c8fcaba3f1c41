"""The Werkzeug debugger page parser: pages rendered now by the installed Werkzeug,
frozen pages from other versions and truncated captures, and garbage that must never
crash it."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.debug.tbtools import render_console_html

from proxy.diagnosis.werkzeug_page import Frame, Trace, parse_debugger_page, summarize
from tests.support import FIXTURES
from tests.support.make_fixtures import HELLO_LINE, OUTER_LINE, raising, render

APP = "/srv/app/app.py"
LIB = "/venv/lib/python3.11/site-packages/jinja2/environment.py"


def trace_of(page: str | bytes) -> Trace:
    trace = parse_debugger_page(page.encode() if isinstance(page, str) else page)
    assert trace is not None
    return trace


def summary_of(page: str | bytes) -> str:
    return summarize(trace_of(page))


def without_comment(page: str) -> str:
    """The page as a capture that stopped before the plain-text comment."""
    return page[: page.rfind("<!--")]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# (source run as /srv/app/app.py, call, expected summary)
RENDERED = {
    "name-error": (
        "def hello():\n    return x\n",
        "hello()",
        "NameError: name 'x' is not defined (app.py:2 in hello)",
    ),
    "raise-from": (
        "def inner():\n    raise ValueError('bad value')\n\n"
        "def outer():\n    try:\n        inner()\n    except ValueError as e:\n"
        "        raise KeyError('missing') from e\n",
        "outer()",
        "KeyError: 'missing' (app.py:8 in outer)",
    ),
    "during-handling": (
        "def f():\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        {}['k']\n",
        "f()",
        "KeyError: 'k' (app.py:5 in f)",
    ),
    "note": (
        "def f():\n    e = ValueError('v')\n    e.add_note('while loading config')\n    raise e\n",
        "f()",
        "ValueError: v (app.py:4 in f)",
    ),
    "syntax-error": (
        "def f():\n    compile('x = (', '/srv/app/broken.py', 'exec')\n",
        "f()",
        "SyntaxError: '(' was never closed (broken.py:1)",
    ),
    "double-dash-kept": (
        "def f():\n    raise ValueError('use --force -- or not')\n",
        "f()",
        "ValueError: use --force -- or not (app.py:2 in f)",
    ),
    "exception-group": (
        "def g():\n    raise ExceptionGroup('eg', [ValueError(1), TypeError('t')])\n",
        "g()",
        "ExceptionGroup: eg (2 sub-exceptions) (app.py:2 in g)",
    ),
    "forged-frames-in-message": (
        "def f():\n    raise ValueError('ok\\nTraceback (most recent call last):\\n"
        '  File "/evil/x.py", line 9, in pwn\\n-->\')\n',
        "f()",
        "ValueError: ok (app.py:2 in f)",
    ),
}


class TestRenderedNow:
    """Pages from the installed Werkzeug for real exceptions."""

    @pytest.mark.parametrize("case", RENDERED.values(), ids=RENDERED.keys())
    def test_summary(self, case: tuple[str, str, str]) -> None:
        """The comment gives the final exception and its innermost app frame."""
        source, call, expected = case
        assert summary_of(render(raising(source, APP, call))) == expected

    @pytest.mark.parametrize("case", RENDERED.values(), ids=RENDERED.keys())
    def test_html_fallback_agrees(self, case: tuple[str, str, str]) -> None:
        """Without the comment, the HTML frame list gives the same summary."""
        source, call, expected = case
        assert summary_of(without_comment(render(raising(source, APP, call)))) == expected

    def test_chained_keeps_only_final_frames(self) -> None:
        """Frames of the cause are dropped; the exception line is the final one."""
        source, call, _ = RENDERED["raise-from"]
        trace = trace_of(render(raising(source, APP, call)))
        assert trace.exception == "KeyError: 'missing'"
        assert [(f.lineno, f.function) for f in trace.frames][-1] == (8, "outer")
        assert all(f.function != "inner" for f in trace.frames)

    def test_note_is_not_part_of_the_exception_line(self) -> None:
        source, call, _ = RENDERED["note"]
        assert trace_of(render(raising(source, APP, call))).exception == "ValueError: v"

    def test_syntax_error_location_has_no_function(self) -> None:
        source, call, _ = RENDERED["syntax-error"]
        trace = trace_of(render(raising(source, APP, call)))
        assert trace.frames[-1] == Frame("/srv/app/broken.py", 1, None, False)
        assert trace.exception == "SyntaxError: '(' was never closed"

    def test_library_frame_is_named_after_the_app_frame(self) -> None:
        """A site-packages frame raising is added after the app frame that called it."""
        namespace: dict[str, object] = {}
        exec(
            compile("def render(t):\n    raise TypeError('bad template')\n", LIB, "exec"), namespace
        )
        exec(compile("def view():\n    return render('x')\n", APP, "exec"), namespace)
        with pytest.raises(TypeError) as info:
            exec("view()", namespace)
        exc = info.value
        page = render(exc)
        trace = trace_of(page)
        assert [f.library for f in trace.frames][-2:] == [False, True]
        expected = "TypeError: bad template (app.py:2 in view; raised in jinja2/environment.py:2)"
        assert summary_of(page) == expected
        assert summary_of(without_comment(page)) == expected

    def test_standard_library_frame(self) -> None:
        """The stdlib counts as library code; its path is shown from the package on."""
        exc = raising("import json\ndef f():\n    return json.loads('{')\n", APP, "f()")
        summary = summary_of(render(exc))
        assert summary.startswith("json.decoder.JSONDecodeError: Expecting property name")
        assert "(app.py:3 in f; raised in json/decoder.py:" in summary

    def test_only_library_frames(self) -> None:
        """With no app frame the library frame is labelled, never passed off as the app's."""
        exc = raising("def wsgi_app():\n    raise RuntimeError('boom')\n", LIB, "wsgi_app()")
        trace = trace_of(render(exc))
        frames = tuple(f for f in trace.frames if f.library)  # drop the exec() <string> frame
        assert summarize(Trace(trace.exception, frames)) == (
            "RuntimeError: boom (raised in jinja2/environment.py:2 in wsgi_app)"
        )

    def test_console_page_is_not_an_error(self) -> None:
        assert parse_debugger_page(render_console_html("s", False).encode()) is None


class TestFrozenFixtures:
    """Committed pages (``python -m tests.support.make_fixtures`` regenerates them)."""

    def test_werkzeug_3_name_error(self) -> None:
        page = fixture("werkzeug-3-nameerror.html")
        trace = trace_of(page)
        assert (
            summarize(trace) == f"NameError: name 'x' is not defined (app.py:{HELLO_LINE} in hello)"
        )
        assert trace.frames[0].library  # Flask's own frames come first, marked as library
        assert trace.frames[0].filename.endswith("/site-packages/flask/app.py")
        assert trace.frames[-1] == Frame(APP, HELLO_LINE, "hello", False)
        assert summary_of(without_comment(page)) == summarize(trace)

    def test_werkzeug_3_chained(self) -> None:
        page = fixture("werkzeug-3-chained.html")
        expected = f"ValueError: config incomplete (app.py:{OUTER_LINE} in outer)"
        assert summary_of(page) == expected
        assert summary_of(without_comment(page)) == expected

    def test_truncated_after_4_kib(self) -> None:
        """Only the title survives; a half frame list must not name a Flask frame."""
        page = (FIXTURES / "werkzeug-3-truncated.html").read_bytes()
        assert len(page) == 4096
        assert b'class="frame"' in page  # the list had begun: the trap this guards
        assert summary_of(page) == "NameError: name 'x' is not defined"

    @pytest.mark.parametrize(
        "name", ["werkzeug-3-nameerror.html", "werkzeug-3-chained.html", "werkzeug-2.0.html"]
    )
    def test_every_truncation_is_full_or_bare(self, name: str) -> None:
        """Cut anywhere, a page gives nothing, the bare exception line or the full summary."""
        page = (FIXTURES / name).read_bytes()
        full = summary_of(page)
        bare = trace_of(page).exception
        for cut in range(0, len(page), 41):
            trace = parse_debugger_page(page[:cut])
            assert trace is None or summarize(trace) in (full, bare), cut

    def test_werkzeug_2_0(self) -> None:
        """2.0.x: module-qualified type, favicon comment in <head>, blank source lines."""
        page = fixture("werkzeug-2.0.html")
        assert "<h1>werkzeug.exceptions.BadRequestKeyError</h1>" in page
        assert page.find("<!--") < page.find("</head>")  # the comment rfind must skip
        expected = (
            "werkzeug.exceptions.BadRequestKeyError: 400 Bad Request: The browser (or proxy) "
            "sent a request that this server could not understand. "
            "(views.py:4 in create_user; raised in werkzeug/datastructures.py:377)"
        )
        assert summary_of(page) == expected
        assert summary_of(without_comment(page)) == expected

    def test_generic_page_is_no_debugger_page(self) -> None:
        assert parse_debugger_page((FIXTURES / "flask-generic-500.html").read_bytes()) is None


class TestHandWritten:
    """Layouts the renderers above do not produce."""

    def test_final_exception_without_traceback(self) -> None:
        """A chain whose last exception has no frames: the cause's frames are not used."""
        page = (
            "<title>KeyError: &#39;k&#39; // Werkzeug Debugger</title><!--\n\n"
            "Traceback (most recent call last):\n"
            '  File "/srv/app/app.py", line 3, in f\n'
            "ValueError: v\n\n"
            "During handling of the above exception, another exception occurred:\n\n"
            "KeyError: 'k'\n\n-->"
        )
        assert trace_of(page) == Trace("KeyError: 'k'", ())

    def test_title_of_2_1_is_unescaped(self) -> None:
        """2.1-2.3.4 left the title unescaped; unescaping it again is harmless."""
        page = "<title>ValueError: a < b & c // Werkzeug Debugger</title>"
        assert summary_of(page) == "ValueError: a < b & c"

    def test_windows_paths(self) -> None:
        trace = Trace(
            "E: e",
            (
                Frame("C:\\proj\\app.py", 5, "view", False),
                Frame("C:\\proj\\.venv\\Lib\\site-packages\\jinja2\\runtime.py", 9, "f", True),
            ),
        )
        assert summarize(trace) == "E: e (app.py:5 in view; raised in jinja2/runtime.py:9)"

    def test_long_message_keeps_the_location(self) -> None:
        trace = Trace("ValueError: " + "x" * 1000, (Frame("/a/app.py", 1, "f", False),))
        summary = summarize(trace)
        assert len(summary) < 250
        assert summary.endswith("... (app.py:1 in f)")

    @pytest.mark.parametrize(
        "body",
        [b"", b"<html>hello</html>", b'{"error": "x"}', b"\xff\xfe\x00garbage"],
    )
    def test_not_a_debugger_page(self, body: bytes) -> None:
        assert parse_debugger_page(body) is None


class TestHostileInput:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=4000), st.binary(max_size=200))
    def test_garbage_never_raises(self, body: bytes, head: bytes) -> None:
        for page in (
            body,
            b"<title>" + head + b" // Werkzeug Debugger</title>" + body,
            b'<div class="debugger"><div class="traceback"><ul><li><div class="frame">' + body,
            b"// Werkzeug Debugger</title><!--" + head + b"Traceback (most recent call last):"
            b"\n" + body + b"-->",
        ):
            trace = parse_debugger_page(page)
            if trace is not None:
                summarize(trace)

    @given(st.text(max_size=300))
    def test_garbage_text_never_raises(self, text: str) -> None:
        page = f'<title>{text} // Werkzeug Debugger</title><p class="errormsg">{text}</p>'
        trace = trace_of(page + f"<!--\nTraceback (most recent call last):\n{text}\n-->")
        summarize(trace)

    @pytest.mark.parametrize(
        "filler",
        [b"<title>", b"<!--", b"<", b'<div class="frame"><cite>', b'  File "', b"a/" * 3],
    )
    def test_a_mebibyte_of_pathology_never_backtracks(self, filler: bytes) -> None:
        # A guard against catastrophic backtracking (which takes minutes on a mebibyte),
        # not a speed measurement: linear parsing takes well under a second of CPU. CPU
        # time of this process, so a loaded machine does not make it fail.
        body = b'<title>E // Werkzeug Debugger</title><div class="traceback"><ul>' + filler * (
            (1 << 20) // len(filler)
        )
        start = time.process_time()
        parse_debugger_page(body)
        parse_debugger_page(body + b"<!--Traceback (most recent call last):\n" + body + b"-->")
        assert time.process_time() - start < 20
