"""What the two floors (aiohttp_floor.py, httptools_floor.py) share: their command line,
the event loop cors-proxy runs on, and the fixed CORS fields nginx-cors's config sends."""

from __future__ import annotations

import sys


def command_line() -> tuple[int, str, str]:
    """PORT UPSTREAM_URL ORIGIN."""
    return int(sys.argv[1]), sys.argv[2], sys.argv[3]


def use_uvloop() -> None:
    """The same event loop as cors-proxy when it is installed."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def cors_fields(origin: str) -> list[tuple[str, str]]:
    """nginx-cors's fields on an answer."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]


def preflight_fields(origin: str) -> list[tuple[str, str]]:
    """nginx-cors's fields on a preflight's 204 (Access-Control-Allow-Headers: the
    requested ones, added per request)."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
        ("Access-Control-Max-Age", "600"),
        ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    ]
