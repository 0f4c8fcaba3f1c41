"""Origins: validating request origins, normalizing configured ones, one-label globs (pure).

A request's ``Origin`` is never normalized: browsers send the ASCII serialization
(lower-case scheme and host, punycode, no default port, no trailing slash), and the
CORS check compares ``Access-Control-Allow-Origin`` with it byte for byte
(Fetch §4.10, CORS.md §3.1). Only configured values are normalized, at load time.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_SERIALIZED = re.compile(r"(https?)://(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::([1-9][0-9]{0,4}))?")


def is_serialized_origin(origin: str) -> bool:
    """True when ``origin`` is exactly what a browser could send for an http(s) page.

    Only such values are ever reflected into ``Access-Control-Allow-Origin``; anything
    else (``ftp://x``, ``http://a..b``, ``http://.test``, ``http://x:80``) is "not allowed".
    """
    m = _SERIALIZED.fullmatch(origin)
    if m is None:
        return False
    scheme, host, port = m.groups()
    if port is not None and (int(port) > 65535 or int(port) == DEFAULT_PORTS[scheme]):
        return False
    return _valid_host(host)


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            addr = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        # Browsers serialize IPv6 in RFC 5952 form; anything else never comes from one.
        return f"[{addr.compressed}]" == host and addr.ipv4_mapped is None
    if _IPV4.fullmatch(host):
        return all(int(part) <= 255 for part in host.split("."))
    if host.replace(".", "").isdigit():
        return False  # "1.2.3" or "01.2.3.4": a browser would have rewritten it
    return len(host) <= 253 and _DOMAIN.fullmatch(host) is not None


@dataclass(frozen=True)
class Normalized:
    value: str
    changed: bool


def normalize_origin(raw: str) -> Normalized:
    """Normalize a configured origin or one-label glob; raise ``ValueError`` with a reason.

    Lower-cases scheme and host, converts IDNs to punycode, drops a default port and a
    trailing ``/``. ``*`` and ``null`` pass through unchanged.
    """
    value = raw.strip()
    if value in ("*", "null"):
        return Normalized(value, value != raw)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not an origin ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("an origin is scheme://host[:port] with scheme http or https")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an origin has no user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value:
        raise ValueError("an origin has no path, query or fragment (browsers send none)")
    host = parts.hostname or ""
    if not host:
        raise ValueError("an origin needs a host")
    if ":" in host:
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}") from None
    else:
        host = _to_ascii(host)
    out = f"{scheme}://{host}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        out += f":{port}"
    check = out.replace("*", "x") if "*" in host else out
    if not is_serialized_origin(check):
        raise ValueError("not a valid origin (bad host or port)")
    return Normalized(out, out != raw)


def _to_ascii(host: str) -> str:
    labels = host.lower().split(".")
    out = []
    for label in labels:
        if label == "*" or label.isascii():
            out.append(label)
            continue
        try:
            out.append(label.encode("idna").decode("ascii"))
        except UnicodeError:
            raise ValueError(f"host label {label!r} cannot be converted to punycode") from None
    return ".".join(out)


def is_glob(origin: str) -> bool:
    return "*" in origin and origin != "*"


def compile_glob(origin: str) -> re.Pattern[str]:
    """``https://*.example.com`` -> a pattern where each ``*`` label is exactly one DNS label."""
    scheme, _, rest = origin.partition("://")
    host, _, port = rest.partition(":")
    if any("*" in label and label != "*" for label in host.split(".")) or "*" in port:
        raise ValueError("'*' must be a whole host label, as in https://*.example.com")
    host_re = r"\.".join(_LABEL if label == "*" else re.escape(label) for label in host.split("."))
    port_re = f":{re.escape(port)}" if port else ""
    return re.compile(f"{re.escape(scheme)}://{host_re}{port_re}")
