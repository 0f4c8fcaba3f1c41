"""Secrets never reach the inspector page (pure).

Cookie, Authorization and Set-Cookie values are masked, and so is any field whose name
says it carries a secret (``X-Api-Key``, ``X-Auth-Token``, ``X-CSRF-Token``, ...) and any
query parameter with such a name (``?token=...``). What stays is what debugging CORS
needs: cookie names and their attributes, the auth scheme, the lengths.
"""

from __future__ import annotations

import re

MASK = "••••••"
_SECRET_NAME = re.compile(
    r"cookie|authorization|auth|token|secret|passw|api[-_]?key|session|signature|credential"
    r"|private[-_]?key",
    re.IGNORECASE,
)
# Fields whose name matches but that carry nothing secret.
_NOT_SECRET = frozenset(
    {"access-control-allow-credentials", "access-control-request-headers", "cookie2"}
)
# A query parameter (or a cookie-like pair in a URL) with a secret-looking name. Also
# ``code``, ``key`` and ``sig``: OAuth codes, API keys and signed URLs.
_QUERY_SECRET = re.compile(
    r"(?P<lead>[?&;](?P<name>[^=&#\s'\"?;]*?(?:token|secret|passw|api[-_]?key|auth|session"
    r"|signature|credential|code|key|sig)[^=&#\s'\"?;]*)=)(?P<value>[^&#\s'\";]+)",
    re.IGNORECASE,
)


def is_secret(name: str) -> bool:
    low = name.lower()
    return low not in _NOT_SECRET and _SECRET_NAME.search(low) is not None


def mask_value(name: str, value: str) -> str:
    """The value shown for field ``name``; unchanged unless the field is a secret."""
    low = name.lower()
    if low == "cookie":
        return "; ".join(_mask_pair(part) for part in value.split(";"))
    if low == "set-cookie":
        first, sep, attributes = value.partition(";")
        return _mask_pair(first) + (sep + attributes if sep else "")
    if low in ("authorization", "proxy-authorization"):
        scheme, space, credentials = value.strip().partition(" ")
        if space and credentials:
            return f"{scheme} {MASK} ({len(credentials)} characters)"
        return f"{MASK} ({len(value)} characters)"
    if is_secret(low):
        return f"{MASK} ({len(value)} characters)"
    return mask_query(value) if "=" in value else value


def _mask_pair(part: str) -> str:
    name, eq, value = part.strip().partition("=")
    if not eq:
        return MASK if name else ""
    return f"{name}={MASK}" if value else f"{name}="


def mask_query(text: str) -> str:
    """Secret-looking query parameters in ``text`` (a path, a URL, a message) masked."""
    if "=" not in text:
        return text
    return _QUERY_SECRET.sub(lambda m: m.group("lead") + MASK, text)


def curl_value(name: str, value: str) -> str:
    """What a reproduction puts in place of a secret: a placeholder to fill in."""
    return f"<your {name.lower()}>" if is_secret(name) else mask_query(value)
