"""What the inspector shows of an exchange, the summary and the config (pure).

Built from a ring entry only when a page or a script asks: the hot path never pays for
it. Everything here is data (JSON-ready dicts); the page renders it as text, never as
markup, and secrets are masked before they leave this module.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Sequence
from typing import Any

from proxy.config.model import Config
from proxy.diagnosis.explain import cookie_problems
from proxy.diagnosis.repro import curl_commands
from proxy.inspector.fix import yaml_fix
from proxy.inspector.mask import curl_value, mask_query, mask_value
from proxy.inspector.ring import OTHER, Entry, Fields, HeaderItems, Ring

PAIR_SECONDS = 10.0  # a request this soon after its preflight is shown as its pair
_CORS_NAMES = frozenset({"origin", "vary", "x-cors-proxy-error"})
# Header lists repeat from one exchange to the next (the fast lane's known heads, the kept
# response plans): their rows and curl commands are made once per list object. Each
# entry holds the object, so its id cannot be reused while the entry lives.
KEPT_VIEWS = 64
_rows: dict[int, tuple[object, list[dict[str, Any]]]] = {}
_curls: dict[tuple[Any, ...], tuple[object, list[str]]] = {}


def is_cors(name: str) -> bool:
    low = name.lower()
    return low.startswith("access-control-") or low in _CORS_NAMES


def _pairs(headers: HeaderItems | Fields | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Sequence):
        return list(headers)
    return list(headers.items())


def _first(fields: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in fields if n.lower() == name), None)


def _header_rows(fields: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for name, value in fields:
        shown = mask_value(name, value)
        rows.append({"name": name, "value": shown, "cors": is_cors(name), "masked": shown != value})
    return rows


def wall_clock(monotonic: float) -> float:
    """A ``time.monotonic()`` reading as seconds since the epoch (for people)."""
    return monotonic + time.time() - time.monotonic()


def _rows_of(headers: HeaderItems | Fields) -> list[dict[str, Any]]:
    kept = _rows.get(id(headers))
    if kept is not None and kept[0] is headers:
        return kept[1]
    rows = _header_rows(_pairs(headers))
    _keep(_rows, id(headers), (headers, rows))
    return rows


def exchange(entry: Entry, config: Config, pair: int | None = None) -> dict[str, Any]:
    """Everything the page shows of one exchange."""
    ident, when, ms, rec, request, response = entry
    req = _pairs(request)
    host = _first(req, "host") or ""
    preflight = rec.cors.startswith("preflight")
    acrm = _first(req, "access-control-request-method") if preflight else None
    acrh = _first(req, "access-control-request-headers") if preflight else None
    cookies = [h for h in rec.hints if h.startswith("cookie ")]
    cause = [mask_query(rec.reason)] if rec.reason else []
    cause += [mask_query(h) for h in rec.hints if not h.startswith("cookie ")]
    resp = _pairs(response) if response is not None else None
    if resp and not cookies and rec.cors == "allowed" and rec.origin is not None:
        cookies = _cookie_findings(rec.origin, host, rec.rule, resp, config)
    fix: dict[str, Any] | None = None
    if rec.fix:
        found = yaml_fix(rec.fix, config, rec.origin)
        fix = {"text": mask_query(rec.fix), "yaml": found.as_dict() if found else None}
    return {
        "id": ident,
        "time": round(wall_clock(when), 3),
        "ms": round(ms, 2),
        "method": rec.method,
        "path": mask_query(rec.path),
        "status": rec.status,
        "origin": rec.origin,
        "cors": rec.cors,
        "rule": rec.rule,
        "verdict": rec.verdict,
        "blocked": rec.verdict == "blocked",
        "error": rec.status >= 500,
        "preflight": preflight,
        "preflight_for": (
            {"method": acrm, "headers": acrh} if preflight and acrm is not None else None
        ),
        "pair": pair,
        "browser": mask_query(rec.console),
        "cause": cause,
        "fix": fix,
        "upstream_error": mask_query(rec.diagnosis),
        "cookies": cookies,
        "note": "" if preflight and rec.note.startswith("for ") else mask_query(rec.note),
        "curl": _curl_of(request, host, rec.path, rec.origin, acrm or rec.method, req, acrh),
        "request_headers": _rows_of(request),
        "response_headers": None if response is None else _rows_of(response),
    }


def _cookie_findings(
    origin: str, host: str, rule: str | None, response: Sequence[tuple[str, str]], cfg: Config
) -> list[str]:
    set_cookies = [v for n, v in response if n.lower() == "set-cookie"]
    if not set_cookies:
        return []
    found = next((r for r in cfg.rules if r.name == rule), None)
    return cookie_problems(
        set_cookies,
        page_origin=origin,
        proxy_origin=f"http://{host}",
        credentials_allowed=bool(found and found.allow_credentials),
        rule=rule,
    )


def _curl_of(
    kept_as: HeaderItems | Fields,
    host: str,
    path: str,
    origin: str | None,
    method: str,
    request: Sequence[tuple[str, str]],
    acrh: str | None,
) -> list[str]:
    """The curl commands for an exchange; made once per request header list object
    (``kept_as``, what the ring holds) and the rest of the key."""
    key = (id(kept_as), path, origin, method, acrh)
    kept = _curls.get(key)
    if kept is not None and kept[0] is kept_as:
        return kept[1]
    url = f"http://{host}{mask_query(path)}"
    request = [(n, v) for n, v in request if not _browser_only(n)]
    if origin is None:
        command = ["curl", "-i", "-X", method, url]
        for name, value in request:
            if name.lower() not in ("host", "content-length", "connection", "user-agent"):
                command += ["-H", f"{name}: {curl_value(name, value)}"]
        commands = [shlex.join(command)]
    else:
        headers = [(n, curl_value(n, v)) for n, v in request]
        commands = curl_commands(
            url=url, origin=origin, method=method, headers=headers, preflight_headers=acrh
        )
    _keep(_curls, key, (kept_as, commands))
    return commands


def _keep(table: dict[Any, Any], key: object, value: object) -> None:
    """Bounded: a full table is emptied at once (cheaper than an LRU per hit)."""
    if len(table) >= KEPT_VIEWS:
        table.clear()
    table[key] = value


def _browser_only(name: str) -> bool:
    """Fields a browser adds that neither CORS nor the app looks at: left out of the
    curl commands (client hints, fetch metadata, priority, languages)."""
    low = name.lower()
    return low.startswith("sec-") or low in ("priority", "accept-language", "dnt")


def pair_up(entries: Iterable[Entry]) -> dict[int, int]:
    """Preflights and the requests they let through, both ways (``entries`` oldest
    first): same origin, path and method, within ``PAIR_SECONDS``."""
    pending: dict[tuple[str | None, str, str | None], tuple[int, float]] = {}
    pairs: dict[int, int] = {}
    for ident, when, _, rec, request, _ in entries:
        if rec.cors == "preflight-ok":
            method = _first(_pairs(request), "access-control-request-method")
            pending[(rec.origin, rec.path, method)] = (ident, when)
        elif not rec.cors.startswith("preflight") and pending:
            found = pending.pop((rec.origin, rec.path, rec.method), None)
            if found is not None and when - found[1] <= PAIR_SECONDS:
                pairs[ident], pairs[found[0]] = found[0], ident
    return pairs


def exchanges(entries: Sequence[Entry], config: Config, context: Iterable[Entry] = ()) -> list[Any]:
    """``entries`` (newest first) as the page shows them; ``context``: the entries
    before them (oldest first), where their preflights may be."""
    pairs = pair_up([*context, *reversed(entries)])
    return [exchange(e, config, pairs.get(e[0])) for e in entries]


def summary(ring: Ring, generation: int) -> dict[str, Any]:
    origins = [
        {"origin": origin, **counts.as_dict()}
        for origin, counts in sorted(
            ring.origins.items(), key=lambda item: (-item[1].requests, item[0] or "")
        )
    ]
    return {
        **ring.total.as_dict(),
        "origins": origins,
        "other_origins": OTHER,
        "kept": len(ring.entries),
        "keep": ring.keep,
        "last_id": ring.last_id,
        "generation": generation,
    }
