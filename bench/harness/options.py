"""The settings of one run, as ``bench/run.py`` parses them (one field per flag, in the
order of ``--help``; the JSON report records them under ``config``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Options:
    upstream: str = "nginx"  # "nginx" or "flask"
    duration: float = 10
    warmup: float = 2
    settle: float = 1.0
    rounds: int = 3
    scenarios: list[str] = field(default_factory=lambda: ["small", "preflight", "big"])
    connections: int = 50
    big_connections: int = 8
    threads: int = 1
    big_mib: int = 64
    origin: str = "http://localhost:3000"
    contender: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)
    only: str = ""
    contender_scenarios: list[str] = field(default_factory=list)
    skip: str = ""
    base_port: int = 18080
    nginx_workers: int = 1
    nginx_proxy_buffering: str = "on"
    cpu_wrk: int = 1
    cpu_upstream: int = 1
    cpu_contender: int = 0
    no_pin: bool = False
    nice: int = 0
    max_other: float = 15
    retries: int = 2
    start_timeout: float = 30
    json: Path | None = None
    markdown: Path | None = None
    keep_workdir: bool = False
    dry_run: bool = False
    rules: int = 1000
    slow_mib: int = 1024
    slow_mbps: float = 100
    slow_limit_mib: float = 60
    no_slow: bool = False
    no_install: bool = False
    smoke: bool = False
    against: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
            for f in fields(self)
        }
