"""Realistic benchmark upstream: a Flask app on Werkzeug's development server.

Serves the same two resources as the nginx upstream:
  GET /api/hello  -> small fixed JSON body
  GET /big        -> a large file (send_file, read in Werkzeug's default blocks)
  GET /huge       -> a very large file (the slow-client memory check)

Usage: python flask_app.py --port 18090 --big PATH --huge PATH [--body JSON] [--quiet]
"""

from __future__ import annotations

import argparse
import logging

from flask import Flask, Response, send_file


def create_app(big_path: str, huge_path: str, body: str) -> Flask:
    app = Flask(__name__)
    payload = body.encode()

    @app.get("/api/hello")
    def hello() -> Response:
        return Response(payload, mimetype="application/json")

    @app.get("/big")
    def big() -> Response:
        return send_file(big_path, mimetype="application/octet-stream", conditional=False)

    @app.get("/huge")
    def huge() -> Response:
        return send_file(huge_path, mimetype="application/octet-stream", conditional=False)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--big", required=True, help="file served at /big")
    parser.add_argument("--huge", required=True, help="file served at /huge")
    parser.add_argument("--body", default='{"hello":"world","n":42}\n')
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    args = parser.parse_args()
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # threaded=True (Flask's default) also makes Werkzeug speak HTTP/1.1 with keep-alive.
    create_app(args.big, args.huge, args.body).run(
        host=args.host, port=args.port, threaded=True, debug=False, use_reloader=False
    )


if __name__ == "__main__":
    main()
