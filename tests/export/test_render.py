"""The four exports as text: their conventions, and the deviations they declare (pure)."""

from __future__ import annotations

import ast
from dataclasses import replace

import pytest

from proxy.config.loader import load
from proxy.config.model import Config
from proxy.export.model import TARGETS, rx_escape
from proxy.export.render import render
from proxy.policy.cors import CorsRule
from tests.support import ROOT
from tests.support.cli import run_cli

EXAMPLE = load(str(ROOT / "config.example.yaml"))

HARD = replace(
    EXAMPLE,
    upstream_cors="preserve",
    rules=(
        CorsRule(
            name="open",
            paths=("/public/*",),
            origins=("*",),
            allow_methods=("*",),
            allow_headers=("*",),
            expose_headers=("*",),
            max_age=None,
        ),
        CorsRule(
            name="app",
            paths=("/api/*",),
            origins=("http://localhost:3000",),
            origin_regex=r"https://(?!admin)[a-z]+\.example\.com",
            expose_headers=("*",),
            allow_credentials=True,
            max_age=600,
        ),
        CorsRule(name="later", origins=("https://other.test",), max_age=600),
    ),
)


@pytest.mark.parametrize("target", TARGETS)
def test_starts_with_a_comment_naming_the_file_and_rules(target: str) -> None:
    text = render(target, EXAMPLE, "config.example.yaml").text
    head = text.splitlines()[:8]
    assert head[0] == f"# cors-proxy export --to {target} --config config.example.yaml"
    assert any("rules[0] frontend: paths /api/*" in line for line in head)
    assert any("rules[1] everything-else: paths (every path)" in line for line in head)


def test_nginx_server_block_conventions() -> None:
    text = render("nginx", EXAMPLE, "config.example.yaml").text
    assert text.count("server {") == 1
    assert "listen 127.0.0.1:8080;" in text
    assert "proxy_pass http://127.0.0.1:5000;" in text
    assert "map $http_origin $cors_origin_0" in text
    # anchored, case-sensitive regexes only (a map's plain strings ignore case)
    origin_lines = [line for line in text.splitlines() if line.startswith('    "~^(?:http')]
    assert origin_lines
    assert all(line.rstrip().endswith(')$" 1;') for line in origin_lines)
    assert all(line.endswith(" always;") for line in text.splitlines() if "add_header" in line)
    assert "return 204;" in text
    assert "proxy_hide_header Access-Control-Allow-Origin;" in text
    assert "add_header Vary $cors_vary always;" in text


def test_python_exports_are_modules_with_the_entry_points() -> None:
    for target, entry in (("flask-cors", "init_cors"), ("starlette", "add_cors")):
        tree = ast.parse(render(target, EXAMPLE, "x.yaml").text)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert entry in names, target


def test_caddy_is_one_site_block() -> None:
    text = render("caddy", EXAMPLE, "config.example.yaml").text
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[0] == "http://:8080 {"
    assert body[-1] == "}"
    assert "\tbind 127.0.0.1" in body


EXPECTED_HARD = {
    "nginx": ["expose-all-with-credentials", "preserve-adds"],
    "caddy": ["regex-not-re2", "expose-all-with-credentials", "preserve-adds"],
    "flask-cors": [
        "any-method",
        "star-origin-reflected",
        "expose-all-with-credentials",
        "selected-by-path",
    ],
    "starlette": [
        "any-method",
        "star-origin-reflected",
        "max-age-always",
        "expose-all-with-credentials",
        "refused-preflight-400",
    ],
}


@pytest.mark.parametrize("target", TARGETS)
def test_what_a_target_cannot_say_is_listed_and_commented(target: str) -> None:
    export = render(target, HARD, "hard.yaml")
    assert [d.kind for d in export.deviations] == EXPECTED_HARD[target]
    lines = export.text.splitlines()
    first = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    body = "\n".join(lines[first:])
    for d in export.deviations:
        assert f"DEVIATION ({d.kind}) {d.rule}" in export.text  # listed at the top
        assert d.kind in body or "preserve" in body  # and said again where it happens


def test_rx_escape_reads_the_same_everywhere() -> None:
    assert rx_escape("/a.b (c)*") == r"/a\.b\x20\(c\)\*"


def test_no_rules() -> None:
    empty = Config(rules=())
    for target in TARGETS:
        assert "(none: every cross-origin read is blocked)" in render(target, empty, "e").text


def test_cli_export(tmp_path) -> None:
    done = run_cli("export", "--to", "nginx", "--config", "config.example.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# cors-proxy export --to nginx --config config.example.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{origins: ['ftp://x']}]\n")
    done = run_cli("export", "--to", "caddy", "--config", str(bad))
    assert done.returncode == 2
    assert "rules[0].origins[0]" in done.stderr
    done = run_cli("export", "--to", "iis", "--config", "config.example.yaml")
    assert done.returncode == 2


def test_upstream_prefix_and_host() -> None:
    cfg = replace(EXAMPLE, upstream="http://127.0.0.1:5000/app", host_header="upstream")
    nginx = render("nginx", cfg, "c").text
    assert "proxy_pass http://127.0.0.1:5000/app/;" in nginx
    assert "proxy_set_header Host 127.0.0.1:5000;" in nginx
    caddy = render("caddy", cfg, "c").text
    assert "rewrite * /app{uri}" in caddy
    assert "header_up Host {upstream_hostport}" in caddy
