"""The browser oracle against docs/cors-notes.md §3-§5 and Chromium's console texts."""

from __future__ import annotations

import pytest

from proxy.diagnosis.oracle import (
    Exchange,
    evaluate,
    exposed_headers,
    parse_list,
    preflight_max_age,
)

URL = "http://127.0.0.1:8080/api/x"
ORIGIN = "http://localhost:3000"
HEAD = f"Access to fetch at '{URL}' from origin '{ORIGIN}' has been blocked by CORS policy: "
PRE = "Response to preflight request doesn't pass access control check: "


def actual(credentials: bool = False, method: str = "GET") -> Exchange:
    return Exchange(URL, ORIGIN, method, (), credentials, preflight=False)


def preflight(
    method: str = "PUT", names: tuple[str, ...] = (), credentials: bool = False
) -> Exchange:
    return Exchange(URL, ORIGIN, method, names, credentials, preflight=True)


ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
ACAM = "Access-Control-Allow-Methods"
ACAH = "Access-Control-Allow-Headers"


# -- the CORS check on actual responses (§1.4) -----------------------------------------

ACTUAL_CASES = [
    # id, credentials, headers, status, code, console tail
    ("exact", False, [(ACAO, ORIGIN)], 200, "", ""),
    ("star", False, [(ACAO, "*")], 200, "", ""),
    ("star-trimmed", False, [(ACAO, " * ")], 200, "", ""),
    ("tab-prefixed-origin", False, [(ACAO, "\t" + ORIGIN)], 200, "", ""),
    ("any-status-500", False, [(ACAO, ORIGIN)], 500, "", ""),
    ("redirect-with-acao", False, [(ACAO, ORIGIN), ("Location", "/next")], 302, "", ""),
    (
        "missing",
        False,
        [],
        200,
        "MissingAllowOriginHeader",
        "No 'Access-Control-Allow-Origin' header is present on the requested resource.",
    ),
    ("missing-on-500", False, [], 500, "MissingAllowOriginHeader", None),
    ("missing-on-redirect", False, [("Location", "/x")], 308, "MissingAllowOriginHeader", None),
    (
        "trailing-slash",
        False,
        [(ACAO, ORIGIN + "/")],
        200,
        "AllowOriginMismatch",
        f"The 'Access-Control-Allow-Origin' header has a value '{ORIGIN}/' that is not equal"
        " to the supplied origin. Have the server send the header with a valid value.",
    ),
    ("query", False, [(ACAO, ORIGIN + "?")], 200, "AllowOriginMismatch", None),
    ("fragment", False, [(ACAO, ORIGIN + "#")], 200, "AllowOriginMismatch", None),
    ("default-port", False, [(ACAO, "http://localhost:80")], 200, "AllowOriginMismatch", None),
    ("upper-case", False, [(ACAO, ORIGIN.upper())], 200, "AllowOriginMismatch", None),
    ("upper-scheme", False, [(ACAO, "HTTP://localhost:3000")], 200, "AllowOriginMismatch", None),
    ("subdomain", False, [(ACAO, "http://a.localhost:3000")], 200, "AllowOriginMismatch", None),
    ("ftp", False, [(ACAO, "ftp://localhost:3000")], 200, "AllowOriginMismatch", None),
    ("page-url", False, [(ACAO, ORIGIN + "/index.html")], 200, "AllowOriginMismatch", None),
    (
        "null",
        False,
        [(ACAO, "null")],
        200,
        "AllowOriginMismatch",
        "The 'Access-Control-Allow-Origin' header has a value 'null' that is not equal to the"
        " supplied origin. Have the server send the header with a valid value.",
    ),
    (
        "two-lines",
        False,
        [(ACAO, ORIGIN), (ACAO, ORIGIN)],
        200,
        "MultipleAllowOriginValues",
        f"The 'Access-Control-Allow-Origin' header contains multiple values '{ORIGIN}, {ORIGIN}',"
        " but only one is allowed. Have the server send the header with a valid value.",
    ),
    ("star-then-origin", False, [(ACAO, "*, " + ORIGIN)], 200, "MultipleAllowOriginValues", None),
    ("origin-then-star", False, [(ACAO, ORIGIN + ", *")], 200, "MultipleAllowOriginValues", None),
    ("star-space-origin", False, [(ACAO, "* " + ORIGIN)], 200, "MultipleAllowOriginValues", None),
    ("null-origin", False, [(ACAO, "null " + ORIGIN)], 200, "MultipleAllowOriginValues", None),
    ("star-star-spaced", False, [(ACAO, "* *")], 200, "MultipleAllowOriginValues", None),
    (
        "upstream-star-plus-proxy",
        False,
        [(ACAO, "*"), (ACAO, ORIGIN)],
        200,
        "MultipleAllowOriginValues",
        None,
    ),
    (
        "quoted-star",
        False,
        [(ACAO, '"*"')],
        200,
        "InvalidAllowOriginValue",
        "The 'Access-Control-Allow-Origin' header contains the invalid value '\"*\"'."
        " Have the server send the header with a valid value.",
    ),
    ("single-quoted-star", False, [(ACAO, "'*'")], 200, "InvalidAllowOriginValue", None),
    ("double-star", False, [(ACAO, "**")], 200, "InvalidAllowOriginValue", None),
    ("bare-host", False, [(ACAO, "localhost")], 200, "InvalidAllowOriginValue", None),
    ("scheme-relative", False, [(ACAO, "//localhost:3000")], 200, "InvalidAllowOriginValue", None),
    ("empty", False, [(ACAO, "")], 200, "InvalidAllowOriginValue", None),
    (
        "star-nul",
        False,
        [(ACAO, "*\0")],
        200,
        "InvalidAllowOriginValue",
        "The 'Access-Control-Allow-Origin' header contains the invalid value '*\\u0000'."
        " Have the server send the header with a valid value.",
    ),
    # credentials (§1.5)
    ("creds-ok", True, [(ACAO, ORIGIN), (ACAC, "true")], 200, "", ""),
    ("creds-ok-trimmed", True, [(ACAO, ORIGIN), (ACAC, " true ")], 200, "", ""),
    (
        "creds-star",
        True,
        [(ACAO, "*"), (ACAC, "true")],
        200,
        "WildcardOriginNotAllowed",
        "The value of the 'Access-Control-Allow-Origin' header in the response must not be the"
        " wildcard '*' when the request's credentials mode is 'include'.",
    ),
    (
        "creds-no-acac",
        True,
        [(ACAO, ORIGIN)],
        200,
        "InvalidAllowCredentials",
        "The value of the 'Access-Control-Allow-Credentials' header in the response is '' which"
        " must be 'true' when the request's credentials mode is 'include'.",
    ),
    (
        "creds-True",
        True,
        [(ACAO, ORIGIN), (ACAC, "True")],
        200,
        "InvalidAllowCredentials",
        "The value of the 'Access-Control-Allow-Credentials' header in the response is 'True'"
        " which must be 'true' when the request's credentials mode is 'include'.",
    ),
    ("creds-TRUE", True, [(ACAO, ORIGIN), (ACAC, "TRUE")], 200, "InvalidAllowCredentials", None),
    (
        "creds-quoted",
        True,
        [(ACAO, ORIGIN), (ACAC, '"true"')],
        200,
        "InvalidAllowCredentials",
        None,
    ),
    ("creds-1", True, [(ACAO, ORIGIN), (ACAC, "1")], 200, "InvalidAllowCredentials", None),
    ("creds-false", True, [(ACAO, ORIGIN), (ACAC, "false")], 200, "InvalidAllowCredentials", None),
    (
        "creds-two-lines",
        True,
        [(ACAO, ORIGIN), (ACAC, "true"), (ACAC, "true")],
        200,
        "InvalidAllowCredentials",
        None,
    ),
    ("no-creds-acac-ignored", False, [(ACAO, ORIGIN), (ACAC, "TRUE")], 200, "", ""),
    (
        "creds-mismatch-first",
        True,
        [(ACAO, "http://localhost:1")],
        200,
        "AllowOriginMismatch",
        None,
    ),
]


@pytest.mark.parametrize(
    ("credentials", "headers", "status", "code", "tail"),
    [c[1:] for c in ACTUAL_CASES],
    ids=[c[0] for c in ACTUAL_CASES],
)
def test_actual_response(credentials, headers, status, code, tail):
    v = evaluate(actual(credentials), status, headers)
    assert v.code == code
    assert v.allowed is (code == "")
    assert bool(v.cause)
    if code:
        assert v.console.startswith(HEAD)
        assert PRE not in v.console
    else:
        assert v.console == ""
    if tail:
        assert v.console == HEAD + tail


def test_header_names_are_case_insensitive():
    v = evaluate(
        actual(True),
        200,
        [("access-control-allow-origin", ORIGIN), ("ACCESS-CONTROL-ALLOW-CREDENTIALS", "true")],
    )
    assert v.allowed


def test_same_origin_needs_no_cors():
    ex = Exchange(URL, "http://127.0.0.1:8080", "PUT", ("x-token",), True, preflight=False)
    assert evaluate(ex, 200, []).allowed


def test_null_origin_matches_literal_null():
    ex = Exchange(URL, "null", "GET", (), False, preflight=False)
    assert evaluate(ex, 200, [(ACAO, "null")]).allowed
    assert evaluate(ex, 200, [(ACAO, "*")]).allowed
    assert evaluate(ex, 200, [(ACAO, ORIGIN)]).code == "AllowOriginMismatch"


def test_redirect_location_with_credentials():
    v = evaluate(actual(), 302, [(ACAO, ORIGIN), ("Location", "http://u:p@127.0.0.1:8080/y")])
    assert v.code == "RedirectContainsCredentials"
    assert v.console == HEAD + (
        "Redirect location 'http://u:p@127.0.0.1:8080/y' contains a username and password,"
        " which is disallowed for cross-origin requests."
    )


def test_console_of_the_browser_readme_examples():
    """Two texts recorded from Chromium 156 (tests/browser/ checks such texts live)."""
    v = evaluate(actual(), 200, [(ACAO, "http://localhost:1")])
    assert v.console.endswith(
        "The 'Access-Control-Allow-Origin' header has a value 'http://localhost:1' that is not"
        " equal to the supplied origin. Have the server send the header with a valid value."
    )


# -- preflights (§1.3, §5) --------------------------------------------------------------

OK = [(ACAO, ORIGIN)]
OKC = [(ACAO, ORIGIN), (ACAC, "true")]

PREFLIGHT_CASES = [
    # id, method, names, credentials, status, headers, code, hint-bearing tail
    ("put-allowed", "PUT", (), False, 204, [*OK, (ACAM, "PUT")], "", None),
    ("status-200", "PUT", (), False, 200, [*OK, (ACAM, "PUT")], "", None),
    ("status-206", "PUT", (), False, 206, [*OK, (ACAM, "PUT")], "", None),
    ("get-needs-no-acam", "GET", (), False, 204, OK, "", None),
    ("head-needs-no-acam", "HEAD", (), False, 204, OK, "", None),
    ("post-needs-no-acam", "POST", ("x-token",), False, 204, [*OK, (ACAH, "x-token")], "", None),
    ("post-with-creds-needs-no-acam", "POST", (), True, 204, OKC, "", None),
    (
        "put-missing",
        "PUT",
        (),
        False,
        204,
        [*OK, (ACAM, "GET, POST")],
        "MethodDisallowedByPreflightResponse",
        "Method PUT is not allowed by Access-Control-Allow-Methods in preflight response.",
    ),
    (
        "methods-case-sensitive",
        "PUT",
        (),
        False,
        204,
        [*OK, (ACAM, "put")],
        "MethodDisallowedByPreflightResponse",
        None,
    ),
    (
        "patch-lower-vs-upper",
        "patch",
        (),
        False,
        204,
        [*OK, (ACAM, "PATCH")],
        "MethodDisallowedByPreflightResponse",
        "Method patch is not allowed by Access-Control-Allow-Methods in preflight response.",
    ),
    ("patch-lower-listed", "patch", (), False, 204, [*OK, (ACAM, "patch")], "", None),
    ("get-lower-listed-harmless", "PUT", (), False, 204, [*OK, (ACAM, "get, PUT")], "", None),
    ("method-star", "DELETE", (), False, 204, [*OK, (ACAM, "*")], "", None),
    (
        "method-star-with-creds-literal",
        "DELETE",
        (),
        True,
        204,
        [*OKC, (ACAM, "*")],
        "MethodDisallowedByPreflightResponse",
        None,
    ),
    ("method-literal-star-with-creds", "*", (), True, 204, [*OKC, (ACAM, "*")], "", None),
    ("acam-two-lines", "DELETE", (), False, 204, [*OK, (ACAM, "PUT"), (ACAM, "DELETE")], "", None),
    ("acam-empty-items", "DELETE", (), False, 204, [*OK, (ACAM, ",PUT, ,,DELETE,")], "", None),
    (
        "acam-not-token",
        "PUT",
        (),
        False,
        204,
        [*OK, (ACAM, "Bad method name")],
        "InvalidAllowMethodsPreflightResponse",
        "Cannot parse Access-Control-Allow-Methods response header field in preflight response.",
    ),
    (
        "acam-not-token-even-for-get",
        "GET",
        (),
        False,
        204,
        [*OK, (ACAM, "GET, P(UT")],
        "InvalidAllowMethodsPreflightResponse",
        None,
    ),
    # headers
    (
        "header-allowed",
        "POST",
        ("content-type", "x-token"),
        False,
        204,
        [*OK, (ACAH, "Content-Type, X-Token")],
        "",
        None,
    ),
    (
        "header-missing",
        "POST",
        ("content-type", "x-token"),
        False,
        204,
        [*OK, (ACAH, "content-type")],
        "HeaderDisallowedByPreflightResponse",
        "Request header field x-token is not allowed by Access-Control-Allow-Headers in"
        " preflight response.",
    ),
    (
        "first-missing-in-sorted-order",
        "POST",
        ("x-b", "x-a"),
        False,
        204,
        OK,
        "HeaderDisallowedByPreflightResponse",
        "Request header field x-a is not allowed by Access-Control-Allow-Headers in preflight response.",
    ),
    (
        "acah-empty-items-and-case",
        "POST",
        ("x-print", "y-lol"),
        False,
        204,
        [*OK, (ACAH, ",y-lol,x-PriNT, ,,,Y-PRINT")],
        "",
        None,
    ),
    ("header-star", "POST", ("x-token",), False, 204, [*OK, (ACAH, "*")], "", None),
    (
        "header-star-not-authorization",
        "POST",
        ("authorization",),
        False,
        204,
        [*OK, (ACAH, "*")],
        "HeaderDisallowedByPreflightResponse",
        "Request header field authorization is not allowed by Access-Control-Allow-Headers in preflight response.",
    ),
    (
        "header-star-plus-authorization",
        "POST",
        ("authorization", "x-token"),
        False,
        204,
        [*OK, (ACAH, "*, Authorization")],
        "",
        None,
    ),
    (
        "header-star-with-creds-literal",
        "POST",
        ("x-token",),
        True,
        204,
        [*OKC, (ACAH, "*")],
        "HeaderDisallowedByPreflightResponse",
        None,
    ),
    ("header-literal-star-with-creds", "POST", ("*",), True, 204, [*OKC, (ACAH, "*")], "", None),
    (
        "acah-not-token",
        "POST",
        ("x-token",),
        False,
        204,
        [*OK, (ACAH, "header name with space")],
        "InvalidAllowHeadersPreflightResponse",
        "Cannot parse Access-Control-Allow-Headers response header field in preflight response.",
    ),
    (
        "acam-checked-before-acah",
        "PUT",
        ("x-token",),
        False,
        204,
        [*OK, (ACAH, "x-token")],
        "MethodDisallowedByPreflightResponse",
        None,
    ),
    # status and redirects
    (
        "status-403",
        "PUT",
        (),
        False,
        403,
        [*OK, (ACAM, "PUT")],
        "PreflightInvalidStatus",
        "It does not have HTTP ok status.",
    ),
    (
        "status-401-auth-on-options",
        "PUT",
        (),
        False,
        401,
        [*OK, (ACAM, "PUT")],
        "PreflightInvalidStatus",
        None,
    ),
    ("status-500", "PUT", (), False, 500, [*OK, (ACAM, "PUT")], "PreflightInvalidStatus", None),
    (
        "status-304-no-location",
        "PUT",
        (),
        False,
        304,
        [*OK, (ACAM, "PUT")],
        "PreflightInvalidStatus",
        None,
    ),
    ("status-300", "PUT", (), False, 300, [*OK, (ACAM, "PUT")], "PreflightInvalidStatus", None),
    (
        "redirect-308",
        "PUT",
        (),
        False,
        308,
        [*OK, ("Location", "/api/x/")],
        "PreflightDisallowedRedirect",
        "Redirect is not allowed for a preflight request.",
    ),
    (
        "redirect-301-even-without-acao",
        "PUT",
        (),
        False,
        301,
        [("Location", "/a/")],
        "PreflightDisallowedRedirect",
        None,
    ),
    (
        "redirect-302",
        "PUT",
        (),
        False,
        302,
        [*OK, ("Location", "/a/")],
        "PreflightDisallowedRedirect",
        None,
    ),
    (
        "redirect-303",
        "PUT",
        (),
        False,
        303,
        [*OK, ("Location", "/a/")],
        "PreflightDisallowedRedirect",
        None,
    ),
    (
        "redirect-307",
        "PUT",
        (),
        False,
        307,
        [*OK, ("Location", "/a/")],
        "PreflightDisallowedRedirect",
        None,
    ),
    # the CORS check on the preflight, with the preflight variants
    (
        "no-acao",
        "PUT",
        (),
        False,
        204,
        [(ACAM, "PUT")],
        "PreflightMissingAllowOriginHeader",
        "No 'Access-Control-Allow-Origin' header is present on the requested resource.",
    ),
    (
        "no-acao-beats-bad-status",
        "PUT",
        (),
        False,
        404,
        [],
        "PreflightMissingAllowOriginHeader",
        None,
    ),
    (
        "preflight-star-with-creds",
        "PUT",
        (),
        True,
        204,
        [(ACAO, "*"), (ACAC, "true"), (ACAM, "PUT")],
        "PreflightWildcardOriginNotAllowed",
        "The value of the 'Access-Control-Allow-Origin' header in the response must not be the wildcard '*' when the request's credentials mode is 'include'.",
    ),
    (
        "preflight-needs-acac",
        "PUT",
        (),
        True,
        204,
        [*OK, (ACAM, "PUT")],
        "PreflightInvalidAllowCredentials",
        None,
    ),
    (
        "preflight-two-acao",
        "PUT",
        (),
        False,
        204,
        [*OK, *OK, (ACAM, "PUT")],
        "PreflightMultipleAllowOriginValues",
        None,
    ),
    (
        "preflight-mismatch",
        "PUT",
        (),
        False,
        204,
        [(ACAO, ORIGIN + "/"), (ACAM, "PUT")],
        "PreflightAllowOriginMismatch",
        None,
    ),
    (
        "preflight-invalid-acao",
        "PUT",
        (),
        False,
        204,
        [(ACAO, "**"), (ACAM, "PUT")],
        "PreflightInvalidAllowOriginValue",
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "names", "credentials", "status", "headers", "code", "tail"),
    [c[1:] for c in PREFLIGHT_CASES],
    ids=[c[0] for c in PREFLIGHT_CASES],
)
def test_preflight_response(method, names, credentials, status, headers, code, tail):
    v = evaluate(preflight(method, names, credentials), status, headers)
    assert (v.code, v.allowed) == (code, code == "")
    assert bool(v.cause)
    if code.startswith("Preflight"):
        assert v.console.startswith(HEAD + PRE)
    elif code:
        assert v.console.startswith(HEAD)
        assert PRE not in v.console
    if tail:
        assert v.console.endswith(tail)
        if code.startswith("Preflight"):
            assert v.console == HEAD + PRE + tail
        else:
            assert v.console == HEAD + tail


def test_readme_console_texts_verbatim():
    """Texts recorded from Chromium 156 (tests/browser/ checks such texts live)."""
    v = evaluate(preflight("POST", ("content-type", "x-token")), 204, [*OK, (ACAH, "content-type")])
    assert v.console == HEAD + (
        "Request header field x-token is not allowed by Access-Control-Allow-Headers in"
        " preflight response."
    )
    v = evaluate(preflight("POST", ("content-type",)), 404, [])
    assert v.console == HEAD + PRE + (
        "No 'Access-Control-Allow-Origin' header is present on the requested resource."
    )


# -- lists, exposure, max-age (§1.3, §2) ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, []),
        ("", []),
        ("PUT", ["PUT"]),
        (" PUT ,\tDELETE ", ["PUT", "DELETE"]),
        (",,a,,", ["a"]),
        ("a b", None),
        ('"a"', None),
        ("a, b/c", None),
        ("x-PriNT, *", ["x-PriNT", "*"]),
    ],
)
def test_parse_list(value, parsed):
    assert parse_list(value) == parsed


RESPONSE = [
    ("Content-Type", "application/json"),
    ("Content-Length", "2"),
    ("X-Request-Id", "r1"),
    ("Server", "Werkzeug"),
    ("Set-Cookie", "a=b"),
    ("Cache-Control", "no-store"),
]


@pytest.mark.parametrize(
    ("aceh", "credentials", "expected"),
    [
        (None, False, {"content-type", "content-length", "cache-control"}),
        (
            "X-Request-Id",
            False,
            {"content-type", "content-length", "cache-control", "x-request-id"},
        ),
        ("x-request-id", True, {"content-type", "content-length", "cache-control", "x-request-id"}),
        (
            "*",
            False,
            {
                "content-type",
                "content-length",
                "cache-control",
                "x-request-id",
                "server",
                "access-control-expose-headers",
            },
        ),
        ("*", True, {"content-type", "content-length", "cache-control"}),
        ("*, Server", True, {"content-type", "content-length", "cache-control", "server"}),
        (
            "Set-Cookie, X-Request-Id",
            False,
            {"content-type", "content-length", "cache-control", "x-request-id"},
        ),
        ("X-Request Id", False, {"content-type", "content-length", "cache-control"}),
        ("X-Missing", False, {"content-type", "content-length", "cache-control"}),
    ],
    ids=[
        "safelist",
        "listed",
        "case-insensitive",
        "star",
        "star-creds-literal",
        "star-and-name-creds",
        "set-cookie-never",
        "unparseable",
        "absent-header",
    ],
)
def test_exposed_headers(aceh, credentials, expected):
    headers = [*RESPONSE, *([("Access-Control-Expose-Headers", aceh)] if aceh else [])]
    assert exposed_headers(headers, credentials) == frozenset(expected)


@pytest.mark.parametrize(
    ("values", "chromium", "firefox", "webkit"),
    [
        ([], 5, 5, 5),
        (["600"], 600, 600, 600),
        (["7200"], 7200, 7200, 600),
        (["86400"], 7200, 86400, 600),
        (["100000"], 7200, 86400, 600),
        (["0"], 0, 0, 0),
        (["-1"], 0, 0, 5),
        (["abc"], 5, 0, 5),
        (["1.5"], 5, 0, 5),
        (["600", "600"], 5, 0, 5),
        (["99999999999999999999"], 5, 86400, 5),
    ],
    ids=[
        "absent",
        "600",
        "7200",
        "86400",
        "above-all",
        "zero",
        "negative",
        "word",
        "fraction",
        "two-lines",
        "overflow",
    ],
)
def test_preflight_max_age(values, chromium, firefox, webkit):
    headers = [("Access-Control-Max-Age", v) for v in values]
    assert preflight_max_age(headers) == {
        "chromium": chromium,
        "firefox": firefox,
        "webkit": webkit,
    }
