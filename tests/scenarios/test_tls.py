"""HTTPS upstreams (issue 17 item 3): a real Flask on TLS, with a CA made in the test (as
mkcert or a company would) and with ``flask run --cert adhoc``'s self-signed certificate.
A TLS failure is a 502 that names the cause and the ``upstream_tls`` option that fixes it,
and it is never retried for ``upstream_wait``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from werkzeug.serving import ThreadedWSGIServer

from proxy.config.loader import load
from proxy.config.model import describe
from tests.support import ORIGIN, ROOT
from tests.support.cli import Proc, get
from tests.support.proxy import MakeProxy, write_yaml
from tests.support.tls import ServerCert, make_certs
from tests.support.upstream_app import create_app


class CountingServer(ThreadedWSGIServer):
    """Werkzeug's server (what ``flask run`` runs) that counts connection attempts: its
    listening socket does the TLS handshake in ``get_request``, failed ones included."""

    attempts = 0

    def get_request(self) -> Any:
        self.attempts += 1
        return super().get_request()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(names, ips)``: Flask on TLS on 127.0.0.1 with a certificate for those names,
    signed by a CA of its own; gives the server and the certificate files."""
    servers: list[CountingServer] = []

    def start(
        names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)
    ) -> tuple[CountingServer, ServerCert]:
        certs = make_certs(tmp_path, names=names, ips=ips)
        server = CountingServer(
            "127.0.0.1", 0, create_app(), ssl_context=(str(certs.cert), str(certs.key))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, certs

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Origin": ORIGIN}) as r:
        return r.status, dict(r.headers), await r.read()


async def test_a_ca_file_is_trusted(make_proxy: MakeProxy, serve: Any) -> None:
    server, certs = serve()
    p = await make_proxy(
        f"https://127.0.0.1:{server.server_port}", upstream_tls={"ca_file": str(certs.ca)}
    )
    status, headers, body = await fetch(p.url + "/api/hello")
    assert status == 200, body
    assert json.loads(body) == {"hello": "world"}
    assert headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_an_unknown_ca_is_a_502_that_says_which_option_fixes_it(
    make_proxy: MakeProxy, serve: Any
) -> None:
    server, _ = serve()
    p = await make_proxy(f"https://127.0.0.1:{server.server_port}", upstream_wait=5)
    status, headers, body = await fetch(p.url + "/api/hello")
    assert status == 502
    assert headers["X-Cors-Proxy-Error"] == "TLS certificate rejected"
    assert headers["Access-Control-Allow-Origin"] == ORIGIN  # the page sees the 502
    detail = json.loads(body)["detail"]
    assert "signed by a CA this machine does not trust" in detail
    assert "upstream_tls.ca_file" in detail
    assert "upstream_tls.verify: false" in detail
    assert server.attempts == 1  # never retried for upstream_wait: waiting changes nothing


async def test_a_certificate_for_another_name(make_proxy: MakeProxy, serve: Any) -> None:
    server, certs = serve(names=("localhost",), ips=())
    tls = {"ca_file": str(certs.ca)}
    p = await make_proxy(f"https://127.0.0.1:{server.server_port}", upstream_tls=tls)
    status, headers, body = await fetch(p.url + "/api/hello")
    assert status == 502
    assert headers["X-Cors-Proxy-Error"] == "TLS certificate rejected"
    detail = json.loads(body)["detail"]
    assert "is not valid for the name '127.0.0.1'" in detail
    assert "use a name it lists in upstream" in detail
    assert server.attempts == 1
    # The name it was made for works (localhost resolves to 127.0.0.1 here, maybe ::1 first).
    p = await make_proxy(f"https://localhost:{server.server_port}", upstream_tls=tls)
    assert (await fetch(p.url + "/api/hello"))[0] == 200


async def test_verify_false_skips_the_check(make_proxy: MakeProxy, serve: Any) -> None:
    server, _ = serve()
    p = await make_proxy(f"https://127.0.0.1:{server.server_port}", upstream_tls={"verify": False})
    assert (await fetch(p.url + "/api/hello"))[0] == 200


async def test_a_plain_http_server_behind_an_https_url(
    make_proxy: MakeProxy, upstream: Any
) -> None:
    p = await make_proxy(upstream.url.replace("http://", "https://"))
    status, headers, body = await fetch(p.url + "/api/hello")
    assert status == 502
    assert headers["X-Cors-Proxy-Error"] == "TLS handshake failed"
    assert "if the dev server there speaks plain HTTP, use http://" in json.loads(body)["detail"]


async def test_websockets_to_a_wss_upstream_trust_the_ca_file(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    import ssl

    certs = make_certs(tmp_path, ips=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/api/ws", echo)
    server = await aiohttp_server(app, ssl=context)
    p = await make_proxy(
        f"https://127.0.0.1:{server.port}", upstream_tls={"ca_file": str(certs.ca)}
    )
    async with aiohttp.ClientSession() as s, s.ws_connect(p.url + "/api/ws", origin=ORIGIN) as ws:
        await ws.send_str("over wss")
        assert (await ws.receive(timeout=5)).data == "over wss"


@pytest.fixture
def adhoc() -> Iterator[str]:
    """``flask run --cert adhoc``: a real Flask process with a self-signed certificate
    made at startup (Werkzeug makes it with the cryptography package)."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "flask", "--app", "tests.support.upstream_app:create_app()"),
            *("run", "--cert", "adhoc", "--port", "0"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            found = re.search(r"Running on (https://127\.0\.0\.1:\d+)", line)
            if found:
                break
        else:
            pytest.fail("flask run --cert adhoc did not start")
        drain = threading.Thread(target=proc.stderr.read, daemon=True)
        drain.start()
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


def test_flask_run_cert_adhoc(adhoc: str, tmp_path: Path) -> None:
    """The proxy as users run it: the self-signed certificate is refused with a reason,
    and accepted with ``verify: false``, which the startup warns about."""
    strict = write_yaml(tmp_path / "strict.yaml", {"upstream": adhoc, "listen": "127.0.0.1:0"})
    proxy = Proc("--config", strict, "--origin", ORIGIN)
    try:
        status, headers, body = get(proxy.url + "/api/hello", {"Origin": ORIGIN})
    finally:
        proxy.stop()
    assert status == 502
    assert headers["X-Cors-Proxy-Error"] == "TLS certificate rejected"
    assert "sent a self-signed certificate" in json.loads(body)["detail"]

    config = {"upstream": adhoc, "listen": "127.0.0.1:0", "upstream_tls": {"verify": False}}
    lax = write_yaml(tmp_path / "lax.yaml", config)
    proxy = Proc("--config", lax, "--origin", ORIGIN)
    try:
        status, headers, body = get(proxy.url + "/api/hello", {"Origin": ORIGIN})
    finally:
        _, err = proxy.stop()
    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert (
        "config warning: upstream_tls.verify: false: the upstream's certificate is not checked"
        in err
    )


def test_check_shows_upstream_tls(tmp_path: Path, serve: Any) -> None:
    _, certs = serve()
    config = {"upstream": "https://api.example.test", "upstream_tls": {"ca_file": "rootCA.pem"}}
    cfg = load(write_yaml(tmp_path / "c.yaml", config))  # relative to the config's folder
    assert cfg.upstream_tls.ca_file == str(certs.ca)
    assert f"upstream_tls: verify true, trusting the system's CAs and {certs.ca}" in describe(cfg)
