"""Near-miss origin hints: "not allowed, but you probably meant ..." (pure).

A request ``Origin`` is compared byte for byte (docs/cors-notes.md §1), so one character off
means "not allowed". When an origin is refused, ``near_misses`` looks for configured
entries that differ from it in one typical way and says how.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from proxy.policy.origins import Origin, compile_glob, is_glob

_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _loopback(host: str) -> bool:
    return host.lower() in _LOOPBACK


def near_misses(origin: str, configured: Sequence[str]) -> list[str]:
    """Messages for configured entries that ``origin`` almost matches.

    ``configured`` holds normalized origins, ``*``, ``null`` and one-label globs
    (``https://*.example.com``). Returns ``[]`` when the origin is allowed by an exact
    entry or when nothing is close.
    """
    if origin in configured or "*" in configured:
        return []
    if origin == "null":
        return [
            "Origin null is not allowed; browsers send null from sandboxed iframes, file://"
            ' and data: pages and after a cross-origin redirect. List "null" only if you'
            " must: any site can produce it"
        ]
    req = Origin.parse(origin)
    if req is None or req.userinfo is not None:
        return []
    out: list[str] = []
    for entry in configured:
        if entry in ("*", "null"):
            continue
        reason = _glob_reason(req, entry) if is_glob(entry) else _exact_reason(req, entry)
        if reason:
            out.append(f"Origin {origin} is not allowed; the rules have {entry} ({reason})")
    return out


def _exact_reason(req: Origin, entry: str) -> str | None:
    conf = Origin.parse(entry)
    if conf is None:
        return None
    raw = req.written
    if req.rest:
        if req.rest == "/" and raw == entry:
            return "trailing slash: an origin has no path, browsers never send one"
        if req.serialized == entry:
            return "an origin has no path, query or fragment"
        return None
    if req.serialized == entry:
        if raw.lower() != raw and raw.lower() == entry:
            return "different case: origins are compared byte for byte, browsers send lower case"
        if req.port is not None and req.port == req.default_port:
            return f"explicit default port :{req.port}: browsers omit it"
        return "same origin written differently: browsers send the normalized form"
    same_scheme = req.scheme.lower() == conf.scheme
    same_host = req.host.lower() == conf.host
    same_port = req.written_port == conf.written_port
    if same_host and same_port and not same_scheme:
        return "different scheme"
    if same_host and not same_port and same_scheme:
        return "different port"
    if same_host and not same_port and not same_scheme:
        return "different scheme and port"
    if not same_host and same_scheme and same_port:
        a, b = req.host.lower(), conf.host
        if _loopback(a) and _loopback(b):
            return "different host: localhost and 127.0.0.1 are different origins (and sites)"
        if a == f"www.{b}" or b == f"www.{a}":
            return "different host: www. prefix"
    if not same_host and _loopback(req.host) and _loopback(conf.host) and same_scheme:
        return "different host and port"
    return None


def _glob_reason(req: Origin, entry: str) -> str | None:
    try:
        pattern = compile_glob(entry)
    except ValueError:
        return None
    conf = Origin.parse(entry)
    if conf is None:
        return None
    candidate = req.serialized
    if req.rest or candidate != req.written:
        if pattern.fullmatch(candidate):
            return "written differently: browsers send lower case, no default port, no path"
        return None
    host = req.host.lower()
    glob_labels = conf.host.split(".")
    labels = host.split(".")
    fixed = glob_labels[1:] if glob_labels[0] == "*" else None
    port_scheme_ok = req.scheme.lower() == conf.scheme and req.written_port == conf.written_port
    if fixed is not None and labels[-len(fixed) :] == fixed:
        extra = labels[: -len(fixed)]
        if not port_scheme_ok:
            if len(extra) != 1:
                return None
            scheme_differs = req.scheme.lower() != conf.scheme
            port_differs = req.written_port != conf.written_port
            if scheme_differs and port_differs:
                return "different scheme and port"
            return "different scheme" if scheme_differs else "different port"
        if not extra:
            return (
                f"{entry} needs exactly one subdomain label and does not match the apex;"
                f" add {candidate}"
            )
        if len(extra) > 1:
            parent = ".".join(labels[1:])
            return (
                "* matches exactly one label, this origin has"
                f" {len(extra)} ({'.'.join(extra)}); add"
                f" {conf.scheme}://*.{parent}" + (f":{conf.port}" if conf.port else "")
            )
    return None
