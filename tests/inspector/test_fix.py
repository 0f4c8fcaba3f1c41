"""The one-line YAML fix (proxy/inspector/fix.py, pure), made from the policy's own fix
texts and checked the way a developer uses it: paste the line over the key in the file,
load the file again, and the request that was refused is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from proxy.config.loader import load
from proxy.config.model import Config, Overrides
from proxy.inspector.fix import yaml_fix
from proxy.policy.cors import CorsPolicy

CONFIG = """\
upstream: "http://127.0.0.1:5000"
rules:
  - name: api
    paths: ["/api/*"]
    origins: ["http://localhost:3000"]
    allow_methods: [GET, POST]
    allow_headers: [Content-Type]
    allow_credentials: true
  - name: open
    paths: ["/open/*"]
    origins: ["http://localhost:3000"]
"""
PAGE = "http://127.0.0.1:5173"


def config(tmp_path: Path, text: str = CONFIG) -> tuple[Path, Config]:
    path = tmp_path / "cors-proxy.yaml"
    path.write_text(text)
    return path, load(str(path))


def paste(path: Path, rule: int, line: str) -> None:
    """What the developer does: the rule's line for that key replaced by the fix."""
    key = line.split(":", 1)[0]
    text = path.read_text()
    starts = [m.start() for m in re.finditer(r"^  - ", text, re.M)]
    start, end = starts[rule], (starts[rule + 1] if rule + 1 < len(starts) else len(text))
    block = text[start:end]
    if re.search(rf"^(\s+){key}:.*$", block, re.M):
        block = re.sub(rf"^(\s+){key}:.*$", lambda m: m.group(1) + line, block, count=1, flags=re.M)
    else:
        block = block.rstrip("\n") + f"\n    {line}\n"
    path.write_text(text[:start] + block + text[end:])


def test_origin_fix_pasted_lets_the_origin_in(tmp_path: Path) -> None:
    path, cfg = config(tmp_path)
    decision = CorsPolicy(cfg.rules).actual(path="/api/items", origin=PAGE)
    assert not decision.allowed
    fix = yaml_fix(decision.fix, cfg, PAGE)
    assert fix is not None
    assert not fix.applied
    assert (fix.where, fix.key) == ("rules[0] (api)", "origins")
    assert fix.line == 'origins: ["http://localhost:3000", "http://127.0.0.1:5173"]'
    assert yaml.safe_load(fix.line) == {"origins": ["http://localhost:3000", PAGE]}
    paste(path, 0, fix.line)
    again = load(str(path))
    assert CorsPolicy(again.rules).actual(path="/api/items", origin=PAGE).allowed
    assert yaml_fix(decision.fix, again, PAGE) == fix.__class__(fix.where, fix.key, fix.line, True)


@pytest.mark.parametrize(
    ("method", "headers", "key", "line"),
    [
        ("PUT", None, "allow_methods", 'allow_methods: ["GET", "POST", "PUT"]'),
        (
            "POST",
            "x-api-key,content-type",
            "allow_headers",
            'allow_headers: ["content-type", "x-api-key"]',
        ),
    ],
)
def test_preflight_fix_pasted_lets_it_through(
    tmp_path: Path, method: str, headers: str | None, key: str, line: str
) -> None:
    path, cfg = config(tmp_path)
    ask = {"path": "/api/items", "origin": "http://localhost:3000", "request_method": method,
           "request_headers": headers}  # fmt: skip
    decision = CorsPolicy(cfg.rules).preflight(**ask)  # type: ignore[arg-type]
    assert not decision.allowed
    fix = yaml_fix(decision.fix, cfg)
    assert fix is not None
    assert (fix.key, fix.line) == (key, line)
    paste(path, 0, fix.line)
    assert CorsPolicy(load(str(path)).rules).preflight(**ask).allowed  # type: ignore[arg-type]


def test_private_network_fix(tmp_path: Path) -> None:
    path, cfg = config(tmp_path)
    decision = CorsPolicy(cfg.rules).preflight(
        path="/open/x", origin="http://localhost:3000", request_method="GET",
        request_headers=None, private_network=True,
    )  # fmt: skip
    fix = yaml_fix(decision.fix, cfg)
    assert fix is not None
    assert fix.line == "allow_private_network: true"
    paste(path, 1, fix.line)
    again = CorsPolicy(load(str(path)).rules)
    assert again.preflight(
        path="/open/x", origin="http://localhost:3000", request_method="GET",
        request_headers=None, private_network=True,
    ).allowed  # fmt: skip


def test_no_rule_for_the_path_gets_a_new_rule_item(tmp_path: Path) -> None:
    path, cfg = config(tmp_path)
    decision = CorsPolicy(cfg.rules).preflight(
        path="/other/thing?x=1", origin=PAGE, request_method="PUT", request_headers=None
    )
    fix = yaml_fix(decision.fix, cfg, PAGE)
    assert fix is not None
    assert fix.key == "rules"
    assert fix.line == '- {paths: ["/other/thing"], origins: ["http://127.0.0.1:5173"]}'
    path.write_text(path.read_text() + "  " + fix.line + "\n")
    assert CorsPolicy(load(str(path)).rules).actual(path="/other/thing", origin=PAGE).allowed


@pytest.mark.parametrize(
    "origin", ["null", "http://a..b", "ftp://x"], ids=["null-with-credentials", "bad", "ftp"]
)
def test_no_line_when_the_fix_is_no_config_change(tmp_path: Path, origin: str) -> None:
    _, cfg = config(tmp_path)
    decision = CorsPolicy(cfg.rules).actual(path="/api/x", origin=origin)
    assert decision.fix
    assert yaml_fix(decision.fix, cfg, origin) is None


def test_no_line_without_a_file() -> None:
    """`--origin` rules have no file to paste into: the words are the fix."""
    cfg = load(None, Overrides(origins=("http://localhost:3000",)))
    decision = CorsPolicy(cfg.rules).actual(path="/api/x", origin=PAGE)
    assert decision.fix == f'add "{PAGE}" to rules[0].origins'
    assert yaml_fix(decision.fix, cfg, PAGE) is None
