"""Reading a dev server's console: startup lines, request lines, tracebacks (pure).

The fixtures in tests/fixtures/console/ are the servers' real output: Flask 3.1 with
debug off and on, Werkzeug's own "Error on request", uvicorn 0.55, Django 5.2's runserver.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.diagnosis.console import (
    ConsoleReader,
    Reloaded,
    RequestLine,
    Startup,
    Traced,
    plain,
    request_line,
    startup_url,
)
from tests.support import FIXTURES

CONSOLE = FIXTURES / "console"


def read(path: Path) -> list[object]:
    """Every event of a captured console, one line per millisecond, then quiet."""
    reader = ConsoleReader()
    events: list[object] = []
    now = 0.0
    for line in path.read_text().splitlines():
        now += 0.001
        events += reader.feed(plain(line), now)
    events += reader.idle(now + 1.0)
    return events


@pytest.mark.parametrize(
    ("line", "url"),
    [
        (" * Running on http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        (" * Running on https://127.0.0.1:5443", "https://127.0.0.1:5443"),
        ("INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
         "http://127.0.0.1:8000"),
        ("Starting development server at http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("[2026-01-01 10:00:00 +0000] [7] [INFO] Listening at: http://127.0.0.1:8000 (7)",
         "http://127.0.0.1:8000"),
        ("[2026-01-01 10:00:00 +0000] [7] [INFO] Running on http://0.0.0.0:8000 (CTRL + C to quit)",
         "http://127.0.0.1:8000"),
        ("  ➜  Local:   http://localhost:5173/", "http://localhost:5173"),
        ("INFO:     Uvicorn running on http://[::]:8000 (Press CTRL+C to quit)", "http://[::1]:8000"),
        (" * Running on http://[::1]:5000", "http://[::1]:5000"),
    ],
)  # fmt: skip
def test_startup_lines_name_the_address(line: str, url: str) -> None:
    assert startup_url(line) == url


@pytest.mark.parametrize(
    "line",
    [" * Running on all addresses (0.0.0.0)", "Press CTRL+C to quit", " * Debug mode: on", ""],
)
def test_other_lines_are_no_startup_line(line: str) -> None:
    assert startup_url(line) is None


def test_request_lines_of_each_server() -> None:
    assert request_line('127.0.0.1 - - [06/Dec/2026 05:11:19] "GET /api/boom HTTP/1.1" 500 -') == (
        RequestLine("GET", "/api/boom", 500)
    )
    uv = 'INFO:     127.0.0.1:57596 - "GET /boom?x=1 HTTP/1.1" 500 Internal Server Error'
    assert request_line(uv) == RequestLine("GET", "/boom?x=1", 500)
    assert request_line('[05/Dec/2026 23:12:10] "POST /a b HTTP/1.1" 201 54') == (
        RequestLine("POST", "/a b", 201)
    )
    assert request_line("GET /api/boom 500") is None


def test_plain_drops_colours_and_carriage_returns() -> None:
    coloured = '127.0.0.1 - - [x] "\x1b[35m\x1b[1mGET /api/boom HTTP/1.1\x1b[0m" 500 -\r'
    assert plain(coloured) == '127.0.0.1 - - [x] "GET /api/boom HTTP/1.1" 500 -'
    assert plain("progress 10%\rprogress 100%") == "progress 100%"
    assert request_line(plain(coloured)) == RequestLine("GET", "/api/boom", 500)


def test_flask_debug_off_names_the_request_before_the_traceback() -> None:
    events = read(CONSOLE / "flask-debug-off.txt")
    assert isinstance(events[0], Startup)
    traced = [e for e in events if isinstance(e, Traced)]
    assert len(traced) == 1
    t = traced[0]
    assert (t.method, t.path, t.adjacent) == ("GET", "/api/boom", None)
    assert t.summary == "ZeroDivisionError: division by zero (app.py:7 in boom)"
    # the request line after it is an event of its own, after the traceback
    after = events[events.index(t) + 1]
    assert after == RequestLine("GET", "/api/boom", 500)


def test_flask_debug_on_prints_the_request_line_first() -> None:
    events = read(CONSOLE / "flask-debug-on.txt")
    t = next(e for e in events if isinstance(e, Traced))
    assert t.adjacent == RequestLine("GET", "/api/boom", 500)
    assert (t.method, t.path) == (None, None)
    assert t.summary == "ZeroDivisionError: division by zero (app.py:7 in boom)"


def test_werkzeug_error_on_request_keeps_the_last_of_a_chain() -> None:
    t = next(e for e in read(CONSOLE / "werkzeug-error-on-request.txt") if isinstance(e, Traced))
    assert t.adjacent == RequestLine("GET", "/x", 500)
    assert t.summary == "RuntimeError: wrapped (wz.py:6 in app)"


def test_uvicorn() -> None:
    events = read(CONSOLE / "uvicorn.txt")
    assert events[0] == Startup(
        "http://127.0.0.1:43195",
        "INFO: Uvicorn running on http://127.0.0.1:43195 (Press CTRL+C to quit)",
    )
    t = next(e for e in events if isinstance(e, Traced))
    assert t.summary == "KeyError: 'missing' (asgi.py:5 in app)"
    assert t.adjacent is None
    assert RequestLine("GET", "/boom", 500) in events[events.index(t) :]


def test_django_runserver() -> None:
    events = read(CONSOLE / "django-runserver.txt")
    assert events[0] == Startup(
        "http://127.0.0.1:18555", "Starting development server at http://127.0.0.1:18555/"
    )
    t = next(e for e in events if isinstance(e, Traced))
    assert (t.method, t.path) == (None, "/boom")
    assert t.summary == "ZeroDivisionError: division by zero (urls.py:4 in boom)"


def test_exception_group_ends_at_the_next_record() -> None:
    events = read(CONSOLE / "exception-group.txt")
    t = next(e for e in events if isinstance(e, Traced))
    assert t.trace.exception == "ExceptionGroup: many (2 sub-exceptions)"
    assert events[-1] == RequestLine("GET", "/api/group", 500)


def test_a_traceback_ends_after_a_quiet_moment_not_before() -> None:
    reader = ConsoleReader()
    lines = ["Traceback (most recent call last):", '  File "/srv/app.py", line 3, in view',
             "    x()", "ValueError: bad"]  # fmt: skip
    for line in lines:
        assert reader.feed(line, 1.0) == []
    assert reader.busy
    assert reader.idle(1.01) == []  # a chained exception may follow
    # a message's second line and a chain still belong to it
    reader.feed("second line of the message", 1.02)
    reader.feed("", 1.02)
    reader.feed("During handling of the above exception, another exception occurred:", 1.02)
    reader.feed("", 1.02)
    reader.feed("Traceback (most recent call last):", 1.02)
    reader.feed('  File "/srv/app.py", line 9, in handler', 1.02)
    reader.feed("KeyError: 'k'", 1.03)
    (t,) = reader.idle(1.2)
    assert isinstance(t, Traced)
    assert t.summary == "KeyError: 'k' (app.py:9 in handler)"
    assert not reader.busy


def test_a_cut_off_traceback_is_read_after_a_longer_silence() -> None:
    reader = ConsoleReader()
    reader.feed("Traceback (most recent call last):", 0.0)
    reader.feed('  File "/srv/app.py", line 3, in view', 0.0)
    assert reader.idle(0.5) == []
    assert reader.idle(1.5) == []  # no exception line: nothing worth reporting
    assert not reader.busy


def test_reloads_are_counted_and_the_new_address_is_read_again() -> None:
    reader = ConsoleReader()
    assert isinstance(reader.feed(" * Running on http://127.0.0.1:5000", 0)[0], Startup)
    assert reader.feed(" * Running on http://192.168.1.5:5000", 0) == []
    (r,) = reader.feed(" * Detected change in '/srv/app.py', reloading", 1)
    assert isinstance(r, Reloaded)
    assert isinstance(reader.feed(" * Running on http://127.0.0.1:5000", 2)[0], Startup)
    assert isinstance(
        reader.feed("WARNING:  WatchFiles detected changes in 'main.py'. Reloading...", 3)[0],
        Reloaded,
    )


def test_stdout_lines_are_not_read_for_tracebacks() -> None:
    reader = ConsoleReader()
    assert reader.feed("Traceback (most recent call last):", 0, traceback=False) == []
    assert not reader.busy
    uv = 'INFO:     127.0.0.1:1 - "GET /boom HTTP/1.1" 500 Internal Server Error'
    assert reader.feed(uv, 0, traceback=False) == [RequestLine("GET", "/boom", 500)]


def test_last_words() -> None:
    reader = ConsoleReader()
    for line in (CONSOLE / "flask-debug-off.txt").read_text().splitlines()[:4]:
        reader.feed(line, 0)
    assert reader.last_words() == ""  # "Running on ...": no reason worth repeating
    for line in ["Traceback (most recent call last):", '  File "app.py", line 1, in <module>',
                 "ModuleNotFoundError: No module named 'flask_sqlalchemy'"]:  # fmt: skip
        reader.feed(line, 0)
    assert reader.last_words() == "ModuleNotFoundError: No module named 'flask_sqlalchemy'"
    other = ConsoleReader()
    other.feed('ERROR:    Error loading ASGI app. Could not import module "main".', 0)
    assert other.last_words() == 'ERROR: Error loading ASGI app. Could not import module "main".'
