"""The learner's model: grouping, minimal rules, what it leaves out, its bounds (pure)."""

from __future__ import annotations

import dataclasses
import tracemalloc

import pytest

from proxy.config.lint import lint
from proxy.config.loader import load
from proxy.export import learn as learn_module
from proxy.export.learn import Learner, Observation

A, B = "http://localhost:3000", "https://app.example.com"


def rules_of(observations: list[Observation]) -> Learner:
    learner = Learner()
    for o in observations:
        learner.observe(o)
    return learner


def test_paths_group_on_their_longest_common_directory() -> None:
    learner = rules_of(
        [
            Observation(A, "/api/v1/items", "GET"),
            Observation(A, "/api/v1/items/3", "DELETE"),
            Observation(A, "/api/v1/users", "GET"),
            Observation(A, "/api", "GET"),
            Observation(A, "/health", "GET"),
            Observation(A, "/", "GET"),
        ]
    )
    assert [(r.name, r.paths) for r in learner.rules()] == [
        ("root", ("/",)),
        ("api", ("/api", "/api/v1/*")),
        ("health", ("/health",)),
    ]
    api = learner.rules()[1]
    assert api.allow_methods == ("GET", "DELETE")


def test_credentials_only_where_seen_and_headers_per_rule() -> None:
    learner = rules_of(
        [
            Observation(A, "/api/a", "POST", credentials=True),
            Observation(B, "/api/b", "PUT", ("Content-Type", "X-Token")),
            Observation(A, "/api/a", "GET", response_headers=("Date", "X-Request-Id", "ETag")),
            Observation(B, "/static/x.js", "GET", response_headers=("Set-Cookie", "Server")),
        ]
    )
    api, static = learner.rules()
    assert api.origins == (A, B)
    assert api.allow_credentials
    assert not static.allow_credentials
    assert api.allow_headers == ("x-token",)
    assert api.expose_headers == ("ETag", "X-Request-Id")
    assert static.expose_headers == ()


def test_what_is_left_out_is_said() -> None:
    learner = rules_of(
        [
            Observation("null", "/api/a", "GET"),
            Observation("http://x:80", "/api/a", "GET"),
            Observation(A, "/a*b", "GET"),
            Observation(A, "/ok", "GET"),
        ]
    )
    text = learner.yaml(listen="127.0.0.1:8080", upstream="http://127.0.0.1:5000")
    assert "# not learned: 1 exchange(s) with Origin: null" in text
    assert "an Origin no browser sends" in text
    assert "a path that cannot be written" in text
    assert [r.paths for r in learner.rules()] == [("/ok",)]


def test_bounded(monkeypatch) -> None:
    monkeypatch.setattr(learn_module, "MAX_PATHS", 3)
    learner = rules_of([Observation(A, f"/p{i}", "GET") for i in range(10)])
    assert len(learner.paths) == 3
    assert learner.left_out == {"more than 3 paths": 7}


BUDGET = 2 << 20  # bytes: MAX_LEARNED_BYTES in these tests, to fill it quickly


def flood(n: int) -> Observation:
    """Observation ``n`` of a client making every name distinct: short ones (the most
    overhead per character) and long ones stored 4 bytes a character."""
    wide = "\U0001f600" * 500
    return Observation(
        f"http://h{n}.test" if n % 2 else f"http://{('h' * 60 + '.') * 3}h{n}.test",
        f"/p{n}" if n % 3 else f"/{wide}{n}",
        f"M{n}" if n % 2 else f"{'M' * 1000}{n}",
        (*(f"x-{n}-{k}" for k in range(20)), f"x-{'h' * 1500}-{n}"),
        tuple(f"X-R{n}-{k}" for k in range(20)),
    )


@pytest.mark.parametrize("paths", [10, 100_000])
def test_memory_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch, paths: int) -> None:
    """Clients choose every name the learner keeps (origins, paths, methods, header
    names): however many and however long, they cost at most MAX_LEARNED_BYTES. With
    10 paths each keeps thousands of methods and header names; with 100,000 (past
    MAX_PATHS) the paths themselves fill it."""
    monkeypatch.setattr(learn_module, "MAX_LEARNED_BYTES", BUDGET)
    monkeypatch.setattr(learn_module, "MAX_PATHS", paths)
    learner = Learner()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(6000):
            obs = flood(n)
            if paths == 10:
                obs = dataclasses.replace(obs, origin=A, path=f"/p{n % 10}")
            learner.observe(obs)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert learner.kept <= BUDGET
    assert learner.left_out[learn_module._OVER_BUDGET] > 0  # it was reached
    assert grown <= BUDGET, f"{grown} bytes kept"
    assert learner.yaml(listen="127.0.0.1:8080", upstream="http://127.0.0.1:5000")


def test_learned_rules_load_without_warnings(tmp_path) -> None:
    learner = rules_of(
        [
            Observation(A, f"/s{i}/x{j}", "GET", credentials=i % 2 == 0)
            for i in range(5)
            for j in range(3)
        ]
    )
    path = tmp_path / "learned.yaml"
    path.write_text(learner.yaml(listen="127.0.0.1:8080", upstream="http://127.0.0.1:5000"))
    cfg = load(str(path))
    assert cfg.warnings == ()
    assert lint(cfg.rules) == []
    assert [r.allow_credentials for r in cfg.rules] == [True, False, True, False, True]
