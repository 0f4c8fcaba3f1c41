"""Upstream error diagnosis: compressed captures, Werkzeug's debugger and generic pages
(frozen and served live by a real Flask app), JSON and text bodies, log-safe lines."""

from __future__ import annotations

import gzip
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask, abort
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.debug import DebuggedApplication
from werkzeug.serving import make_server

from proxy.diagnosis.error_body import (
    MAX_CAPTURE,
    NOT_DEBUG_HINT,
    BodyDiagnosis,
    diagnose_body,
    one_line,
)
from tests.support import FIXTURES

HTML = "text/html; charset=utf-8"
PAGE = (FIXTURES / "werkzeug-3-nameerror.html").read_bytes()
PAGE_SUMMARY = "NameError: name 'x' is not defined (app.py:12 in hello)"
GENERIC = (FIXTURES / "flask-generic-500.html").read_bytes()


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


class TestOneLine:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("plain", "plain"),
            ("  a \t\n b  ", "a b"),
            ("ok\r\n127.0.0.1 GET /admin 200", "ok 127.0.0.1 GET /admin 200"),  # forged line
            ("a\u2028b\u2029c\x85d", "a b c d"),
            ("evil\x1b[31mred\x1b[0m", "evil[31mred[0m"),  # no terminal escape survives
            ("nul\x00bell\x07del\x7f", "nulbelldel"),
            ("bidi \u202egnp.exe", "bidi gnp.exe"),
            ("unassigned \ud7fc \U000e0001tag", "unassigned tag"),
            ("nbsp\xa0and\u3000ideographic", "nbsp and ideographic"),
            ("lone \ud800 surrogate", "lone surrogate"),
            ("ünïcødé ✓", "ünïcødé ✓"),
        ],
    )
    def test_sanitizes(self, text: str, expected: str) -> None:
        assert one_line(text) == expected

    def test_caps_length(self) -> None:
        assert one_line("x" * 500) == "x" * 297 + "..."
        assert one_line("x" * 50, 10) == "x" * 7 + "..."
        assert one_line("abcdef", 2) == "ab"

    @given(st.text(), st.integers(min_value=0, max_value=400))
    def test_always_one_short_printable_line(self, text: str, limit: int) -> None:
        line = one_line(text, limit)
        assert len(line) <= limit
        assert line.isprintable()


class TestDebuggerPages:
    def test_plain(self) -> None:
        assert diagnose_body(500, HTML, None, PAGE) == BodyDiagnosis(
            "werkzeug-debugger", PAGE_SUMMARY, None
        )

    @pytest.mark.parametrize(
        ("encoding", "pack"),
        [
            ("gzip", gzip.compress),
            ("x-gzip", gzip.compress),
            ("deflate", zlib.compress),  # RFC 9110: deflate means the zlib format
            ("deflate", raw_deflate),  # what some servers send instead
            ("GZIP", gzip.compress),
            ("identity", lambda b: b),
        ],
    )
    def test_compressed(self, encoding: str, pack: object) -> None:
        assert callable(pack)
        found = diagnose_body(500, HTML, encoding, pack(PAGE))
        assert found is not None
        assert found.summary == PAGE_SUMMARY

    def test_truncated_gzip_capture(self) -> None:
        """A capture cut mid-stream still decodes its prefix: the title is in it."""
        found = diagnose_body(500, HTML, "gzip", gzip.compress(PAGE)[:700])
        assert found == BodyDiagnosis("werkzeug-debugger", "NameError: name 'x' is not defined")

    def test_without_content_type(self) -> None:
        found = diagnose_body(500, None, None, PAGE)
        assert found is not None
        assert found.kind == "werkzeug-debugger"

    def test_summary_is_sanitized(self) -> None:
        page = b"<title>E: a\x1b[2Jb\r\nINFO forged // Werkzeug Debugger</title>"
        found = diagnose_body(500, HTML, None, page)
        assert found is not None
        assert found.summary == "E: a[2Jb"

    def test_success_is_not_diagnosed(self) -> None:
        assert diagnose_body(200, HTML, None, PAGE) is None


class TestGenericPages:
    def test_flask_not_in_debug_mode(self) -> None:
        found = diagnose_body(500, HTML, None, GENERIC)
        assert found is not None
        assert found.kind == "werkzeug-generic"
        assert found.summary.startswith(
            "500 Internal Server Error: The server encountered an internal error"
        )
        assert found.hint == NOT_DEBUG_HINT

    def test_gzipped(self) -> None:
        found = diagnose_body(500, HTML, "gzip", gzip.compress(GENERIC))
        assert found is not None
        assert found.hint == NOT_DEBUG_HINT

    def test_werkzeug_2_0_generic_page(self) -> None:
        page = (
            b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
            b"<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
            b"<p>The server encountered an internal error and was unable to complete your "
            b"request.</p>\n"
        )
        found = diagnose_body(500, HTML, None, page)
        assert found is not None
        assert found.hint == NOT_DEBUG_HINT

    def test_deliberate_abort_gets_no_console_hint(self) -> None:
        """abort(503) or abort(500, "...") logs no traceback: do not send people looking."""
        app = Flask(__name__)
        app.add_url_rule("/503", "a", lambda: abort(503))
        app.add_url_rule("/500", "b", lambda: abort(500, "quota exceeded"))
        client = app.test_client()
        unavailable = diagnose_body(503, HTML, None, client.get("/503").data)
        assert unavailable is not None
        assert unavailable.kind == "werkzeug-generic"
        assert unavailable.summary.startswith("503 Service Unavailable: The server is")
        assert unavailable.hint is None
        assert diagnose_body(500, HTML, None, client.get("/500").data) == BodyDiagnosis(
            "werkzeug-generic", "500 Internal Server Error: quota exceeded", None
        )

    @pytest.mark.parametrize(
        ("page", "summary"),
        [
            (
                b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>",
                "502 Bad Gateway",
            ),
            (b"<html><head><title>NameError at /api/</title>", "NameError at /api/"),
        ],
    )
    def test_other_pages_by_title(self, page: bytes, summary: str) -> None:
        assert diagnose_body(502, HTML, None, page) == BodyDiagnosis("unknown", summary, None)


class TestOtherBodies:
    @pytest.mark.parametrize(
        ("ctype", "body", "kind", "summary"),
        [
            (
                "application/json",
                b'{"error": "user 7 not found"}',
                "json",
                "error: user 7 not found",
            ),
            ("application/json", b'{"message": "db down", "code": 7}', "json", "message: db down"),
            (
                "application/json",
                b'{"error": {"message": "nested", "code": 1}}',
                "json",
                "error: nested",
            ),
            ("application/problem+json", b'{"title": "Bad", "detail": "no"}', "json", "detail: no"),
            (None, b' {"detail": "no type"}', "json", "detail: no type"),
            (
                "text/plain; charset=utf-8",
                b"\n\ndatabase is locked\nmore",
                "text",
                "database is locked",
            ),
            ("text/plain", b"evil\x1b[31m line\r\nforged", "text", "evil[31m line"),
            ("text/plain", b"caf\xc3\xa9 \xff", "text", "café \ufffd"),
        ],
    )
    def test_useful(self, ctype: str | None, body: bytes, kind: str, summary: str) -> None:
        assert diagnose_body(500, ctype, None, body) == BodyDiagnosis(kind, summary, None)

    @pytest.mark.parametrize(
        ("ctype", "body"),
        [
            ("application/octet-stream", b"\x00\x01"),
            ("application/json", b"[1]"),
            ("application/json", b'{"error": 7, "message": ""}'),
            ("application/json", b'{"error": "trunc'),
            ("application/json", b"[" * 100_000),  # RecursionError inside json
            ("text/html", b"<p>hi</p>"),
            ("text/plain", b" \n\t "),
            ("text/css", b"body{}"),
            (None, b"\x00\x01"),
        ],
    )
    def test_nothing_useful(self, ctype: str | None, body: bytes) -> None:
        assert diagnose_body(500, ctype, None, body) is None

    def test_empty_body(self) -> None:
        assert diagnose_body(500, HTML, "gzip", b"") is None


class TestUndecodable:
    @pytest.mark.parametrize(
        ("encoding", "summary"),
        [
            ("br", "error body is br-compressed; not decoded"),
            ("gzip, zstd", "error body is zstd-compressed; not decoded"),
            ("X\x1b[2J", "error body is x[2j-compressed; not decoded"),
        ],
    )
    def test_unsupported(self, encoding: str, summary: str) -> None:
        assert diagnose_body(500, HTML, encoding, b"data") == BodyDiagnosis("unknown", summary)

    def test_corrupt_gzip(self) -> None:
        found = diagnose_body(500, HTML, "gzip", b"\x1f\x8b\x08\x00garbage" * 10)
        assert found == BodyDiagnosis("unknown", "error body is not valid gzip")

    def test_decompression_bomb_is_bounded(self) -> None:
        bomb = gzip.compress(b"\0" * (64 * MAX_CAPTURE), compresslevel=9)
        assert len(bomb) < MAX_CAPTURE
        assert diagnose_body(500, "text/plain", "gzip", bomb) is None


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=100, max_value=599),
    st.sampled_from([None, "", "text/html", "application/json", "text/plain", "a/b+json"]),
    st.sampled_from([None, "gzip", "deflate", "br", "gzip, gzip", ","]),
    st.binary(max_size=3000),
)
def test_random_bytes_never_raise(
    status: int, ctype: str | None, encoding: str | None, body: bytes
) -> None:
    for data in (body, b"<title>" + body, b"\x1f\x8b" + body, gzip.compress(body)):
        found = diagnose_body(status, ctype, encoding, data)
        if found is not None:
            assert found.summary == one_line(found.summary)


def hello() -> str:
    return "hello " + undefined_name  # type: ignore[name-defined,no-any-return]  # noqa: F821


HELLO_RAISES = hello.__code__.co_firstlineno + 1


@contextmanager
def flask_server(debug: bool) -> Iterator[str]:
    """A real Flask app under Werkzeug's real server, in a thread, on a free port."""
    app = Flask(__name__)
    app.debug = debug  # debug: Flask re-raises so DebuggedApplication renders the page
    app.logger.disabled = True  # non-debug Flask logs the traceback; keep output quiet
    app.add_url_rule("/hello", view_func=hello)
    server = make_server("127.0.0.1", 0, DebuggedApplication(app, evalex=False) if debug else app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def fetch_error(url: str) -> tuple[int, str | None, bytes]:
    with pytest.raises(urllib.error.HTTPError) as info, urllib.request.urlopen(url, timeout=10):
        pass
    with info.value as error:
        return error.code, error.headers.get("Content-Type"), error.read()


class TestLiveFlask:
    def test_debug_mode_page(self) -> None:
        with flask_server(debug=True) as url:
            status, ctype, body = fetch_error(url + "/hello")
        assert (status, ctype) == (500, HTML)
        found = diagnose_body(status, ctype, None, body)
        assert found == BodyDiagnosis(
            "werkzeug-debugger",
            "NameError: name 'undefined_name' is not defined "
            f"(test_error_body.py:{HELLO_RAISES} in hello)",
        )

    def test_debug_mode_page_truncated_to_4_kib(self) -> None:
        """A small capture of the real page: the exception line, and no Flask frame."""
        with flask_server(debug=True) as url:
            status, ctype, body = fetch_error(url + "/hello")
        found = diagnose_body(status, ctype, None, body[:4096])
        assert found is not None
        assert found.summary == "NameError: name 'undefined_name' is not defined"

    def test_without_debug_mode(self) -> None:
        with flask_server(debug=False) as url:
            status, ctype, body = fetch_error(url + "/hello")
        found = diagnose_body(status, ctype, None, body)
        assert found is not None
        assert found.kind == "werkzeug-generic"
        assert found.hint == NOT_DEBUG_HINT
