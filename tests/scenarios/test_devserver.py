"""``cors-proxy ... -- COMMAND``: a real Flask dev server as the proxy's child, real
signals, real process groups (issue 18). Each test checks that nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tests.support import ORIGIN
from tests.support.cli import get, proxy_command
from tests.support.devserver import (
    Supervised,
    app_copy,
    gone,
    group_members,
    ignores,
    line_of,
    watchdogs_of,
)

PY = sys.executable


def started(s: Supervised) -> int:
    """The child's pid (its process group's id too), from the health endpoint."""
    pid = s.health()["devserver"]["pid"]
    assert isinstance(pid, int)
    return pid


def test_debug_off_the_exception_and_the_view_on_the_exchange_line(tmp_path: Path) -> None:
    """The issue's "done when": `cors-proxy --origin http://localhost:5173 -- python app.py`."""
    app = app_copy(tmp_path)
    # START_DELAY: the first request arrives before Flask listens and is held.
    s = Supervised(
        "--origin", "http://localhost:5173",
        command=[PY, "app.py"], cwd=tmp_path, env={"START_DELAY": "0.5"},
    )  # fmt: skip
    try:
        assert s.url.startswith("http://127.0.0.1:")
        status, headers, _ = get(s.url + "/api/ok", {"Origin": "http://localhost:5173"})
        assert status == 200  # held until the dev server listened, then served
        assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        assert get(s.url + "/api/boom", {"Origin": "http://localhost:5173"})[0] == 500
        line = s.exchange("GET", "/api/boom")
        n = line_of(app, "BOOM-LINE")
        assert f"ZeroDivisionError: division by zero (app.py:{n} in boom)" in line
        assert "Flask is not in debug mode" not in line
        # the log says where the upstream came from and when it listened
        text = s.text()
        assert "app.py: upstream http://127.0.0.1:" in text
        assert "(from its startup line: '* Running on http://127.0.0.1:" in text
        assert "app.py is listening on http://127.0.0.1:" in text
        assert "1 held request(s) go through now" in text
        # the child's own lines, prefixed, whole
        assert "app.py |  * Debug mode: off" in text
        assert "app.py | ZeroDivisionError: division by zero" in text
        health = s.health()["devserver"]
        pid = health["pid"]
        assert (health["running"], health["listening"]) == (True, True)
        assert (health["restarts"], health["exit_code"]) == (0, None)
        assert health["upstream"] == text.split("app.py: upstream ", 2)[2].split()[0]
    finally:
        s.ctrl_c()
    assert s.wait() == 0
    assert gone([pid], pid)
    assert "stopping app.py (SIGINT to its process group)" in s.text()
    assert not watchdogs_of(pid)


def test_debug_on_with_the_reloader(tmp_path: Path) -> None:
    """`flask run --debug`: the reloader's process and its server both run in the child's
    group; an edit restarts the server inside it (not the proxy's doing) and Ctrl-C ends
    both."""
    app = app_copy(tmp_path)
    s = Supervised(
        "--origin", ORIGIN,
        command=["flask", "--app", "app", "run", "--debug", "--port", "0"], cwd=tmp_path,
    )  # fmt: skip
    try:
        assert get(s.url + "/api/boom", {"Origin": ORIGIN})[0] == 500
        n = line_of(app, "BOOM-LINE")
        line = s.exchange("GET", "/api/boom")
        assert line.count(f"ZeroDivisionError: division by zero (app.py:{n} in boom)") == 1
        pid = started(s)
        members = group_members(pid)
        assert len(members) == 2, members  # the reloader and its server
        time.sleep(1.1)  # the stat reloader compares modification times in seconds
        app.write_text(app.read_text().replace('"ok": True', '"ok": "reloaded"'))
        s.wait_for("Detected change in")
        deadline = time.monotonic() + 10
        while json.loads(get(s.url + "/api/ok")[2]) != {"ok": "reloaded"}:
            assert time.monotonic() < deadline, s.text()
            time.sleep(0.1)
        health = s.health()["devserver"]
        assert (health["pid"], health["restarts"], health["running"]) == (pid, 1, True)
        members = group_members(pid)
    finally:
        s.ctrl_c()
    assert s.wait() == 0
    assert gone(members, pid)


def test_crash_at_startup_exits_with_its_code_and_reason(tmp_path: Path) -> None:
    app_copy(tmp_path)
    s = Supervised(command=[PY, "app.py"], cwd=tmp_path, env={"CRASH": "1"})
    assert s.wait() == 1
    assert (
        "app.py exited with code 1: ModuleNotFoundError: No module named 'flask_sqlalchemy'"
        in s.text()
    )
    assert "app.py | ModuleNotFoundError: No module named 'flask_sqlalchemy'" in s.text()


def test_crash_mid_request(tmp_path: Path) -> None:
    """The child dies while answering: a 502 at once (no waiting for a restart that will
    not come), the line says why, and the proxy exits with the child's code."""
    app_copy(tmp_path)
    s = Supervised("--origin", ORIGIN, command=[PY, "app.py"], cwd=tmp_path)
    t0 = time.monotonic()
    status, headers, _ = get(s.url + "/api/exit", {"Origin": ORIGIN})
    assert (status, headers["Access-Control-Allow-Origin"]) == (502, ORIGIN)
    assert time.monotonic() - t0 < 3
    assert s.wait() == 3
    line = s.exchange("GET", "/api/exit")
    assert "app.py exited with code 3 during this exchange" in line
    assert "app.py exited with code 3" in s.text()


def test_a_child_that_ignores_sigint_gets_sigterm(tmp_path: Path) -> None:
    app_copy(tmp_path)
    s = Supervised(command=[PY, "app.py"], cwd=tmp_path, env={"IGNORE_SIGINT": "1"})
    assert get(s.url + "/api/ok")[0] == 200
    pid = started(s)
    t0 = time.monotonic()
    s.ctrl_c()
    assert s.wait() == 0
    assert 1.5 < time.monotonic() - t0 < 5
    assert gone([pid], pid)
    assert "app.py is still running: SIGTERM" in s.text()
    assert "app.py stopped (was killed by SIGTERM)" in s.text()


def test_a_child_that_ignores_sigint_and_sigterm_gets_sigkill(tmp_path: Path) -> None:
    app_copy(tmp_path)
    env = {"IGNORE_SIGINT": "1", "IGNORE_SIGTERM": "1"}
    s = Supervised(command=[PY, "app.py"], cwd=tmp_path, env=env)
    assert get(s.url + "/api/ok")[0] == 200
    pid = started(s)
    s.p.send_signal(signal.SIGTERM)  # docker stop
    assert s.wait() == 0
    assert gone([pid], pid)
    assert "app.py stopped (was killed by SIGKILL)" in s.text()


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_is_at_its_default_in_the_child_when_the_parent_ignored_it(
    tmp_path: Path,
) -> None:
    """A script that starts the proxy in the background (`cors-proxy -- flask run &`)
    passes SIGINT on as ignored; the dev server must still stop on SIGINT."""
    app_copy(tmp_path)
    s = Supervised(
        command=[PY, "app.py"],
        cwd=tmp_path,
        preexec_fn=ignore_sigint,
    )
    try:
        assert get(s.url + "/api/ok")[0] == 200
        pid = started(s)
        assert ignores(s.p.pid, signal.SIGINT) is False  # the proxy handles it
        assert ignores(pid, signal.SIGINT) is False
    finally:
        s.p.send_signal(signal.SIGTERM)
    assert s.wait() == 0
    assert "app.py stopped (exited with code 0)" in s.text()  # SIGINT was enough
    assert gone([pid], pid)


def test_proxy_killed_with_sigkill_leaves_no_process(tmp_path: Path) -> None:
    app_copy(tmp_path)
    s = Supervised(command=["flask", "--app", "app", "run", "--debug", "--port", "0"], cwd=tmp_path)
    assert get(s.url + "/api/ok")[0] == 200
    pid = started(s)
    members = group_members(pid)
    dogs = watchdogs_of(pid)
    assert (len(members), len(dogs)) == (2, 1), (members, dogs)
    s.p.kill()
    s.wait()
    assert gone(members + dogs, pid)


def test_several_exchanges_in_flight_each_gets_its_own_traceback(tmp_path: Path) -> None:
    app = app_copy(tmp_path)
    s = Supervised(command=[PY, "app.py"], cwd=tmp_path)
    try:
        results: dict[str, int] = {}

        def fetch(path: str) -> None:
            results[path] = get(s.url + path)[0]

        paths = ["/api/slow?s=0.6", "/api/keyerror?s=0.3", "/api/boom", "/api/slow?s=0.2"]
        threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join(10)
        assert results == dict(zip(paths, [200, 500, 500, 200], strict=True))
        boom = s.exchange("GET", "/api/boom")
        assert f"ZeroDivisionError: division by zero (app.py:{line_of(app, 'BOOM-LINE')}" in boom
        keyerror = s.exchange("GET", "/api/keyerror?s=0.3")
        n = line_of(app, "KEYERROR-LINE")
        assert f"KeyError: 'missing' (app.py:{n} in keyerror)" in keyerror
        for path in ("/api/slow?s=0.6", "/api/slow?s=0.2"):
            assert "Error" not in s.exchange("GET", path)
        pid = started(s)
    finally:
        s.ctrl_c()
    assert s.wait() == 0
    assert gone([pid], pid)


def test_upstream_from_the_flag_and_json_lines_with_their_source(tmp_path: Path) -> None:
    import socket

    app_copy(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = Supervised(
        "--upstream", f"http://127.0.0.1:{port}", "--log-format", "json",
        command=[PY, "app.py"], cwd=tmp_path, env={"PORT": str(port)},
    )  # fmt: skip
    try:
        assert s.url.startswith("http://127.0.0.1:")
        assert get(s.url + "/api/boom")[0] == 500
        records = [json.loads(line) for line in s.lines if line.startswith("{")]
        s.wait_for('"path": "/api/boom"')
        records = [json.loads(line) for line in s.lines if line.startswith("{")]
        pid = started(s)
    finally:
        s.ctrl_c()
    assert s.wait() == 0
    assert gone([pid], pid)
    messages = [r["message"] for r in records if "message" in r and "source" not in r]
    assert f"app.py: upstream http://127.0.0.1:{port} (from --upstream)" in messages
    child = [r for r in records if r.get("source") == "app.py"]
    assert {"source": "app.py", "stream": "stderr",
            "message": "ZeroDivisionError: division by zero"} in child  # fmt: skip
    exchange = next(r for r in records if r.get("path") == "/api/boom")
    assert exchange["diagnosis"].startswith("ZeroDivisionError: division by zero (app.py:")


def test_uvicorn(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    if scope['path'] == '/boom':\n"
        "        raise KeyError('missing')\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    s = Supervised(command=["uvicorn", "main:app", "--port", "0"], cwd=tmp_path)
    try:
        assert get(s.url + "/ok")[0] == 200
        assert get(s.url + "/boom")[0] == 500
        assert "KeyError: 'missing' (main.py:5 in app)" in s.exchange("GET", "/boom")
        assert "uvicorn: upstream http://127.0.0.1:" in s.text()
        pid = started(s)
    finally:
        s.ctrl_c()
    assert s.wait() == 0
    assert gone([pid], pid)


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    r = run_cli("--listen", "127.0.0.1:0", "--", "no-such-dev-server-here")
    assert r.returncode == 127
    assert "cannot run 'no-such-dev-server-here'" in r.stderr
    assert run_cli("--").returncode == 2


def test_colours_on_a_terminal(tmp_path: Path) -> None:
    """On a colour terminal the child gets a terminal too, so it keeps its colours (Flask
    paints its warning red); each of its lines still starts with the prefix."""
    import pty
    import select
    import subprocess

    app_copy(tmp_path)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    p = subprocess.Popen(
        [*proxy_command(), "--listen", "127.0.0.1:0", "--", PY, "app.py"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        cwd=tmp_path, env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 15
    try:
        while b"Press CTRL+C" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(15)
        assert p.stdout is not None
        p.stdout.close()
        while select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        os.close(master)
    text = out.decode()
    warning = next(line for line in text.splitlines() if "development server" in line)
    assert warning.startswith("\x1b[36mapp.py |\x1b[0m \x1b[31m\x1b[1mWARNING"), repr(warning)
    assert p.returncode == 0
