"""A Flask dev server that tests run as the proxy's child (``python app.py`` on a copy).

Environment: PORT (default 0: a free port, printed in Werkzeug's startup line), DEBUG,
START_DELAY (seconds before it listens), IGNORE_SIGINT, IGNORE_SIGTERM, CRASH (a missing
import at startup).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/api/ok")
def ok() -> dict[str, bool]:
    return {"ok": True}


@app.get("/api/boom")
def boom() -> str:
    return str(1 / 0)  # BOOM-LINE


@app.get("/api/keyerror")
def keyerror() -> str:
    time.sleep(float(request.args.get("s", "0")))
    known: dict[str, str] = {}
    return known["missing"]  # KEYERROR-LINE


@app.get("/api/slow")
def slow() -> dict[str, float]:
    seconds = float(request.args.get("s", "1"))
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/api/exit")
def exit_now() -> str:
    os._exit(3)


@app.get("/api/stream")
def stream() -> Response:
    def events() -> Iterator[str]:
        n = 0
        while True:
            yield f"data: {n}\n\n"
            n += 1
            time.sleep(0.1)

    return Response(events(), mimetype="text/event-stream")


if __name__ == "__main__":
    if os.environ.get("IGNORE_SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("CRASH"):
        import flask_sqlalchemy  # type: ignore[import-not-found]  # noqa: F401
    time.sleep(float(os.environ.get("START_DELAY", "0")))
    app.run(port=int(os.environ.get("PORT", "0")), debug=bool(os.environ.get("DEBUG")))
