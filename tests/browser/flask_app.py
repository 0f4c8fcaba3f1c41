"""The Flask app behind the proxy in the browser tests (served by Werkzeug, as `flask run`).

Every request that reaches the WSGI server is recorded (method, path, headers), so a
test can prove what the browser's traffic did or did not reach: a preflight answered by
the proxy never shows up here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, redirect, request, url_for
from werkzeug.debug import DebuggedApplication
from werkzeug.wrappers import Response as WerkzeugResponse

SESSION_COOKIE = "s3cret-session"
SSE_GAP = 0.4  # seconds between the first two server-sent events


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class AppState:
    """What the app saw, and the gates that hold server-sent events back."""

    hits: list[Hit] = field(default_factory=list)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, environ: dict[str, Any]) -> None:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        with self.lock:
            self.hits.append(Hit(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers))

    def hits_for(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def gate(self, token: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(token, threading.Event())


def create_app(state: AppState) -> Flask:
    app = Flask("browser_upstream")

    @app.get("/api/hello")
    def hello() -> Response:
        resp = jsonify(hello="browser", host=request.host)
        resp.headers["X-Request-Id"] = "req-42"  # exposed by the proxy's rule
        resp.headers["X-Secret"] = "hidden"  # not exposed: scripts must not see it
        return resp

    @app.get("/api/login")
    def login() -> Response:
        resp = jsonify(logged_in=True)
        resp.set_cookie("session", SESSION_COOKIE, httponly=True, samesite="Lax")
        return resp

    @app.route("/api/items/<item>", methods=["PUT", "PATCH", "DELETE"])
    def item(item: str) -> Response:
        return jsonify(
            method=request.method,
            item=item,
            body=request.get_json(silent=True),
            authorization=request.headers.get("Authorization"),
            custom=request.headers.get("X-Custom"),
            session=request.cookies.get("session"),
            origin=request.headers.get("Origin"),
        )

    @app.get("/api/divide")
    def divide_view() -> Response:
        return jsonify(result=1 / 0)  # ZeroDivisionError: the line the proxy must name

    @app.get("/api/go")
    def go() -> WerkzeugResponse:
        return redirect(url_for("hello", _external=True))

    @app.get("/api/events")
    def events() -> Response:
        gate = state.gate(request.args["token"])

        def stream() -> Iterator[str]:
            yield "retry: 60000\n\n"  # no quick reconnect once the stream ends
            yield "data: first\n\n"
            time.sleep(SSE_GAP)
            yield "data: second\n\n"
            # The test opens the gate only after the browser has shown both events.
            gate.wait(20)
            yield "data: last\n\n"

        return Response(
            stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    # flask-cors style: an app that already answers with its own `*` CORS headers.
    @app.get("/own/data")
    def own_data() -> Response:
        return jsonify(own=True)

    @app.after_request
    def own_cors(resp: Response) -> Response:
        if request.path.startswith("/own/"):
            resp.headers["Access-Control-Allow-Origin"] = "*"
            resp.headers["Access-Control-Allow-Headers"] = "*"
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        return resp

    return app


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_wsgi(state: AppState, *, debug: bool) -> WSGIApp:
    """The app as `flask run` serves it; with ``debug`` as `flask run --debug` does."""
    app = create_app(state)
    wsgi: WSGIApp = app
    if debug:
        app.debug = True
        wsgi = DebuggedApplication(app, evalex=True)
    else:
        # The traceback goes to the "Flask console"; keep it out of the test output.
        app.logger.disabled = True

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        state.record(environ)
        return wsgi(environ, start_response)

    return recording
