"""Origins: validating request origins, normalizing configured ones, one-label globs (pure).

A request's ``Origin`` is never normalized: browsers send the ASCII serialization
(lower-case scheme and host, punycode, no default port, no trailing slash), and the
CORS check compares ``Access-Control-Allow-Origin`` with it byte for byte
(docs/cors-notes.md §1). Only configured values are normalized, at load time.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from proxy.policy.fetch import DEFAULT_PORTS

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_IPV6_CHARS = frozenset("0123456789abcdef:.")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Origin:
    """``scheme://host[:port]`` split as written: the project's one origin parser.

    Nothing is normalized or validated here beyond the split itself, so each caller keeps
    its own strictness: a request's ``Origin`` is checked by ``is_serialized``, a
    configured one normalized by ``normalize_origin``, and the near-miss hints compare the
    parts as the page wrote them.
    """

    scheme: str  # as written
    host: str  # as written (case kept); an IPv6 address keeps its brackets
    port: int | None  # as written (any number of digits); None when absent or empty
    rest: str = ""  # whatever follows the authority ("/", "/path", "?q", "#f")
    userinfo: str | None = None  # "user:pass" before an "@"; never in a real origin

    @classmethod
    def split(cls, text: str) -> Origin:
        """Split ``text``; raise ``ValueError`` with the reason when it has no
        ``scheme://host`` shape or its port is not a number."""
        scheme, sep, after = text.partition("://")
        if not sep or not scheme:
            raise ValueError("an origin is scheme://host[:port] with scheme http or https")
        cut = len(after)
        for ch in "/?#":
            i = after.find(ch, 0, cut)
            if i >= 0:
                cut = i
        authority, rest = after[:cut], after[cut:]
        userinfo = None
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
        if authority.startswith("["):
            end = authority.find("]")
            if end < 0:
                raise ValueError("an IPv6 host needs its closing ']'")
            host, tail = authority[: end + 1], authority[end + 1 :]
            if tail and not tail.startswith(":"):
                raise ValueError(f"{tail!r} after the IPv6 host is not a port")
            port_text = tail[1:]
        else:
            host, _, port_text = authority.partition(":")
        if not host:
            raise ValueError("an origin needs a host")
        port = None
        if port_text:
            if not (port_text.isascii() and port_text.isdigit()):
                raise ValueError(f"the port {port_text!r} is not a number")
            port = int(port_text)
        return cls(scheme, host, port, rest, userinfo)

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        """``split``, or None instead of the reason."""
        try:
            return cls.split(text)
        except ValueError:
            return None

    @property
    def default_port(self) -> int | None:
        return DEFAULT_PORTS.get(self.scheme.lower())

    @property
    def effective_port(self) -> int | None:
        """The port a connection goes to: the written one, else the scheme's default."""
        return self.port if self.port is not None else self.default_port

    @property
    def written_port(self) -> int | None:
        """The port as a serialized origin shows it: None for the scheme's default."""
        return None if self.port == self.default_port else self.port

    @property
    def bare_host(self) -> str:
        """Lower-case, an IPv6 address without its brackets (what a socket takes)."""
        return self.host.lower().strip("[]")

    @property
    def written(self) -> str:
        """Scheme, host and port exactly as written (no userinfo, no rest)."""
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"

    @property
    def serialized(self) -> str:
        """What a browser would send: lower-case scheme and host, no default port."""
        port = self.written_port
        return f"{self.scheme.lower()}://{self.host.lower()}" + ("" if port is None else f":{port}")

    @property
    def port_in_range(self) -> bool:
        return self.port is None or 0 < self.port <= _MAX_PORT

    def is_serialized(self, text: str) -> bool:
        """True when ``text`` (what this was split from) is exactly what a browser could
        send for an http(s) page."""
        return (
            self.userinfo is None
            and not self.rest
            and self.scheme in DEFAULT_PORTS
            and self.port_in_range
            and self.serialized == text
            and _valid_host(self.host)
        )


def is_serialized_origin(origin: str) -> bool:
    """True when ``origin`` is exactly what a browser could send for an http(s) page.

    Only such values are ever reflected into ``Access-Control-Allow-Origin``; anything
    else (``ftp://x``, ``http://a..b``, ``http://.test``, ``http://x:80``) is "not allowed".
    """
    parsed = Origin.parse(origin)
    return parsed is not None and parsed.is_serialized(origin)


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        inner = host[1:-1]
        if not _IPV6_CHARS.issuperset(inner):
            return False  # upper case, a zone id ("%eth0"): never from a browser
        try:
            addr = ipaddress.IPv6Address(inner)
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
    parts = Origin.split(value)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("an origin is scheme://host[:port] with scheme http or https")
    if parts.userinfo is not None:
        raise ValueError("an origin has no user name or password")
    if parts.rest not in ("", "/"):
        raise ValueError("an origin has no path, query or fragment (browsers send none)")
    if not parts.port_in_range:
        raise ValueError(f"not an origin (port {parts.port} is out of range 1-{_MAX_PORT})")
    if parts.host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(parts.host[1:-1]).compressed}]"
        except ValueError:
            raise ValueError(f"invalid IPv6 address {parts.host[1:-1]!r}") from None
    else:
        host = _to_ascii(parts.host)
    out = f"{scheme}://{host}"
    if parts.written_port is not None:
        out += f":{parts.port}"
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
    parts = Origin.parse(origin)
    labels = parts.host.split(".") if parts is not None else []
    if parts is None or any("*" in label and label != "*" for label in labels):
        raise ValueError("'*' must be a whole host label, as in https://*.example.com")
    host_re = r"\.".join(_LABEL if label == "*" else re.escape(label) for label in labels)
    port_re = "" if parts.port is None else f":{parts.port}"
    return re.compile(f"{re.escape(parts.scheme)}://{host_re}{port_re}{re.escape(parts.rest)}")
