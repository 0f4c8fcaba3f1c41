"""Exports on their real engines against cors-proxy: the same requests, the same browser
verdicts (tests/support/matrix.py), for config.example.yaml and a learned config.

Each engine starts once per config; the whole module takes about 20 s."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.config.loader import load
from proxy.export.model import TARGETS
from proxy.export.render import render
from proxy.policy.cors import CorsPolicy
from tests.support import ROOT
from tests.support.engines import engines, free_port, start_caddy, start_nginx, start_proxy
from tests.support.learning import OTHER, PAGE, learn
from tests.support.matrix import (
    Case,
    Verdict,
    build,
    differences,
    looser,
    send,
    upgrade,
    verdict,
)
from tests.support.upstream_app import Upstream

EXAMPLE = ROOT / "config.example.yaml"
NEAR_MISSES = [
    "http://localhost:3001",
    "http://LOCALHOST:3000",
    "https://example.com",
    "https://a.b.example.com",
    "https://app.example.com.evil.net",
    "http://app.example.com",
    "https://evil.test",
    "null",
]
EXAMPLE_CASES = build(
    {
        "/api/hello": [
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "https://app.example.com",
            "https://pr-7.preview.example.com",
        ],
        "/static/app.js": ["http://localhost:3000", "http://127.0.0.1:3000"],
    },
    NEAR_MISSES,
    errors=["/api/boom", "/api/status/404", "/api/own-cors"],
    good_method="PUT",
    good_headers=("content-type", "authorization", "x-requested-with"),
)
LEARNED_CASES = build(
    {"/api/hello": [PAGE, OTHER], "/api/echo": [PAGE], "/static/app.js": [OTHER, PAGE]},
    NEAR_MISSES,
    errors=["/api/boom", "/api/status/404", "/api/own-cors"],
    good_method="PUT",
    good_headers=("x-custom",),
)
# Every place where a target cannot answer as the proxy does, per config: nginx and
# flask-cors must never deviate, Caddy happens not to for these; Starlette answers a
# preflight refused for its method or headers with 400 (blocked too, another message).
EXPECTED_DEVIATIONS: dict[str, dict[str, list[str]]] = {
    config: {**{t: [] for t in TARGETS}, "starlette": ["refused-preflight-400"]}
    for config in ("example", "learned")
}

Results = dict[str, list[tuple[Case, Verdict]]]
WS_ORIGINS = ["https://evil.test", "http://localhost:3000", None]  # refused, allowed, none


def run_matrix(
    cfg_path: Path,
    upstream: Upstream,
    work: Path,
    cases: list[Case],
    websockets: dict[str, list[int]] | None = None,
) -> Results:
    out: Results = {}
    with engines(cfg_path, upstream.url, work) as running:
        for name, engine in running.items():
            out[name] = [(c, verdict(engine.url, c, send(engine.url, c))) for c in cases]
            if websockets is not None and name in ("cors-proxy", "nginx", "caddy"):
                websockets[name] = [upgrade(engine.url, o) for o in WS_ORIGINS]
    return out


@pytest.fixture(scope="module")
def example_ws() -> dict[str, list[int]]:
    return {}


@pytest.fixture(scope="module")
def example_results(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, example_ws: dict[str, list[int]]
) -> Results:
    work = tmp_path_factory.mktemp("example")
    path = work / "config.example.yaml"
    shutil.copy(EXAMPLE, path)
    return run_matrix(path, upstream, work, EXAMPLE_CASES, example_ws)


# What no target can say exactly (each one's deviations are listed in
# tests/export/test_render.py): the verdicts may differ there, but never to the looser side.
HARD_YAML = r"""
upstream_cors: preserve
rules:
  - name: open
    paths: ["/public/*"]
    origins: ["*"]
    allow_methods: ["*"]
    allow_headers: ["*"]
    expose_headers: ["*"]
    max_age: null
  - name: app
    paths: ["/api/*"]
    origins: ["http://localhost:3000"]
    origin_regex: "https://(?!admin)[a-z]+\\.example\\.com"
    allow_headers: [Content-Type, Authorization]
    expose_headers: ["*"]
    allow_credentials: true
"""
HARD_CASES = build(
    {
        "/public/x": ["http://localhost:3000", "https://anything.test"],
        "/api/hello": ["http://localhost:3000", "https://shop.example.com"],
    },
    ["https://admin.example.com", "null", "http://LOCALHOST:3000"],
    errors=["/api/own-cors", "/api/boom"],
    good_method="PUT",
    good_headers=("content-type", "authorization"),
)


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hard-config") / "hard.yaml"
    path.write_text(HARD_YAML)
    return path


@pytest.fixture(scope="module")
def hard_results(
    hard: Path, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Results:
    return run_matrix(hard, upstream, tmp_path_factory.mktemp("hard"), HARD_CASES)


@pytest.fixture(scope="module")
def learned(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config learned by `cors-proxy learn` from tests/support/learning.py's traffic."""
    _, written, _ = learn(upstream.url, tmp_path_factory.mktemp("learn"))
    return written


@pytest.fixture(scope="module")
def learned_results(
    learned: Path, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Results:
    return run_matrix(learned, upstream, tmp_path_factory.mktemp("learned"), LEARNED_CASES)


def check(results: Results, target: str, cfg_path: Path) -> None:
    cfg = load(str(cfg_path))
    policy = CorsPolicy(cfg.rules)
    declared = render(target, cfg, cfg_path.name).deviations
    refused_400 = any(d.kind == "refused-preflight-400" for d in declared)
    proxy = results["cors-proxy"]
    mine = results[target]
    assert len(proxy) == len(mine)
    wrong = []
    for (case, p), (_, t) in zip(proxy, mine, strict=True):
        origin_ok = policy.origin_allowed(case.path, case.origin or "")
        diff = differences(case, p, t, origin_ok, refused_400)
        if diff:
            wrong.append(f"{case}: {'; '.join(diff)} (proxy: {p}; {target}: {t})")
    assert not wrong, f"{len(wrong)} of {len(proxy)} differ:\n" + "\n".join(wrong)


@pytest.mark.parametrize("target", TARGETS)
def test_example_config_same_verdicts(example_results: Results, target: str) -> None:
    check(example_results, target, EXAMPLE)


@pytest.mark.parametrize("target", TARGETS)
def test_example_config_deviations_are_known(target: str) -> None:
    export = render(target, load(str(EXAMPLE)), "config.example.yaml")
    assert [d.kind for d in export.deviations] == EXPECTED_DEVIATIONS["example"][target]


@pytest.mark.parametrize("target", TARGETS)
def test_learned_config_same_verdicts(learned_results: Results, learned: Path, target: str) -> None:
    check(learned_results, target, learned)


@pytest.mark.parametrize("target", TARGETS)
def test_learned_config_deviations_are_known(learned: Path, target: str) -> None:
    export = render(target, load(str(learned)), "learned.yaml")
    assert [d.kind for d in export.deviations] == EXPECTED_DEVIATIONS["learned"][target]


@pytest.mark.parametrize("target", TARGETS)
def test_where_a_target_deviates_it_is_stricter(
    hard_results: Results, hard: Path, target: str
) -> None:
    cfg = load(str(hard))
    policy = CorsPolicy(cfg.rules)
    deviations = render(target, cfg, "hard.yaml").deviations
    refused_400 = any(d.kind == "refused-preflight-400" for d in deviations)
    differ, looser_ones = [], []
    for (case, p), (_, t) in zip(hard_results["cors-proxy"], hard_results[target], strict=True):
        origin_ok = policy.origin_allowed(case.path, case.origin or "")
        if differences(case, p, t, origin_ok, refused_400):
            differ.append(case)
            if looser(p, t):
                looser_ones.append(f"{case}: proxy {p}; {target} {t}")
    assert not looser_ones, "\n".join(looser_ones)
    assert bool(differ) <= bool(deviations), f"{target} differs without a declared deviation"


def test_the_matrix_sees_both_verdicts(example_results: Results) -> None:
    """A matrix where everything passes (or fails) would prove nothing."""
    proxy = [v for _, v in example_results["cors-proxy"]]
    assert sum(v.allowed for v in proxy) > 20
    assert sum(not v.allowed for v in proxy) > 20
    assert any(v.exposed for v in proxy)
    codes = {v.code for v in proxy}
    assert {"MissingAllowOriginHeader", "InvalidAllowCredentials"} <= codes, codes


def test_upstream_down_keeps_cors_headers(tmp_path: Path) -> None:
    """The proxy's 502 and nginx's or Caddy's are all readable by an allowed page."""
    dead = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text().replace("upstream_wait: 5 ", "upstream_wait: 0 "))
    cfg = replace(load(str(path)), upstream=dead)
    assert cfg.upstream_wait == 0
    cases = [
        Case("credentials", "/api/hello", "http://localhost:3000", credentials=True),
        Case("simple", "/static/app.js", "http://localhost:3000"),
        Case("simple", "/api/hello", "https://evil.test"),
    ]
    started = [start_proxy(path, dead, tmp_path), start_nginx(cfg, "c", tmp_path)]
    started.append(start_caddy(cfg, "c", tmp_path))
    try:
        seen = {e.name: [send(e.url, c) for c in cases] for e in started}
        verdicts = {
            name: [verdict(e.url, c, s) for c, s in zip(cases, seen[name], strict=True)]
            for name, e in zip(seen, started, strict=True)
        }
    finally:
        for e in started:
            e.stop()
    assert [s.status for s in seen["cors-proxy"]] == [502, 502, 502]
    assert [v.allowed for v in verdicts["cors-proxy"]] == [True, True, False]
    for name in ("nginx", "caddy"):
        assert [s.status for s in seen[name]] == [502, 502, 502], name
        assert verdicts[name] == verdicts["cors-proxy"], name


def test_websocket_origins_refused_alike(
    example_results: Results, example_ws: dict[str, list[int]]
) -> None:
    """An Upgrade from an origin no rule accepts is refused with 403 by the proxy, nginx
    and Caddy; one from an accepted origin (or the server's own) is not refused."""
    proxy = example_ws["cors-proxy"]
    assert proxy[0] == 403
    assert 403 not in proxy[1:]
    for name in ("nginx", "caddy"):
        refused = [status == 403 for status in example_ws[name]]
        assert refused == [status == 403 for status in proxy], (name, example_ws[name], proxy)
