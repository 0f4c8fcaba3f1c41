"""Fixtures: a real Flask upstream under Werkzeug, the proxy in-process on a real socket."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.cli import learning_server
from proxy.config.loader import load
from proxy.config.model import Overrides
from proxy.server import ProxyServer
from tests.support import ORIGIN, ROOT
from tests.support.cli import Proc
from tests.support.devserver import end_supervised
from tests.support.lane import Lane, make_lane
from tests.support.proxy import MakeProxy, RunningProxy, write_yaml
from tests.support.upstream_app import Upstream, start_upstream

logging.getLogger("werkzeug").setLevel(logging.ERROR)


def pytest_configure(config: pytest.Config) -> None:
    """The coverage floor (``fail_under`` in pyproject.toml) holds for the whole suite, the
    README's ``python -m pytest``; a run of some of the tests reports coverage only (unless
    ``--cov-fail-under`` is given). pytest-cov keeps its options on its plugin object."""
    cov = config.pluginmanager.getplugin("_cov")
    if cov is not None and config.option.cov_fail_under is None and not _whole_suite(config):
        cov.options.cov_fail_under = 0


def _whole_suite(config: pytest.Config) -> bool:
    opt = config.option
    narrowed = (
        opt.markexpr,
        opt.keyword,
        getattr(opt, "deselect", None),
        getattr(opt, "ignore", None),
        getattr(opt, "ignore_glob", None),
        getattr(opt, "lf", False),
    )
    if any(narrowed):
        return False
    targets = {Path(config.invocation_params.dir, arg).resolve() for arg in config.args}
    return targets <= {ROOT, ROOT / "tests"}


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def debug_upstream() -> Iterator[Upstream]:
    up = start_upstream(debug=True)
    yield up
    up.stop()


@pytest.fixture
def server_lane() -> str:
    """Which server answers body-less requests: ``"fast"`` (the proxy's own protocol,
    the default) or ``"aiohttp"`` (aiohttp's server answers everything). A module
    overrides this fixture to run its tests on both."""
    return "fast"


@pytest.fixture
async def make_proxy(tmp_path: Any, server_lane: str) -> AsyncIterator[MakeProxy]:
    """Start a proxy from a config mapping (``upstream`` defaults to the Flask app)."""
    started: list[RunningProxy] = []

    async def _make(upstream_url: str, *, learn: bool = False, **config: Any) -> RunningProxy:
        """``learn``: as ``cors-proxy learn`` runs it (the config's rules are replaced)."""
        data = {"listen": "127.0.0.1:0", "upstream": upstream_url, **config}
        data.setdefault(
            "rules",
            [
                {
                    "name": "frontend",
                    "paths": ["/api/*"],
                    "origins": [ORIGIN],
                    "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                    "allow_headers": ["Content-Type", "Authorization", "X-Custom"],
                    "expose_headers": ["X-Request-Id"],
                    "allow_credentials": True,
                    "max_age": 600,
                }
            ],
        )
        path = write_yaml(tmp_path / f"config{len(started)}.yaml", data)
        cfg = load(path, Overrides())
        stream = io.StringIO()
        lane = server_lane == "fast"
        if learn:
            server, _ = learning_server(cfg, log_stream=stream, fast_lane=lane)
        else:
            server = ProxyServer(cfg, config_path=path, log_stream=stream, fast_lane=lane)
        await server.start()
        running = RunningProxy(server, stream)
        started.append(running)
        return running

    yield _make
    for p in started:
        await p.server.stop()


@pytest.fixture
async def fake_lane() -> AsyncIterator[Lane]:
    """A fast lane on fake transports (tests/support/lane.py), its upstream answering at
    once; shut down after the test."""
    lane = make_lane()
    yield lane
    await lane.server.shutdown(0)


@pytest.fixture(autouse=True)
def _no_supervised_proxy_left() -> Iterator[None]:
    yield
    end_supervised()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for pr in started:
        if pr.p.poll() is None:
            pr.p.kill()
        pr.p.communicate()
