"""The tools a run needs (nginx, wrk, node's local-cors-proxy): installed when missing and
possible, and the versions of everything measured, recorded with each run."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from .log import log
from .workload import BENCH_DIR, REPO_DIR

LCP_CLI = BENCH_DIR / "node_modules" / "local-cors-proxy" / "bin" / "lcp.js"


def ensure_tools(install: bool) -> list[str]:
    """Install what is missing when we can; returns what is still missing.

    nginx and wrk come from apt-get (as root, Debian/Ubuntu); local-cors-proxy from
    `npm ci` in bench/ (package-lock.json pins it and its dependencies)."""
    missing_apt = [
        t for t in ("nginx", "wrk") if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())
    ]
    if shutil.which("npm") is None:
        missing_apt.append("npm")
    if missing_apt and install:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log(f"installing {' '.join(missing_apt)} with apt-get")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", *missing_apt],
                env=env,
                check=False,
            )
        else:
            log(
                f"missing {' '.join(missing_apt)}; install them (apt-get install "
                f"{' '.join(missing_apt)})"
            )
    if not LCP_CLI.exists() and shutil.which("npm") and install:
        log("installing local-cors-proxy: npm ci in bench/")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH_DIR, check=False)
    if Path("/usr/sbin/nginx").exists() and not shutil.which("nginx"):
        os.environ["PATH"] += os.pathsep + "/usr/sbin"
    still = [t for t in ("nginx", "wrk", "node") if not shutil.which(t)]
    if not LCP_CLI.exists():
        still.append("local-cors-proxy (npm ci in bench/)")
    return still


def _first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "missing"


def _python_package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def _npm_package(name: str) -> str:
    p = BENCH_DIR / "node_modules" / name / "package.json"
    try:
        return str(json.loads(p.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "missing"


def versions() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return {
        "wrk": _first_line(["wrk", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "node": _first_line(["node", "--version"]),
        "local-cors-proxy": _npm_package("local-cors-proxy"),
        "express": _npm_package("express"),
        "request": _npm_package("request"),
        "python": platform.python_version(),
        "aiohttp": _python_package("aiohttp"),
        "uvloop": _python_package("uvloop"),
        "httptools": _python_package("httptools"),
        "flask": _python_package("flask"),
        "werkzeug": _python_package("werkzeug"),
        "cors-proxy": git_rev(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": str(os.cpu_count()),
        "affinity": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
    }


def git_rev() -> str:
    try:
        r = subprocess.run(
            ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
