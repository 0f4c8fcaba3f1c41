"""The benchmark harness runs and every contender passes its correctness check (never timed).

`python bench/run.py --smoke` finds or installs its contenders (nginx, wrk, local-cors-proxy,
cors-proxy from this checkout), checks each one, and times them for one second. Missing tools
are a failure here, not a skip: CI installs them (.ci/setup-machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

EXPECTED = {
    "cors-proxy@HEAD",  # --against HEAD: the same code, from an export of the commit
    "direct",
    "nginx-cors",
    "lcp",
    "cors-proxy",
    "cors-proxy-1k",
    "aiohttp-floor",
    "httptools-floor",
}


@pytest.mark.bench
@pytest.mark.timeout(600)
def test_bench_smoke(tmp_path: Path) -> None:
    missing = [t for t in ("nginx", "wrk", "npm", "node") if not _found(t)]
    assert not missing, f"benchmark tools missing: {missing} (run .ci/setup-machine)"
    out = tmp_path / "smoke.json"
    r = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--smoke",
            "--json",
            str(out),
            "--markdown",
            str(tmp_path / "smoke.md"),
            "--against",
            "HEAD",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    report = r.stdout[-3000:] + r.stderr[-5000:]
    assert r.returncode == 0, report
    data = json.loads(out.read_text())
    checks = {c["name"]: (c["dead"], c["validation"].get("ok")) for c in data["contenders"]}
    assert set(checks) == EXPECTED, report
    failed = {name: v for name, v in checks.items() if v != ("", True)}
    assert not failed, f"contenders that failed their check: {failed}\n{report}"
    measured = {run["contender"] for run in data["runs"]}
    assert measured == EXPECTED, report
    assert all(s["bytes_ok"] for s in data["slow"]), report
    assert "### against: cors-proxy (this checkout) vs cors-proxy@HEAD" in r.stdout, report


def _found(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


@pytest.mark.bench
@pytest.mark.timeout(120)
def test_micro_bench_smoke() -> None:
    """bench/micro.py checks both contenders' answers before timing, and reports both."""
    r = subprocess.run(
        [sys.executable, "bench/micro.py", "--exchanges", "50", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    assert set(rows) == {"preflight", "small"}, r.stdout
    for row in rows.values():
        assert float(row[1]) > 0, r.stdout  # cors-proxy's median
        assert float(row[3]) > 0, r.stdout  # the floor's


@pytest.mark.bench
@pytest.mark.timeout(120)
def test_micro_bench_against_another_checkout() -> None:
    """bench/micro.py --against REV runs both checkouts' micro benchmark and compares them."""
    r = subprocess.run(
        [
            sys.executable,
            "bench/micro.py",
            "--against",
            "HEAD",
            "--exchanges",
            "50",
            "--rounds",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vs HEAD" in r.stdout, r.stdout
    rows = {line.split()[0] for line in r.stdout.splitlines()[3:]}
    assert rows == {"small", "preflight"}, r.stdout
    assert r.stdout.count("too few rounds to tell") == 4, r.stdout  # 2 rounds: no verdict
