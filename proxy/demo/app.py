"""The demo's dev server: a small Flask app that ``cors-proxy demo`` runs as its child,
with Flask's debug mode off (so the 500 page says nothing and the traceback only goes to
the console: the proxy joins it to the exchange's line)."""

from __future__ import annotations

import os
import socket

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.put("/api/profile")
def save_profile() -> Response:
    """A credentialed PUT that works: JSON in, a cookie set and sent back next time."""
    data = request.get_json(silent=True) or {}
    saves = int(request.cookies.get("demo_saves", "0") or 0)
    resp = jsonify(saved=str(data.get("name", "")), saves=saves + 1, cookie_came_back=saves > 0)
    resp.set_cookie("demo_saves", str(saves + 1), httponly=True, samesite="Lax")
    return resp


@app.get("/api/items")
def items() -> Response:
    """Never reached from the page: its preflight asks for a header the rules refuse."""
    return jsonify(items=["tea", "cake"])


@app.get("/api/cart/total")
def cart_total() -> Response:
    """A view that raises: the average price of an empty cart."""
    prices: list[float] = []
    return jsonify(average=sum(prices) / len(prices))


@app.post("/api/orders")
def orders() -> Response:
    """A dead endpoint: the server hangs up without an answer."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        sock.shutdown(socket.SHUT_RDWR)
    return jsonify(ok=True)  # never arrives


if __name__ == "__main__":
    port = int(os.environ.get("DEMO_APP_PORT", "0"))  # 0: a free port, in its startup line
    app.run(host="127.0.0.1", port=port, debug=False)
