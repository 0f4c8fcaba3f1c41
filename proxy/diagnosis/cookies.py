"""Cookie doctor: will the browser store this Set-Cookie, and send it back? (pure)

Models Chromium's defaults for a cookie set by a cross-origin ``fetch()`` response
(docs/cors-notes.md §8):

* the browser only processes ``Set-Cookie`` from a cross-origin fetch made with
  ``credentials: 'include'``, which needs the rule to allow credentials;
* ``SameSite=None`` requires ``Secure``; ``Secure`` requires a secure URL, and
  ``http://localhost`` / ``http://127.0.0.1`` count as secure;
* ``Domain`` must domain-match the host that set the cookie (the proxy's host);
* a *site* is the scheme plus the registrable domain; ports do not matter, so
  ``localhost:3000`` and ``localhost:8080`` are the same site, while ``localhost`` and
  ``127.0.0.1`` are different sites. Across sites Chromium blocks third-party cookies
  by default (CDP ``blockedReasons: ["UserPreferences"]``), and SameSite=Lax/Strict
  (Lax when absent) cookies are not sent on cross-site fetches anyway.

The registrable domain is approximated without the Public Suffix List: the last two
labels, or three under a few well-known two-label suffixes (``co.uk``, ...).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from proxy.policy.origins import Origin

_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
_TWO_LABEL_SUFFIXES: Final = frozenset(
    {
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "com.au",
        "net.au",
        "org.au",
        "co.jp",
        "co.nz",
        "com.br",
        "co.in",
        "github.io",
        "gitlab.io",
        "herokuapp.com",
        "vercel.app",
        "netlify.app",
        "pages.dev",
        "web.app",
        "azurewebsites.net",
        "cloudfront.net",
    }
)


@dataclass(frozen=True)
class CookieVerdict:
    name: str
    stored: bool  # the browser keeps it
    sent_back: bool  # and sends it on later credentialed fetches from this page
    problems: tuple[str, ...]
    fixes: tuple[str, ...]  # fixes[i] fixes problems[i]


_NOWHERE: Final = Origin("", "", None)  # what an unparseable origin counts as


def _parse(origin: str) -> Origin:
    return Origin.parse(origin.strip()) or _NOWHERE


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_potentially_trustworthy(url: Origin) -> bool:
    """https, or a loopback host over http (Chromium treats http://localhost as secure)."""
    if url.scheme.lower() == "https":
        return True
    host = url.bare_host
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def registrable_domain(host: str) -> str:
    """Approximate eTLD+1; an IP address or a one-label name is its own site."""
    host = host.lower().rstrip(".")
    if _is_ip(host) or "." not in host:
        return host
    labels = host.split(".")
    if labels[-1] == "localhost":
        return "localhost"
    if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES and len(labels) >= 3:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def site(origin: str) -> str:
    """Schemeful site: ``scheme://registrable-domain`` (ports never matter)."""
    url = _parse(origin)
    return f"{url.scheme.lower()}://{registrable_domain(url.bare_host)}"


def same_site(a: str, b: str) -> bool:
    return site(a) == site(b)


def _domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: identical, or a suffix on a dot boundary for host names."""
    if host == domain:
        return True
    return not _is_ip(host) and host.endswith("." + domain)


def _parse_set_cookie(value: str) -> tuple[str, dict[str, str]]:
    first, *rest = value.split(";")
    name = first.partition("=")[0].strip() if "=" in first else ""
    attrs: dict[str, str] = {}
    for item in rest:
        key, _, val = item.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name, attrs


def diagnose_set_cookie(
    set_cookie: str,
    *,
    page_origin: str,
    proxy_origin: str,
    credentials_allowed: bool,
    rule: str | None = None,
) -> CookieVerdict:
    """Predict what Chromium does with one ``Set-Cookie`` on a cross-origin response.

    ``page_origin`` is the request's Origin (where the frontend runs), ``proxy_origin``
    the origin the page called (the proxy); ``rule`` names the matching rule for fixes.
    """
    name, attrs = _parse_set_cookie(set_cookie)
    label = name or "(unnamed)"
    page = _parse(page_origin)
    proxy = _parse(proxy_origin)
    rule_ref = f"rule {rule!r}" if rule else "the matching rule"
    problems: list[str] = []
    fixes: list[str] = []
    stored = True

    def problem(text: str, fix: str, *, rejects: bool = True) -> None:
        nonlocal stored
        problems.append(text)
        fixes.append(fix)
        if rejects:
            stored = False

    if not credentials_allowed:
        problem(
            f"cookie {label}: {rule_ref} does not allow credentials, so the page cannot use"
            " fetch(..., {credentials: 'include'}) and the browser ignores Set-Cookie on a"
            " fetch without credentials",
            f"add `allow_credentials: true` to {rule_ref} and call fetch with"
            " {credentials: 'include'}",
        )

    samesite = attrs.get("samesite", "").lower()
    secure = "secure" in attrs
    proxy_secure = is_potentially_trustworthy(proxy)
    if samesite == "none" and not secure:
        problem(
            f"cookie {label}: SameSite=None without Secure is rejected",
            "add `Secure` to the cookie (allowed over http on localhost and 127.0.0.1)",
        )
    if secure and not proxy_secure:
        problem(
            f"cookie {label}: Secure cookies cannot be set over plain http from"
            f" {proxy.bare_host} (only https, localhost and 127.0.0.1 are secure)",
            "serve the proxy over https, call it as http://localhost, or drop `Secure`",
        )
    if name.lower().startswith("__secure-") and not (secure and proxy_secure):
        problem(
            f"cookie {label}: the __Secure- prefix requires Secure from a secure origin",
            "add `Secure` and serve over https or localhost",
        )
    if name.lower().startswith("__host-") and (
        not (secure and proxy_secure) or "domain" in attrs or attrs.get("path") != "/"
    ):
        problem(
            f"cookie {label}: the __Host- prefix requires Secure, Path=/ and no Domain",
            "set `Secure; Path=/` and remove `Domain`",
        )
    if "domain" in attrs:
        domain = attrs["domain"].lower().lstrip(".")
        if not domain or not _domain_matches(proxy.bare_host, domain):
            problem(
                f"cookie {label}: Domain={attrs['domain']} does not match the host"
                f" {proxy.bare_host} that set it, so it is rejected",
                f"remove `Domain` (host-only cookie) or set `Domain={proxy.bare_host}`",
            )

    cross_site = not same_site(page_origin, proxy_origin)
    same_host = _same_host_fix(page, proxy)
    if cross_site:
        problem(
            f"cookie {label}: the page ({page_origin}) and the proxy ({proxy_origin}) are"
            " different sites, so this is a third-party cookie, which Chromium blocks by"
            " default (even with SameSite=None; Secure)",
            same_host,
        )
        if samesite != "none":
            shown = f"SameSite={attrs['samesite']}" if "samesite" in attrs else "no SameSite"
            problem(
                f"cookie {label}: {shown} (Lax by default) is not sent on cross-site fetches",
                same_host,
                rejects=False,
            )
    if attrs.get("max-age", "").lstrip("-").isdigit() and int(attrs["max-age"]) <= 0:
        problem(
            f"cookie {label}: Max-Age={attrs['max-age']} deletes the cookie",
            "nothing to fix if this is a logout; otherwise give Max-Age a positive value",
        )
    sent_back = stored and not cross_site and credentials_allowed
    if secure and not is_potentially_trustworthy(proxy):
        sent_back = False
    return CookieVerdict(label, stored, sent_back, tuple(problems), tuple(fixes))


def _same_host_fix(page: Origin, proxy: Origin) -> str:
    host = page.host.lower()
    page_port, proxy_port = page.written_port, proxy.written_port
    page_o = f"{page.scheme.lower()}://{host}" + (f":{page_port}" if page_port else "")
    proxy_o = f"{page.scheme.lower()}://{host}" + (f":{proxy_port}" if proxy_port else "")
    return f"serve the page from {page_o} and call {proxy_o} (same site)"
