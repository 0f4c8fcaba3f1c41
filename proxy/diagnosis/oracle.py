"""A browser oracle: what Chromium does with a CORS response, and what it prints (pure).

``evaluate`` runs the Fetch "CORS check" (§4.10) and, for preflights, the
CORS-preflight fetch step 7, in the order and with the error codes of Chromium's
network service, and renders the console message Blink prints for the failure:

* ``services/network/public/cpp/cors/cors.cc`` ``CheckAccess``: ACAO ``*`` first
  (``WildcardOriginNotAllowed`` with credentials), then missing ACAO, then a byte
  comparison with the request's serialized origin; on mismatch, a value holding a space
  or comma is ``MultipleAllowOriginValues``, ``null`` and other parseable URLs are
  ``AllowOriginMismatch``, unparseable ones ``InvalidAllowOriginValue``. With
  credentials, ACAC must be exactly ``true``.
* ``services/network/cors/preflight_controller.cc`` ``CheckPreflightAccess``: the CORS
  check wins over the status check (its errors become the ``Preflight*`` variants);
  then a non-2xx status is ``PreflightInvalidStatus``. A redirect answer to a preflight
  is ``PreflightDisallowedRedirect`` before anything else is looked at.
* ``services/network/cors/preflight_result.cc``: ACAM/ACAH are split on ``,``, items
  trimmed, empty items skipped, any non-token item fails the whole list; methods are
  compared case-sensitively (``AccessControlAllowMethodsInCORSPreflightSpecConformant``
  is on by default), header names case-insensitively; ``*`` is a wildcard only without
  credentials and never covers ``authorization``; the first disallowed name in the sorted
  ``Access-Control-Request-Headers`` list is the one reported. Max-Age: default 5 s,
  negative means 0, capped at 7200 s.
* ``third_party/blink/renderer/platform/loader/cors/cors_error_string.cc``
  ``GetErrorStringForConsoleMessage``: the console wording, for a ``fetch()`` initiator
  (which appends "Have the server send the header with a valid value." to the three
  ACAO-value errors); non-printable bytes in the echoed value are printed as ``\\uXXXX``.

Header values arrive as received; like ``net::HttpResponseHeaders`` we trim each line
and join repeated lines with ``", "`` before comparing (docs/cors-notes.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from proxy.policy.fetch import (
    DEFAULT_MAX_AGE,
    DEFAULT_PORTS,
    FORBIDDEN_RESPONSE_HEADERS,
    MAX_AGE_CAPS,
    REDIRECT_STATUSES,
    SAFELISTED_METHODS,
    SAFELISTED_RESPONSE_HEADERS,
    is_token,
)
from proxy.policy.origins import Origin

_OWS = " \t"
_INT64_MAX = 2**63 - 1
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)

_PREFIX = "Response to preflight request doesn't pass access control check: "
_NO_CORS_INFO = " Have the server send the header with a valid value."


@dataclass(frozen=True)
class Exchange:
    url: str  # absolute URL the page fetched, e.g. "http://127.0.0.1:8080/api/x"
    origin: str  # request Origin
    method: str
    unsafe_header_names: tuple[str, ...]  # lower-case, as in Access-Control-Request-Headers
    credentials: bool  # credentials mode 'include'
    preflight: bool  # True: evaluating a preflight response


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str  # Chromium CDP corsError name; "" when allowed
    console: str  # the exact text Chromium prints; "" when allowed
    cause: str  # plain-language cause

    def __bool__(self) -> bool:
        return self.allowed


# -- header access ----------------------------------------------------------------------


def header_value(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """All lines of ``name`` trimmed and joined with ``", "``; None when absent."""
    low = name.lower()
    values = [v.strip(_OWS) for n, v in headers if n.lower() == low]
    return ", ".join(values) if values else None


def parse_list(value: str | None) -> list[str] | None:
    """Chromium's ``ParseAccessControlAllowList``: None when any item is not a token."""
    if value is None:
        return []
    items: list[str] = []
    for raw in value.split(","):
        item = raw.strip(_OWS)
        if not item:
            continue
        if not is_token(item):
            return None
        items.append(item)
    return items


def _encode_hint(hint: str) -> str:
    """Blink's ``EncodeHint``: printable ASCII as is, every other byte as ``\\uXXXX``."""
    out: list[str] = []
    for ch in hint:
        if " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\u{b:04X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _gurl_valid(value: str) -> bool:
    """Rough ``GURL::is_valid``: a scheme, and a host for the special schemes."""
    m = _URL_SCHEME.fullmatch(value)
    if m is None:
        return False
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in _SPECIAL_SCHEMES or scheme == "file":
        return True
    host = rest.lstrip("/\\")
    host = re.split(r"[/\\?#]", host, maxsplit=1)[0].rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return bool(host) and not any(c in host for c in " <>^|%")


def _origin_of(url: str) -> str | None:
    """The serialized origin of an http(s) URL, as the page's address bar has it."""
    parts = Origin.parse(url)
    if parts is None or parts.scheme.lower() not in DEFAULT_PORTS or not parts.port_in_range:
        return None
    return parts.serialized


# -- the verdict -------------------------------------------------------------------------

_MESSAGES: Final = {
    "WildcardOriginNotAllowed": (
        "The value of the 'Access-Control-Allow-Origin' header in the response must not be"
        " the wildcard '*' when the request's credentials mode is 'include'."
    ),
    "MissingAllowOriginHeader": (
        "No 'Access-Control-Allow-Origin' header is present on the requested resource."
    ),
    "MultipleAllowOriginValues": (
        "The 'Access-Control-Allow-Origin' header contains multiple values '{hint}',"
        " but only one is allowed." + _NO_CORS_INFO
    ),
    "InvalidAllowOriginValue": (
        "The 'Access-Control-Allow-Origin' header contains the invalid value '{hint}'."
        + _NO_CORS_INFO
    ),
    "AllowOriginMismatch": (
        "The 'Access-Control-Allow-Origin' header has a value '{hint}' that is not equal to"
        " the supplied origin." + _NO_CORS_INFO
    ),
    "InvalidAllowCredentials": (
        "The value of the 'Access-Control-Allow-Credentials' header in the response is"
        " '{hint}' which must be 'true' when the request's credentials mode is 'include'."
    ),
    "PreflightInvalidStatus": "It does not have HTTP ok status.",
    "PreflightDisallowedRedirect": "Redirect is not allowed for a preflight request.",
    "InvalidAllowMethodsPreflightResponse": (
        "Cannot parse Access-Control-Allow-Methods response header field in preflight response."
    ),
    "InvalidAllowHeadersPreflightResponse": (
        "Cannot parse Access-Control-Allow-Headers response header field in preflight response."
    ),
    "MethodDisallowedByPreflightResponse": (
        "Method {hint} is not allowed by Access-Control-Allow-Methods in preflight response."
    ),
    "HeaderDisallowedByPreflightResponse": (
        "Request header field {hint} is not allowed by Access-Control-Allow-Headers in"
        " preflight response."
    ),
    "RedirectContainsCredentials": (
        "Redirect location '{hint}' contains a username and password, which is disallowed"
        " for cross-origin requests."
    ),
}

# CheckAccess errors and their preflight variants (the console gets the preflight prefix).
_PREFLIGHT_VARIANT: Final = {
    "WildcardOriginNotAllowed": "PreflightWildcardOriginNotAllowed",
    "MissingAllowOriginHeader": "PreflightMissingAllowOriginHeader",
    "MultipleAllowOriginValues": "PreflightMultipleAllowOriginValues",
    "InvalidAllowOriginValue": "PreflightInvalidAllowOriginValue",
    "AllowOriginMismatch": "PreflightAllowOriginMismatch",
    "InvalidAllowCredentials": "PreflightInvalidAllowCredentials",
}
_PREFLIGHT_CODES: Final = frozenset(
    {*_PREFLIGHT_VARIANT.values(), "PreflightInvalidStatus", "PreflightDisallowedRedirect"}
)


def console_message(url: str, origin: str, code: str, hint: str = "") -> str:
    """The text Chromium 156 logs for a failed ``fetch()`` with CDP error ``code``."""
    base = code
    for plain, variant in _PREFLIGHT_VARIANT.items():
        if variant == code:
            base = plain
    text = _MESSAGES[base].format(hint=_encode_hint(hint))
    prefix = _PREFIX if code in _PREFLIGHT_CODES else ""
    head = f"Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS policy: "
    return head + prefix + text


def _blocked(ex: Exchange, code: str, hint: str, cause: str) -> Verdict:
    return Verdict(False, code, console_message(ex.url, ex.origin, code, hint), cause)


def _cors_check(ex: Exchange, headers: Sequence[tuple[str, str]]) -> tuple[str, str, str] | None:
    """Chromium's ``CheckAccess``: (code, hint, cause) on failure."""
    acao = header_value(headers, "Access-Control-Allow-Origin")
    what = "the preflight response" if ex.preflight else "the response"
    if acao == "*":
        if not ex.credentials:
            return None
        return (
            "WildcardOriginNotAllowed",
            "",
            f"{what} allows any origin ('*'), but the request carries credentials"
            " (cookies or Authorization); a credentialed response must name the origin"
            f" {ex.origin} exactly and add Access-Control-Allow-Credentials: true",
        )
    if acao is None:
        return (
            "MissingAllowOriginHeader",
            "",
            f"{what} has no Access-Control-Allow-Origin: the origin {ex.origin} is not"
            " allowed for this path, or nothing added CORS headers",
        )
    if acao != ex.origin:
        if " " in acao or "," in acao:
            return (
                "MultipleAllowOriginValues",
                acao,
                f"Access-Control-Allow-Origin must be one value, {what} has {acao!r}"
                " (two lines, or a list: the upstream and the proxy both add it?)",
            )
        if acao == "null" or _gurl_valid(acao):
            code = "AllowOriginMismatch"
        else:
            code = "InvalidAllowOriginValue"
        return (
            code,
            acao,
            f"Access-Control-Allow-Origin is {acao!r} but the page's origin is"
            f" {ex.origin!r}; the browser compares them byte for byte (no trailing slash,"
            " no default port, same case)",
        )
    if ex.credentials:
        acac = header_value(headers, "Access-Control-Allow-Credentials")
        if acac != "true":
            shown = "absent" if acac is None else repr(acac)
            return (
                "InvalidAllowCredentials",
                acac or "",
                f"the request carries credentials but Access-Control-Allow-Credentials is"
                f" {shown}; it must be exactly 'true' (lower case)",
            )
    return None


def evaluate(exchange: Exchange, status: int, headers: Sequence[tuple[str, str]]) -> Verdict:
    """What Chromium decides about this response, and what it prints when it blocks it."""
    ex = exchange
    if _origin_of(ex.url) == ex.origin:
        return Verdict(True, "", "", "same-origin request: CORS does not apply")
    if ex.preflight and status in REDIRECT_STATUSES and header_value(headers, "Location"):
        return _blocked(
            ex,
            "PreflightDisallowedRedirect",
            "",
            f"the preflight was answered with a {status} redirect; browsers never follow"
            " redirects for preflights (answer OPTIONS with 2xx, or call the final URL)",
        )
    failed = _cors_check(ex, headers)
    if failed is not None:
        code, hint, cause = failed
        if ex.preflight:
            code = _PREFLIGHT_VARIANT[code]
        return _blocked(ex, code, hint, cause)
    if not ex.preflight:
        return _after_actual(ex, status, headers)
    if not 200 <= status <= 299:
        return _blocked(
            ex,
            "PreflightInvalidStatus",
            "",
            f"the preflight (OPTIONS) was answered with status {status}; it must be 2xx"
            " (an upstream that requires auth on OPTIONS, or has no OPTIONS route?)",
        )
    return _preflight_lists(ex, headers)


def _after_actual(ex: Exchange, status: int, headers: Sequence[tuple[str, str]]) -> Verdict:
    location = header_value(headers, "Location")
    if status in REDIRECT_STATUSES and location:
        target = urljoin(ex.url, location)
        try:
            parts = urlsplit(target)
        except ValueError:
            parts = None
        if parts is not None and (parts.username or parts.password):
            return _blocked(
                ex,
                "RedirectContainsCredentials",
                target,
                "the redirect's Location has a user name or password, which a CORS request"
                " may not follow",
            )
    how = "any origin ('*')" if header_value(headers, "Access-Control-Allow-Origin") == "*" else ""
    cause = f"allowed: {how or 'Access-Control-Allow-Origin names ' + ex.origin}"
    return Verdict(True, "", "", cause)


def _preflight_lists(ex: Exchange, headers: Sequence[tuple[str, str]]) -> Verdict:
    methods = parse_list(header_value(headers, "Access-Control-Allow-Methods"))
    if methods is None:
        return _blocked(
            ex,
            "InvalidAllowMethodsPreflightResponse",
            "",
            "Access-Control-Allow-Methods has an item that is not an HTTP token"
            " (a space inside a name, quotes, ...), so the browser rejects the whole list",
        )
    names = parse_list(header_value(headers, "Access-Control-Allow-Headers"))
    if names is None:
        return _blocked(
            ex,
            "InvalidAllowHeadersPreflightResponse",
            "",
            "Access-Control-Allow-Headers has an item that is not an HTTP token"
            " (a space inside a name, quotes, ...), so the browser rejects the whole list",
        )
    if (
        ex.method not in methods
        and ex.method.upper() not in SAFELISTED_METHODS
        and (ex.credentials or "*" not in methods)
    ):
        star = (
            "; '*' is literal when the request carries credentials"
            if ex.credentials and "*" in methods
            else ""
        )
        near = [m for m in methods if m.upper() == ex.method.upper()]
        case = f" (it lists {near[0]!r}: methods are case-sensitive)" if near else ""
        return _blocked(
            ex,
            "MethodDisallowedByPreflightResponse",
            ex.method,
            f"Access-Control-Allow-Methods does not list {ex.method}{case}{star}",
        )
    lower = {n.lower() for n in names}
    wildcard = not ex.credentials and "*" in lower
    for name in sorted(n.lower() for n in ex.unsafe_header_names):
        if name in lower:
            continue
        if wildcard and name != "authorization":
            continue
        if name == "authorization" and wildcard:
            cause = (
                "Access-Control-Allow-Headers is '*', which never covers Authorization;"
                " list authorization explicitly"
            )
        elif "*" in lower:
            cause = (
                f"Access-Control-Allow-Headers does not list {name}; its '*' is literal"
                " when the request carries credentials"
            )
        else:
            cause = f"Access-Control-Allow-Headers does not list {name}"
        return _blocked(ex, "HeaderDisallowedByPreflightResponse", name, cause)
    return Verdict(True, "", "", "preflight allowed")


# -- what scripts can read, how long preflights are cached --------------------------------


def exposed_headers(headers: Sequence[tuple[str, str]], credentials: bool) -> frozenset[str]:
    """Lower-case names of the response headers present that scripts can read.

    The CORS-safelisted response-header names plus those listed in
    Access-Control-Expose-Headers (``*`` = all, without credentials only), never
    Set-Cookie/Set-Cookie2. An unparseable ACEH exposes nothing beyond the safelist.
    """
    present = {n.lower() for n, _ in headers}
    listed = parse_list(header_value(headers, "Access-Control-Expose-Headers")) or []
    names = {n.lower() for n in listed}
    if not credentials and "*" in names:
        allowed = present
    else:
        allowed = present & (SAFELISTED_RESPONSE_HEADERS | names)
    return frozenset(allowed - FORBIDDEN_RESPONSE_HEADERS)


def preflight_max_age(headers: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Seconds each engine caches this preflight result (0 = not cached).

    Chromium (``preflight_result.cc``): absent or not an integer -> 5, negative -> 0,
    capped at 7200. Firefox (``nsCORSListenerProxy.cpp``): absent -> 5, anything but
    digits -> 0, capped at 86400. WebKit (``CrossOriginPreflightResultCache.cpp``):
    not an unsigned integer -> 5, capped at 600. Repeated lines are joined with ", ",
    so two lines are never an integer.
    """
    value = header_value(headers, "Access-Control-Max-Age")
    return {
        "chromium": _chromium_max_age(value),
        "firefox": _firefox_max_age(value),
        "webkit": _webkit_max_age(value),
    }


def _chromium_max_age(value: str | None) -> int:
    if value is None or re.fullmatch(r"[+-]?[0-9]+", value) is None:
        return DEFAULT_MAX_AGE
    seconds = int(value)
    if seconds > _INT64_MAX or seconds < -_INT64_MAX - 1:
        return DEFAULT_MAX_AGE  # base::StringToInt64 fails on overflow
    return max(0, min(seconds, MAX_AGE_CAPS["chromium"]))


def _firefox_max_age(value: str | None) -> int:
    if not value:
        return DEFAULT_MAX_AGE
    if re.fullmatch(r"[0-9]+", value) is None:
        return 0
    return min(int(value), MAX_AGE_CAPS["firefox"])


def _webkit_max_age(value: str | None) -> int:
    if value is None or re.fullmatch(r"\+?[0-9]+", value) is None:
        return DEFAULT_MAX_AGE
    seconds = int(value)
    if seconds > 2**32 - 1:
        return DEFAULT_MAX_AGE
    return min(seconds, MAX_AGE_CAPS["webkit"])
