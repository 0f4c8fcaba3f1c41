"""A request's target and HTTP version: what the proxy forwards, or why it refuses (pure).

RFC 9112 3.2 knows four forms of request target. A reverse proxy forwards one:

- origin-form (``/path?query``): as it is;
- absolute-form (``http://host:port/path?query``), which clients send to forward
  proxies: forwarded in origin-form, and its authority is the request's host, in place of
  ``Host`` (RFC 9112 3.2.2; nginx's ``$host`` takes the request line's host first). It
  never reaches the upstream as written, where Werkzeug would take its host over the one
  ``host_header: upstream`` set;
- authority-form (``host:port``) is only for ``CONNECT``, and ``CONNECT`` asks for a
  tunnel, which a reverse proxy does not make: 405, as nginx answers;
- asterisk-form (``*``) is only for ``OPTIONS *``, a question about the server, not about
  a resource the upstream has: 400, as nginx answers.

HTTP/0.9 (a request line without a version, answered without a status line) is refused
with 400, and a major version above 1 with 505.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, NamedTuple

from proxy.policy.origins import Origin

# RFC 3986 reg-name (unreserved, sub-delims, percent-encoded) or an IPv4 address
_REG_NAME: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_MAX_PORT: Final = 65535


class Target(NamedTuple):
    """What is forwarded: the target in origin-form, and the host the request names
    (the absolute-form's authority; None: the ``Host`` field's, unchanged)."""

    path: str
    host: str | None = None


class Refusal(NamedTuple):
    """The proxy's own answer instead of forwarding: status and the reason (one line)."""

    status: int
    reason: str


def request_target(method: str, target: str) -> Target | Refusal:
    """What ``method target`` forwards, or why the proxy refuses it."""
    if method == "CONNECT":
        return Refusal(405, "CONNECT asks for a tunnel; cors-proxy is a reverse proxy")
    if target.startswith("/"):
        return Target(target)
    if target == "*":
        return Refusal(400, f"{method} * asks about the server itself: nothing to forward")
    try:
        parts = Origin.split(target)
    except ValueError:
        return Refusal(400, "the request target is neither a path nor an http(s):// URL")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return Refusal(400, f"the request target's scheme {parts.scheme!r} is not http(s)")
    if parts.userinfo is not None:
        return Refusal(400, "the request target carries a user name (RFC 9110 4.2.4)")
    if not _valid_host(parts.host) or not (parts.port is None or 0 < parts.port <= _MAX_PORT):
        return Refusal(400, "the request target's host or port is not valid")
    rest = parts.rest.partition("#")[0]  # a fragment is never sent; never forwarded
    if not rest.startswith("/"):
        rest = "/" + rest  # "http://host" and "http://host?q": the path is "/"
    written = "" if parts.port is None else f":{parts.port}"
    return Target(rest, parts.host + written)


def version_refusal(major: int, minor: int) -> Refusal | None:
    """The answer to a request line of HTTP ``major.minor`` when the proxy refuses it."""
    if major == 0:
        return Refusal(400, f"HTTP/{major}.{minor} requests are not served (HTTP/1.0 or 1.1)")
    if major > 1:
        return Refusal(505, f"HTTP/{major}.{minor} in a request line: cors-proxy speaks HTTP/1.1")
    return None


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return host.endswith("]")
    return _REG_NAME.fullmatch(host) is not None
