"""Copy-paste reproduction of a blocked exchange as ``curl -i`` commands (pure).

Credentials are never printed: Cookie and Authorization values become placeholders.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from proxy.policy.fetch import SAFELISTED_METHODS, safelisted_request_header

_SECRET = frozenset({"cookie", "authorization", "proxy-authorization"})
_SKIP = frozenset({"host", "content-length", "connection", "accept-encoding", "user-agent"})
# Set by the browser, never by the page, so never in Access-Control-Request-Headers.
_BROWSER_SET = frozenset({"cookie", "referer", "dnt", "te", "keep-alive", "upgrade", "via"})


def curl_commands(
    *,
    url: str,
    origin: str,
    method: str,
    headers: Sequence[tuple[str, str]],
    preflight_headers: str | None = None,
) -> list[str]:
    """The preflight (when the browser sends one) and the actual request, as curl lines."""
    sent = [(n, v) for n, v in headers if n.lower() not in _SKIP and n.lower() != "origin"]
    unsafe = sorted(
        {
            n.lower()
            for n, v in sent
            if not safelisted_request_header(n.lower(), v)
            and n.lower() not in _BROWSER_SET
            and not n.lower().startswith(("sec-", "proxy-", "access-control-request-"))
        }
    )
    acrh = preflight_headers if preflight_headers is not None else ",".join(unsafe)
    out = []
    if method not in SAFELISTED_METHODS or acrh:
        pre = ["curl", "-i", "-X", "OPTIONS", url, "-H", f"Origin: {origin}"]
        pre += ["-H", f"Access-Control-Request-Method: {method}"]
        if acrh:
            pre += ["-H", f"Access-Control-Request-Headers: {acrh}"]
        out.append(shlex.join(pre))
    actual = ["curl", "-i", "-X", method, url, "-H", f"Origin: {origin}"]
    for name, value in sent:
        if name.lower().startswith("access-control-request-"):
            continue
        shown = f"<your {name.lower()}>" if name.lower() in _SECRET else value
        actual += ["-H", f"{name}: {shown}"]
    out.append(shlex.join(actual))
    return out
