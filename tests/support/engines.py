"""The production servers an export is checked on, each started for real: nginx and
Caddy from Debian's packages, Flask with flask-cors, Starlette with its CORSMiddleware
under uvicorn, and cors-proxy itself as users run it. Missing engines fail the test."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from proxy.config.loader import load
from proxy.config.model import Config
from proxy.export.render import render
from tests.support import ROOT
from tests.support.cli import proxy_command
from tests.support.upstream_app import create_app


@dataclass
class Engine:
    name: str
    url: str
    stop_: list[object]

    def stop(self) -> None:
        for thing in self.stop_:
            if isinstance(thing, subprocess.Popen):
                thing.terminate()
                try:
                    thing.wait(10)
                except subprocess.TimeoutExpired:
                    thing.kill()
                    thing.wait()
                if thing.stdout is not None:
                    thing.stdout.close()
            else:
                thing.shutdown()  # type: ignore[attr-defined]
                thing.server_close()  # type: ignore[attr-defined]


def spawn(args: list[str], log: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``args`` with stderr in ``log`` (the parent's copy of the file is closed)."""
    with open(log, "wb") as f:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=f, **kwargs)  # type: ignore[call-overload,no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}: {text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


def tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if found is None:
        pytest.fail(f"{name} is not installed: run .ci/setup-machine (apt-get install {name})")
    return found


def for_engine(cfg: Config, upstream: str, port: int) -> Config:
    """The config as an engine runs it: on ``port``, in front of ``upstream``."""
    return replace(cfg, upstream=upstream, listen_host="127.0.0.1", listen_port=port)


def start_nginx(cfg: Config, source: str, work: Path) -> Engine:
    port = free_port()
    d = work / "nginx"
    d.mkdir()
    (d / "cors.conf").write_text(render("nginx", cfg_at(cfg, port), source).text)
    (d / "nginx.conf").write_text(
        textwrap.dedent(f"""\
            daemon off;
            pid {d}/nginx.pid;
            error_log {d}/error.log warn;
            worker_processes 1;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {d}/body;
                proxy_temp_path {d}/proxy;
                fastcgi_temp_path {d}/fastcgi;
                uwsgi_temp_path {d}/uwsgi;
                scgi_temp_path {d}/scgi;
                include {d}/cors.conf;
            }}
        """)
    )
    proc = spawn([tool("nginx"), "-p", str(d), "-c", str(d / "nginx.conf")], d / "stderr.log")
    wait_port(port, proc, d / "error.log")
    return Engine("nginx", f"http://127.0.0.1:{port}", [proc])


def start_caddy(cfg: Config, source: str, work: Path) -> Engine:
    port = free_port()
    d = work / "caddy"
    d.mkdir()
    site = render("caddy", cfg_at(cfg, port), source).text
    (d / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https off\n}\n" + site)
    env = {**os.environ, "HOME": str(d), "XDG_DATA_HOME": str(d), "XDG_CONFIG_HOME": str(d)}
    log = d / "caddy.log"
    proc = spawn(
        [tool("caddy"), "run", "--adapter", "caddyfile", "--config", str(d / "Caddyfile")],
        log,
        env=env,
    )
    wait_port(port, proc, log)
    return Engine("caddy", f"http://127.0.0.1:{port}", [proc])


def start_flask_cors(cfg: Config, source: str, work: Path) -> Engine:
    """The upstream app itself, with the exported ``init_cors(app)``."""
    d = work / "flask_cors"
    d.mkdir()
    module = d / "cors_export_flask.py"
    module.write_text(render("flask-cors", cfg, source).text)
    spec = importlib.util.spec_from_file_location("cors_export_flask", module)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    app = create_app()
    mod.init_cors(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Engine("flask-cors", f"http://127.0.0.1:{server.server_port}", [server])


STARLETTE_APP = '''\
"""A Starlette app in front of the Flask upstream, with the exported add_cors(app)."""
import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cors_export_starlette import add_cors

UPSTREAM = {upstream!r}
HOP = {{"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "host",
       "content-length"}}


async def forward(request: Request) -> Response:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
        async with session.request(
            request.method,
            UPSTREAM + request.url.path + ("?" + request.url.query if request.url.query else ""),
            headers=headers,
            data=await request.body() or None,
            allow_redirects=False,
        ) as up:
            body = await up.read()
            response = Response(body, status_code=up.status)
            raw = [(k.encode("latin-1"), v.encode("latin-1"))
                   for k, v in up.headers.items() if k.lower() not in HOP]
            response.raw_headers = [*raw, (b"content-length", str(len(body)).encode())]
            return response


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]
app = Starlette(routes=[Route("/{{path:path}}", forward, methods=METHODS)])
add_cors(app)
'''


def start_starlette(cfg: Config, source: str, work: Path, upstream: str) -> Engine:
    port = free_port()
    d = work / "starlette"
    d.mkdir()
    (d / "cors_export_starlette.py").write_text(render("starlette", cfg, source).text)
    (d / "starlette_app.py").write_text(STARLETTE_APP.format(upstream=upstream))
    log = d / "uvicorn.log"
    proc = spawn(
        [sys.executable, "-m", "uvicorn", "starlette_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        log,
        cwd=d,
    )  # fmt: skip
    wait_port(port, proc, log)
    return Engine("starlette", f"http://127.0.0.1:{port}", [proc])


def start_proxy(cfg_path: Path, upstream: str, work: Path) -> Engine:
    log = work / "proxy.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [*proxy_command(), "--config", str(cfg_path), "--listen", "127.0.0.1:0",
             "--upstream", upstream],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on http://"):
        proc.kill()
        pytest.fail(f"no startup line: {line!r} {log.read_text()[-2000:]}")
    return Engine("cors-proxy", line.split()[2], [proc])


def cfg_at(cfg: Config, port: int) -> Config:
    return replace(cfg, listen_host="127.0.0.1", listen_port=port)


@contextlib.contextmanager
def engines(cfg_path: Path, upstream: str, work: Path) -> Iterator[dict[str, Engine]]:
    """cors-proxy and the four targets, each in front of ``upstream``."""
    cfg = replace(load(str(cfg_path)), upstream=upstream)
    source = cfg_path.name
    started: dict[str, Engine] = {}
    try:
        started["cors-proxy"] = start_proxy(cfg_path, upstream, work)
        started["nginx"] = start_nginx(cfg, source, work)
        started["caddy"] = start_caddy(cfg, source, work)
        started["flask-cors"] = start_flask_cors(cfg, source, work)
        started["starlette"] = start_starlette(cfg, source, work, upstream)
        yield started
    finally:
        for engine in started.values():
            engine.stop()
