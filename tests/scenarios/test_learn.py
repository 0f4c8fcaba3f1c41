"""`cors-proxy learn`: record, Ctrl-C, the minimal YAML; it passes `check` without a
warning, and replaying the recorded traffic against it gets the same verdicts."""

from __future__ import annotations

import signal
from pathlib import Path

from proxy.config.loader import load
from tests.support.cli import Proc, get, run_cli
from tests.support.learning import OTHER, PAGE, TRAFFIC, learn
from tests.support.matrix import Case, send, verdict
from tests.support.upstream_app import Upstream


def test_learned_yaml_is_minimal_and_checks_clean(upstream: Upstream, tmp_path: Path) -> None:
    printed, written, _ = learn(upstream.url, tmp_path)
    assert written.read_text() == printed
    cfg = load(str(written))
    assert [(r.name, r.paths, r.origins) for r in cfg.rules] == [
        ("api", ("/api/*",), (OTHER, PAGE)),  # origins exactly, never "*"
        ("static", ("/static/app.js",), (OTHER,)),
    ]
    api, static = cfg.rules
    assert api.allow_methods == ("GET", "PUT")
    assert api.allow_headers == ("x-custom",)  # content-type is safelisted by name
    assert api.expose_headers == ("X-Request-Id", "X-Secret")
    assert api.allow_credentials  # a credentialed GET was seen on /api/*
    assert not static.allow_credentials
    assert "null" not in printed
    done = run_cli("check", "--config", str(written))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stdout + done.stderr


def test_replaying_the_traffic_gets_the_same_verdicts(upstream: Upstream, tmp_path: Path) -> None:
    _, written, while_learning = learn(upstream.url, tmp_path)
    proxy = Proc("--config", str(written), "--listen", "127.0.0.1:0", "--upstream", upstream.url)
    try:
        replayed = [verdict(proxy.url, c, send(proxy.url, c)) for c in TRAFFIC]
        assert replayed == while_learning
        assert all(v.allowed for c, v in zip(TRAFFIC, replayed, strict=True) if c.origin != "null")
        # and nothing more: what was not used is refused
        for case in (
            Case("simple", "/api/hello", "http://localhost:3001"),
            Case("preflight", "/api/echo", PAGE, "PATCH"),
            Case("preflight", "/api/echo", PAGE, "PUT", ("x-other",)),
            Case("credentials", "/static/app.js", OTHER, credentials=True),
            Case("simple", "/static/other.js", OTHER),
        ):
            assert not verdict(proxy.url, case, send(proxy.url, case)).allowed, case
    finally:
        proxy.stop()


def test_rules_so_far_and_nothing_seen(upstream: Upstream, tmp_path: Path) -> None:
    p = Proc("learn", "--upstream", upstream.url, "--listen", "127.0.0.1:0")
    status, headers, body = get(p.url + "/__cors-proxy__/learned")
    assert status == 200
    assert headers["Content-Type"].startswith("application/yaml")
    assert b"rules: []" in body
    p.p.send_signal(signal.SIGINT)
    out, err = p.p.communicate(timeout=15)
    assert p.p.returncode == 0
    assert "rules: []  # no cross-origin traffic seen" in out
    assert "learning: every origin is allowed" in err
