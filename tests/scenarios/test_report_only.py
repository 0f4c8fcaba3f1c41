"""Report-only rules: answered loosely, and what they would have blocked is logged."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.support import ORIGIN
from tests.support.cli import Proc, get
from tests.support.proxy import MakeProxy, write_yaml
from tests.support.upstream_app import Upstream

OTHER = "http://localhost:5173"
STRICT = {
    "name": "strict",
    "paths": ["/api/*"],
    "origins": [ORIGIN],
    "allow_methods": ["GET"],
    "allow_headers": ["Content-Type"],
    "expose_headers": ["X-Request-Id"],
}


async def test_a_report_only_rule_lets_through_and_logs(
    make_proxy: MakeProxy, upstream: Upstream
) -> None:
    proxy = await make_proxy(upstream.url, rules=[{**STRICT, "report_only": True}])
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/api/hello", headers={"Origin": OTHER}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == OTHER  # answered loosely
        async with s.options(
            proxy.url + "/api/echo",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"},
        ) as r:
            assert r.status == 204
        async with s.get(
            proxy.url + "/api/hello", headers={"Origin": ORIGIN, "Cookie": "a=1"}
        ) as r:
            assert r.status == 200
        async with s.get(proxy.url + "/api/hello", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
    lines = (await proxy.logs()).splitlines()
    other, preflight, credentialed, fine = _split(lines)
    assert "report-only: rule 'strict' would block it: origin 'http://localhost:5173'" in other
    assert "report-only: rule 'strict' would block this preflight: method DELETE" in preflight
    assert "report-only: rule 'strict' would block it: the request carries credentials" in (
        credentialed
    )
    assert "report-only: rule 'strict' would hide x-secret from scripts" in fine


def _split(lines: list[str]) -> tuple[str, str, str, str]:
    gets = [line for line in lines if line.startswith("GET /api/hello")]
    pre = [line for line in lines if line.startswith("OPTIONS /api/echo")]
    assert len(gets) == 3, lines
    assert len(pre) == 1, lines
    return gets[0], pre[0], gets[1], gets[2]


def test_candidate_file_is_checked_beside_the_rules(upstream: Upstream, tmp_path: Path) -> None:
    loose = write_yaml(
        tmp_path / "loose.yaml",
        {"rules": [{"name": "loose", "origins": [ORIGIN, OTHER], "allow_credentials": True}]},
    )
    strict = write_yaml(tmp_path / "strict.yaml", {"rules": [STRICT]})
    p = Proc(
        "--config", loose, "--candidate", strict, "--listen", "127.0.0.1:0",
        "--upstream", upstream.url, "--log-format", "json",
    )  # fmt: skip
    status, headers, _ = get(p.url + "/api/hello", {"Origin": OTHER})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == OTHER  # the config's rules decide
    code, err = p.stop()
    assert code == 0
    line = next(json.loads(x) for x in err.splitlines() if '"/api/hello"' in x)
    assert line["report"].startswith("report-only: rule 'strict' would block it")


def test_a_bad_candidate_is_a_config_error(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{origins: ['ftp://x']}]\n")
    done = run_cli("check", "--config", "config.example.yaml", "--candidate", str(bad))
    assert done.returncode == 2
    assert f"--candidate {bad}: rules[0].origins[0]" in done.stderr
