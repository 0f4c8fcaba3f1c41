"""A real Flask app used as the upstream in integration tests (run under Werkzeug)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, make_response, redirect, request, stream_with_context, url_for
from werkzeug.debug import DebuggedApplication
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, make_server
from werkzeug.wrappers import Response as WResponse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

GZ_BODY = gzip.compress(b'{"compressed": true}' * 50)


def create_app(hits: list[str] | None = None) -> Flask:
    app = Flask("upstream")
    seen = hits if hits is not None else []

    @app.before_request
    def record() -> None:
        seen.append(f"{request.method} {request.full_path.rstrip('?')}")

    @app.route("/api/hello", methods=["GET", "HEAD"])
    def hello() -> Response:
        resp = make_response({"hello": "world"})
        resp.headers["X-Request-Id"] = "req-1"
        resp.headers["X-Secret"] = "hidden"
        resp.set_cookie("a", "1")
        resp.set_cookie("b", "2", samesite="Lax")
        return resp

    @app.route("/api/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "patch"])
    def echo() -> Response:
        data = request.get_data()
        return make_response(
            {
                "method": request.method,
                "uri": request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI"),
                "headers": [[k, v] for k, v in request.headers.items()],
                "length": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )

    @app.route("/api/raw/<path:rest>")
    def raw(rest: str) -> Response:
        return make_response(
            {
                "uri": request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI"),
                "path": request.path,
            }
        )

    @app.get("/api/boom")
    def boom() -> Response:
        return undefined_name  # type: ignore[name-defined,no-any-return]  # noqa: F821 - NameError on purpose

    @app.get("/api/redirect")
    def go() -> WResponse:
        return redirect(url_for("hello", _external=True))

    @app.get("/api/items/")
    def items() -> Response:
        return make_response({"items": []})

    @app.get("/api/slow")
    def slow() -> Response:
        time.sleep(float(request.args.get("s", "1")))
        return make_response({"slow": True})

    @app.get("/api/etag")
    def etag() -> WResponse:
        resp = make_response("v1")
        resp.set_etag("v1")
        return resp.make_conditional(request)

    @app.get("/api/sse")
    def sse() -> Response:
        gap = float(request.args.get("gap", "0.3"))

        def events() -> Iterator[str]:
            for i in range(3):
                yield f"data: event {i} at {time.monotonic()}\n\n"
                time.sleep(gap)

        return Response(stream_with_context(events()), mimetype="text/event-stream")

    @app.get("/api/big")
    def big() -> Response:
        n = int(request.args.get("n", str(1 << 20)))
        block = b"x" * 65536

        def body() -> Iterator[bytes]:
            left = n
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)

        return Response(
            body(), mimetype="application/octet-stream", headers={"Content-Length": str(n)}
        )

    @app.get("/api/gzip")
    def gz() -> Response:
        return Response(
            GZ_BODY,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                "Vary": "Accept-Encoding",
            },
        )

    @app.get("/api/own-cors")
    def own_cors() -> Response:
        resp = make_response({"own": True})
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.headers["Access-Control-Allow-Headers"] = "*"
        return resp

    @app.get("/api/status/<int:code>")
    def status(code: int) -> Response:
        resp = make_response({"error": f"status {code}"}, code)
        if request.args.get("own_cors"):  # an app with some CORS of its own, but no ACAO
            resp.headers["Access-Control-Allow-Headers"] = request.args["own_cors"]
        return resp

    return app


@dataclass
class Upstream:
    server: BaseWSGIServer
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.server.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_upstream(
    *,
    debug: bool = False,
    port: int = 0,
    host: str = "127.0.0.1",
    ssl_context: tuple[str, str] | None = None,
) -> Upstream:
    """Serve the app with Werkzeug's own threaded server, as `flask run` does
    (``ssl_context``: a certificate and key file, as ``flask run --cert --key``)."""
    hits: list[str] = []
    app = create_app(hits)
    wsgi = app
    if debug:
        app.debug = True
        wsgi = DebuggedApplication(app, evalex=True)  # type: ignore[assignment]
    server = make_server(host, port, wsgi, threaded=True, ssl_context=ssl_context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Upstream(server, hits)


class _TrackingServer(ThreadedWSGIServer):
    """Werkzeug's threaded server that remembers its accepted sockets, so a restart can
    drop them the way a dying reloader child does."""

    def __init__(self, host: str, port: int, app: WSGIApplication) -> None:
        super().__init__(host, port, app)
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)


class ReloadingUpstream:
    """The Flask app under Werkzeug, restartable on the same port as ``flask run
    --reload`` does after each save: the port refuses connections for a moment and every
    keep-alive connection dies. ``restart`` waits for requests inside the app to finish
    first (a save lands between requests), so any failure seen through the proxy is the
    proxy's, not a request the dying server was still answering."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.generation = 0
        self._busy = 0
        self._cond = threading.Condition()
        self.server = self._serve(0)
        self.port = self.server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> WSGIApplication:
        flask_app = create_app(self.hits)
        cond = self._cond

        def counted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            with cond:
                self._busy += 1
            try:
                result = flask_app(environ, start_response)
                try:
                    body = list(result)
                finally:
                    getattr(result, "close", lambda: None)()
            except BaseException:
                self._done()
                raise
            return _Closing(body, self._done)

        return counted

    def _done(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def _serve(self, port: int) -> _TrackingServer:
        server = _TrackingServer("127.0.0.1", port, self._app())
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self.generation += 1
        return server

    def stop(self) -> None:
        """The reloader child exits: no more accepts, open connections closed."""
        old = self.server
        with contextlib.suppress(OSError):
            old.socket.shutdown(socket.SHUT_RDWR)  # from here on connects are refused
        old.shutdown()
        old.server_close()
        with self._cond:
            self._cond.wait_for(lambda: self._busy == 0, timeout=5)
            with old.conns_lock:
                for sock in list(old.conns):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def restart(self, gap: float = 0.5) -> None:
        self.stop()
        time.sleep(gap)  # the new child imports the app
        self.server = self._serve(self.port)


class _Closing:
    """A WSGI body whose ``close`` reports that the response went out."""

    def __init__(self, body: list[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        self.done()
