"""The Fetch standard's constants, in one place (pure).

Everything here is a fact about browsers and HTTP, not a choice of this project: the
policy, the browser oracle, the lint, the curl reproductions and the near-miss hints all
read it from here. Sources: the Fetch standard (https://fetch.spec.whatwg.org/, "CORS
protocol" and "CORS-safelisted request-header"), RFC 9110 (tokens, default ports), and
the browsers' preflight-cache code (docs/cors-notes.md lists the files).
"""

from __future__ import annotations

import re
from typing import Final

# Methods a page may send without a preflight (Fetch: "CORS-safelisted method").
SAFELISTED_METHODS: Final = frozenset({"GET", "HEAD", "POST"})

# Fetch: CORS-safelisted request-header names. Their values may still make them "unsafe"
# (then the browser lists them in Access-Control-Request-Headers): see
# ``safelisted_request_header``.
SAFELISTED_REQUEST_HEADERS: Final = frozenset(
    {"accept", "accept-language", "content-language", "content-type"}
)
# The Content-Type values that keep a request "simple" (no preflight).
SIMPLE_CONTENT_TYPES: Final = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
MAX_SAFELISTED_VALUE: Final = 128  # bytes: a longer safelisted value needs a preflight

# Fetch: CORS-safelisted response-header names, readable by scripts without
# Access-Control-Expose-Headers.
SAFELISTED_RESPONSE_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    }
)
# Fetch: forbidden response-header names: never readable by scripts, whatever ACEH says.
FORBIDDEN_RESPONSE_HEADERS: Final = frozenset({"set-cookie", "set-cookie2"})

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

# RFC 9110 §4.2: the port an http(s) URL means when it names none.
DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# Preflight cache: the seconds used when Access-Control-Max-Age is absent, and each
# engine's cap (Chromium preflight_result.cc, Firefox nsCORSListenerProxy.cpp, WebKit
# CrossOriginPreflightResultCache.cpp).
DEFAULT_MAX_AGE: Final = 5
MAX_AGE_CAPS: Final = {"chromium": 7200, "firefox": 86400, "webkit": 600}

# RFC 9110 §5.6.2: what methods and header names are made of.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def is_token(value: str) -> bool:
    """RFC 9110 token: what methods and header names must be."""
    return _TOKEN.fullmatch(value) is not None


def safelisted_request_header(name: str, value: str) -> bool:
    """Fetch's CORS-safelisted request-header (``name`` lower-case), simplified to what
    decides whether a page's request needs a preflight."""
    if name not in SAFELISTED_REQUEST_HEADERS or len(value) > MAX_SAFELISTED_VALUE:
        return False
    if name == "content-type":
        return value.split(";", 1)[0].strip().lower() in SIMPLE_CONTENT_TYPES
    return True
