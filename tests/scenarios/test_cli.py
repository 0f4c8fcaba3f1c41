"""The command line as users run it: a real process, real signals, real exit codes."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.support import ROOT
from tests.support.cli import Proc, get, proxy_command, run_cli
from tests.support.upstream_app import Upstream


def test_check_ok_prints_normalized_rules() -> None:
    r = run_cli("check", "--config", "config.example.yaml")
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout
    assert "rules[0] 'frontend': paths /api/*" in r.stdout
    assert (
        "origins: http://localhost:3000, http://localhost:5173, http://127.0.0.1:3000, "
        "https://*.example.com" in r.stdout
    )


def test_check_reports_every_problem_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "listne: x\nrules:\n  - origins: ['http://a.test']\n    allow_methods: ['GE T']\n"
    )
    r = run_cli("check", "--config", str(bad))
    assert r.returncode == 2
    assert "listne: unknown key (did you mean 'listen'?)" in r.stderr
    assert "rules[0].allow_methods[0]: 'GE T' is not a valid HTTP method" in r.stderr


def test_check_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`cors-proxy check ... | head -1`: the reader leaves after one line; the check must
    not end in a BrokenPipeError traceback (the output here is far beyond a pipe's
    buffer, so the writer is still writing when head exits)."""
    rules = [
        {"name": f"r{i}", "paths": [f"/svc{i}/*"], "origins": [f"https://a{i}.example.com"]}
        for i in range(500)  # about 180 KB of output: past a 64 KiB pipe buffer
    ]
    cfg = tmp_path / "many.yaml"
    cfg.write_text(json.dumps({"rules": rules}))  # JSON is YAML
    command = " ".join(shlex.quote(a) for a in [*proxy_command(), "check", "--config", str(cfg)])
    r = subprocess.run(
        ["sh", "-c", f"{command} | head -1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.stdout.startswith("config OK: "), r.stdout[:200]
    assert len(r.stdout.splitlines()) == 1
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "BrokenPipeError" not in r.stderr, r.stderr[-2000:]
    assert r.stderr == ""


LINTY = """\
rules:
  - name: api
    paths: ["/api/*"]
    origins: ["http://localhost:3000"]
    origin_regex: "https://app.example.com"
    max_age: 86400
  - name: later
    paths: ["/api/v1/*"]
    origins: ["http://localhost:3000"]
"""


def test_check_lints_rules_that_load_but_mislead(tmp_path: Path) -> None:
    cfg = tmp_path / "lint.yaml"
    cfg.write_text(LINTY)
    r = run_cli("check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr  # lint warns; only errors fail the check
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning: ")]
    assert any(
        "rules[0].origin_regex" in w and "unescaped '.'" in w and "https://app-example.com" in w
        for w in warnings
    ), warnings
    assert any("rules[0].max_age" in w and "Chromium caps" in w for w in warnings), warnings
    assert any("rules[1]" in w and "'later' is never used" in w for w in warnings), warnings


def test_lint_warnings_at_startup_and_on_reload(
    procs: list[Proc], upstream: Upstream, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"listen: 127.0.0.1:0\nupstream: {upstream.url}\n" + LINTY)
    pr = Proc("--config", str(cfg))
    procs.append(pr)
    # The reload re-lints: the regex warning goes, the max_age one stays.
    cfg.write_text(cfg.read_text().replace("app.example.com", "app\\\\.example\\\\.com"))
    pr.p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _, body = get(pr.url + "/__cors-proxy__/health")
        if status == 200 and json.loads(body)["config_generation"] >= 2:
            break
        time.sleep(0.1)
    code, err = pr.stop()
    assert code == 0, err
    lines = err.splitlines()
    # Linted at startup and again on reload; the fixed regex is no longer reported.
    assert sum("config warning: rules[0].origin_regex" in line for line in lines) == 1, err
    assert sum("config warning: rules[0].max_age" in line for line in lines) >= 2, err
    assert "config generation 2 active" in err, err


def test_startup_with_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - origins: ['null']\n    allow_credentials: true\n")
    r = run_cli("--config", str(bad))
    assert r.returncode == 2
    assert "'null' cannot be combined with allow_credentials: true" in r.stderr


def test_bad_flag_value_exits_2() -> None:
    r = run_cli("check", "--listen", "nowhere")
    assert r.returncode == 2
    assert "listen: 'nowhere' is not HOST:PORT" in r.stderr


def test_zero_config_run_and_sigterm(procs: list[Proc], upstream: Upstream) -> None:
    pr = Proc(
        "--upstream", upstream.url, "--origin", "http://localhost:3000", "--listen", "127.0.0.1:0"
    )
    procs.append(pr)
    assert pr.line == f"listening on {pr.url} -> {upstream.url}"
    assert not pr.url.endswith(":0")
    status, headers, _ = get(pr.url + "/api/hello", {"Origin": "http://localhost:3000"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    code, out, err = pr.stop_and_read()
    assert code == 0
    assert out == ""  # stdout: the startup line only, which scripts wait for
    # the person at the terminal is pointed to the inspector page
    assert err.splitlines()[0] == f"inspector: {pr.url}/__cors-proxy__/"
    assert "GET /api/hello 200 origin=http://localhost:3000 cors=allowed[command-line]" in err


def test_no_inspector_line_when_it_is_off(
    procs: list[Proc], upstream: Upstream, tmp_path: Path
) -> None:
    cfg = tmp_path / "off.yaml"
    cfg.write_text(
        f"listen: 127.0.0.1:0\nupstream: {upstream.url}\ninspector: {{enabled: false}}\n"
    )
    pr = Proc("--config", str(cfg))
    procs.append(pr)
    code, out, err = pr.stop_and_read()
    assert (code, out) == (0, "")  # nothing after the startup line
    assert "inspector" not in err


def test_environment_and_json_logs(procs: list[Proc], upstream: Upstream) -> None:
    env = {
        "CORS_PROXY_UPSTREAM": upstream.url,
        "CORS_PROXY_LISTEN": "127.0.0.1:0",
        "CORS_PROXY_ORIGINS": "http://localhost:3000,http://localhost:5173",
    }
    pr = Proc("--log-format", "json", env=env)
    procs.append(pr)
    status, headers, _ = get(pr.url + "/api/hello", {"Origin": "http://localhost:5173"})
    assert (status, headers["Access-Control-Allow-Origin"]) == (200, "http://localhost:5173")
    code, err = pr.stop()
    assert code == 0
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    exchange = next(r for r in records if r.get("path") == "/api/hello")
    assert exchange["status"] == 200
    assert exchange["cors"] == "allowed"
    assert exchange["origin"] == "http://localhost:5173"


def test_flags_override_environment(procs: list[Proc], upstream: Upstream) -> None:
    env = {"CORS_PROXY_UPSTREAM": "http://127.0.0.1:1", "CORS_PROXY_LISTEN": "127.0.0.1:0"}
    pr = Proc("--upstream", upstream.url, env=env)
    procs.append(pr)
    assert pr.line.endswith(f"-> {upstream.url}")
    assert pr.stop()[0] == 0


def test_sigterm_lets_in_flight_requests_finish(procs: list[Proc], upstream: Upstream) -> None:
    import threading

    pr = Proc("--upstream", upstream.url, "--listen", "127.0.0.1:0")
    procs.append(pr)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(get(pr.url + "/api/slow?s=1")[0]))
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    code, _ = pr.stop()
    t.join(5)
    assert code == 0
    assert result == [200]
    assert time.monotonic() - started < 6


def test_port_in_use_is_a_clear_error(procs: list[Proc], upstream: Upstream) -> None:
    pr = Proc("--upstream", upstream.url, "--listen", "127.0.0.1:0")
    procs.append(pr)
    port = pr.url.rsplit(":", 1)[1]
    r = run_cli("--upstream", upstream.url, "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
