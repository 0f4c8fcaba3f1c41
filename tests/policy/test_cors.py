"""The pure CORS policy, table by table (docs/cors-notes.md §1-§6)."""

from __future__ import annotations

import pytest

from proxy.policy.cors import CorsPolicy, CorsRule, expose_all_value

APP = "http://localhost:3000"


def policy(**kw: object) -> CorsPolicy:
    base: dict[str, object] = {"name": "r", "origins": (APP,)}
    base.update(kw)
    return CorsPolicy([CorsRule(**base)])  # type: ignore[arg-type]


def acao(p: CorsPolicy, origin: str | None, path: str = "/x") -> str | None:
    d = p.actual(path=path, origin=origin)
    return dict(d.headers).get("Access-Control-Allow-Origin")


class TestOriginMatching:
    @pytest.mark.parametrize(
        ("origin", "allowed"),
        [
            (APP, True),
            ("http://localhost:3000/", False),  # trailing slash: never from a browser
            ("http://LOCALHOST:3000", False),  # request Origin is never normalized
            ("HTTP://localhost:3000", False),
            ("http://localhost:3001", False),
            ("https://localhost:3000", False),
            ("http://localhost", False),
            ("http://127.0.0.1:3000", False),
            ("http://localhost:3000.evil.net", False),
            ("http://evil-localhost:3000", False),
            ("null", False),
            ("", False),
        ],
    )
    def test_exact(self, origin: str, allowed: bool) -> None:
        assert policy().origin_allowed("/x", origin) is allowed

    @pytest.mark.parametrize(
        ("origin", "allowed"),
        [
            ("https://a.example.com", True),
            ("https://xn--lve-6lad.example.com", True),
            ("https://example.com", False),  # not the apex
            ("https://a.b.example.com", False),  # exactly one label
            ("https://a.example.com.evil.net", False),
            ("https://evil-example.com", False),
            ("http://a.example.com", False),  # scheme matters
            ("https://a.example.com:8443", False),
            ("https://.example.com", False),
            ("https://A.example.com", False),
        ],
    )
    def test_one_label_glob(self, origin: str, allowed: bool) -> None:
        p = policy(origins=("https://*.example.com",))
        assert p.origin_allowed("/x", origin) is allowed

    @pytest.mark.parametrize(
        ("origin", "allowed"),
        [
            ("https://pr-12.preview.example.com", True),
            ("https://pr-12.preview.example.com.evil.net", False),  # full match, never search
            ("xhttps://pr-12.preview.example.com", False),
            ("https://pr_12.preview.example.com", False),
        ],
    )
    def test_regex_is_full_match(self, origin: str, allowed: bool) -> None:
        p = policy(origins=(), origin_regex=r"https://[a-z0-9-]+\.preview\.example\.com")
        assert p.origin_allowed("/x", origin) is allowed

    @pytest.mark.parametrize(
        "origin",
        [
            "ftp://x",
            "http://a..b",
            "http://.test",
            "http://x:80",
            "https://x:443",
            "http://x:0x50",
            "http://[::FFFF:1]",
            "http://[0:0::1]",
            "http://01.2.3.4",
            "http://x/",
            "javascript:alert(1)",
            "http://x\r\nSet-Cookie: a=b",
            "http://localhost:3000, http://localhost:3000",
            "null",
        ],
    )
    def test_star_reflects_only_valid_serialized_origins(self, origin: str) -> None:
        p = policy(origins=("*",), allow_credentials=True)
        assert acao(p, origin) is None

    @pytest.mark.parametrize(
        "origin",
        [
            "http://localhost:3000",
            "https://a.b",
            "http://[::1]:8080",
            "http://10.0.0.1",
            "https://xn--e1afmkfd.xn--p1ai",
        ],
    )
    def test_star_with_credentials_reflects(self, origin: str) -> None:
        p = policy(origins=("*",), allow_credentials=True)
        d = p.actual(path="/x", origin=origin)
        assert dict(d.headers) == {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
        }

    def test_star_without_credentials_is_literal_star(self) -> None:
        p = policy(origins=("*",))
        assert acao(p, "https://anything.test") == "*"
        assert "Access-Control-Allow-Credentials" not in dict(
            p.actual(path="/x", origin="https://a.b").headers
        )

    def test_null_only_when_listed(self) -> None:
        assert acao(policy(origins=("*",)), "null") is None
        assert acao(policy(origins=("https://*.example.com",)), "null") is None
        assert acao(policy(origins=("null",)), "null") == "null"
        assert acao(policy(origins=("null", "*")), "null") == "null"


class TestPaths:
    def test_first_rule_matching_path_and_origin_wins(self) -> None:
        """Issue 17: the first rule whose paths match AND whose origins accept the Origin
        decides (the contract and config.example.yaml); before, the first path match
        decided alone and b.test was refused on /api/."""
        p = CorsPolicy(
            [
                CorsRule(name="api", paths=("/api/*",), origins=("http://a.test",)),
                CorsRule(name="all", origins=("http://b.test",)),
            ]
        )
        assert p.rule_for("/api/v1/items") is p.rules[0]
        assert p.rule_for("/api/v1/items", "http://b.test") is p.rules[1]
        assert p.rule_for("/static/x.js") is p.rules[1]
        assert p.origin_allowed("/api/x", "http://a.test")
        assert p.origin_allowed("/api/x", "http://b.test")  # falls through to "all"
        assert p.actual(path="/api/x", origin="http://b.test").rule == "all"
        assert not p.origin_allowed("/static/x", "http://a.test")

    def test_strict_and_loose_rules_on_one_path(self) -> None:
        p = CorsPolicy(
            [
                CorsRule(
                    name="strict",
                    paths=("/api/*",),
                    origins=("https://app.test",),
                    allow_methods=("GET",),
                    allow_credentials=True,
                ),
                CorsRule(name="loose", paths=("/api/*",), origins=("http://localhost:5173",)),
            ]
        )
        strict = p.preflight(
            path="/api/x", origin="https://app.test", request_method="DELETE", request_headers=None
        )
        assert (strict.rule, strict.allowed) == ("strict", False)
        loose = p.preflight(
            path="/api/x",
            origin="http://localhost:5173",
            request_method="DELETE",
            request_headers=None,
        )
        assert (loose.rule, loose.allowed) == ("loose", True)
        assert "Access-Control-Allow-Credentials" not in dict(loose.headers)

    def test_a_refused_origin_names_the_first_rule_whose_paths_match(self) -> None:
        p = CorsPolicy(
            [
                CorsRule(name="other", paths=("/other/*",), origins=("http://a.test",)),
                CorsRule(name="first", paths=("/api/*",), origins=("http://a.test",)),
                CorsRule(name="second", paths=("/api/*",), origins=("http://b.test",)),
            ]
        )
        d = p.actual(path="/api/x", origin="http://c.test")
        assert (d.allowed, d.rule) == (False, "first")
        assert d.matched is p.rules[1]
        assert d.fix == 'add "http://c.test" to rules[1].origins'
        pre = p.preflight(
            path="/api/x", origin="http://c.test", request_method="PUT", request_headers=None
        )
        assert (pre.status, pre.rule, pre.origin_allowed) == (403, "first", False)

    @pytest.mark.parametrize(
        ("path", "matches"),
        [
            ("/api/x", True),
            ("/api/v1/items?x=1", True),
            ("/api/", True),
            ("/api", False),
            ("/API/x", False),  # case-sensitive
            ("/%61pi/x", True),  # matched on the decoded path the upstream routes
            ("/apix", False),
            ("/static/api/x", False),
        ],
    )
    def test_glob(self, path: str, matches: bool) -> None:
        p = CorsPolicy([CorsRule(name="api", paths=("/api/*",), origins=(APP,))])
        assert (p.rule_for(path) is not None) is matches

    def test_no_rule_no_headers_no_vary(self) -> None:
        p = CorsPolicy([CorsRule(name="api", paths=("/api/*",), origins=(APP,))])
        d = p.actual(path="/other", origin=APP)
        assert d.headers == ()
        assert not d.vary
        assert d.rule is None


class TestPreflight:
    def pf(
        self,
        p: CorsPolicy,
        method: str = "PUT",
        headers: str | None = None,
        origin: str = APP,
        pna: bool = False,
    ):
        return p.preflight(
            path="/x",
            origin=origin,
            request_method=method,
            request_headers=headers,
            private_network=pna,
        )

    def test_allowed(self) -> None:
        p = policy(
            allow_headers=("content-type", "authorization"), allow_credentials=True, max_age=600
        )
        d = self.pf(p, "PUT", "authorization,content-type")
        h = dict(d.headers)
        assert (d.allowed, d.status) == (True, 204)
        assert h["Access-Control-Allow-Origin"] == APP
        assert h["Access-Control-Allow-Credentials"] == "true"
        assert "PUT" in h["Access-Control-Allow-Methods"].split(", ")
        assert {"authorization", "content-type"} <= set(
            h["Access-Control-Allow-Headers"].split(", ")
        )
        assert h["Access-Control-Max-Age"] == "600"
        assert "Origin" in h["Vary"]

    @pytest.mark.parametrize(
        ("kw", "method", "headers", "origin", "reason"),
        [
            ({}, "PUT", None, "http://evil.test", "origin 'http://evil.test' is not allowed"),
            ({}, "PUT", "x y", APP, "malformed"),
            ({}, "P UT", None, APP, "is not a method"),
        ],
    )
    def test_denied_has_reason_and_no_cors_headers(
        self, kw, method, headers, origin, reason
    ) -> None:
        d = self.pf(policy(**kw), method, headers, origin)
        assert (d.allowed, d.status) == (False, 403)
        assert reason in d.reason
        assert not [n for n, _ in d.headers if n.lower().startswith("access-control-")]

    @pytest.mark.parametrize(
        ("kw", "method", "headers", "reason"),
        [
            ({"allow_methods": ("GET", "PATCH")}, "patch", None, "method patch is not in"),
            ({"allow_methods": ("GET", "patch")}, "PATCH", None, "method PATCH is not in"),
            ({}, "PUT", "x-custom", "x-custom not in allow_headers"),
            ({}, "PUT", "authorization", "authorization not in allow_headers"),
            ({"allow_credentials": True}, "PUT", "x-api-key,x-custom", "x-api-key, x-custom"),
        ],
    )
    def test_refused_method_or_header_names_the_origin(self, kw, method, headers, reason) -> None:
        """An accepted origin asking for what the rule does not allow: 204 naming the
        origin with the rule's own lists and Max-Age 0, so the browser's console names
        the method or header instead of a missing Access-Control-Allow-Origin."""
        rule = policy(allow_headers=("content-type", "x-token"), **kw)
        d = self.pf(rule, method, headers)
        assert (d.allowed, d.status, d.origin_allowed) == (False, 204, True)
        assert reason in d.reason
        h = dict(d.headers)
        assert h["Access-Control-Allow-Origin"] == APP
        credentials = kw.get("allow_credentials")
        assert h.get("Access-Control-Allow-Credentials") == ("true" if credentials else None)
        methods = kw.get("allow_methods", ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"))
        assert h["Access-Control-Allow-Methods"] == ", ".join(methods)  # the rule's own
        assert h["Access-Control-Allow-Headers"] == (
            "content-type, x-token, accept, accept-language, content-language"
        )
        for refused in (method, *(headers or "").split(",")):
            if refused and refused != "PUT":
                assert refused not in h["Access-Control-Allow-Methods"].split(", ")
                assert refused not in h["Access-Control-Allow-Headers"].split(", ")
        assert "*" not in h.values()
        assert h["Access-Control-Max-Age"] == "0"
        assert h["X-Cors-Proxy-Error"] == d.reason
        assert "Origin" in h["Vary"]
        assert d.fix.startswith("add ")

    def test_a_refusal_never_lists_star(self) -> None:
        d = self.pf(policy(allow_methods=("*",), allow_headers=("x-a",)), "PUT", "x-b")
        h = dict(d.headers)
        assert d.status == 204
        assert "Access-Control-Allow-Methods" not in h  # "*" is mirrored, never listed
        assert "x-b" not in h["Access-Control-Allow-Headers"]

    def test_safelisted_request_headers_are_implicitly_allowed(self) -> None:
        d = self.pf(policy(), "PUT", "accept,accept-language,content-language,content-type")
        assert d.allowed
        names = set(dict(d.headers)["Access-Control-Allow-Headers"].split(", "))
        assert {"accept", "accept-language", "content-language", "content-type"} <= names

    def test_empty_items_tolerated_and_case_insensitive(self) -> None:
        d = self.pf(policy(allow_headers=("x-custom",)), "PUT", ",X-Custom, ,,")
        assert d.allowed

    def test_wildcards_are_mirrored_never_star(self) -> None:
        p = policy(allow_methods=("*",), allow_headers=("*",), allow_credentials=True)
        d = self.pf(p, "PROPFIND", "authorization,x-anything")
        h = dict(d.headers)
        assert h["Access-Control-Allow-Methods"] == "PROPFIND"
        assert h["Access-Control-Allow-Headers"] == "authorization, x-anything"  # named explicitly
        assert "*" not in h.values()

    def test_star_origin_with_credentials_reflects_in_preflight(self) -> None:
        p = policy(origins=("*",), allow_credentials=True)
        h = dict(self.pf(p, "PUT", origin="https://x.test").headers)
        assert h["Access-Control-Allow-Origin"] == "https://x.test"
        assert h["Access-Control-Allow-Credentials"] == "true"

    def test_private_network_is_opt_in(self) -> None:
        assert not self.pf(policy(), "GET", pna=True).allowed
        d = self.pf(policy(allow_private_network=True), "GET", pna=True)
        assert dict(d.headers)["Access-Control-Allow-Private-Network"] == "true"
        assert "Access-Control-Allow-Private-Network" not in dict(
            self.pf(policy(allow_private_network=True)).headers
        )

    def test_no_max_age_when_null(self) -> None:
        assert "Access-Control-Max-Age" not in dict(self.pf(policy(max_age=None)).headers)


class TestActual:
    def test_credentials_and_expose(self) -> None:
        p = policy(allow_credentials=True, expose_headers=("X-Request-Id",))
        assert dict(p.actual(path="/x", origin=APP).headers) == {
            "Access-Control-Allow-Origin": APP,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": "X-Request-Id",
        }

    def test_proxy_errors_expose_the_error_header(self) -> None:
        h = dict(
            policy(expose_headers=("X-Request-Id",))
            .actual(path="/x", origin=APP, error=True)
            .headers
        )
        assert h["Access-Control-Expose-Headers"] == "X-Request-Id, X-Cors-Proxy-Error"

    def test_the_error_header_is_exposed_once_when_the_rule_lists_it(self) -> None:
        p = policy(expose_headers=("x-cors-proxy-error", "X-Request-Id"))
        h = dict(p.actual(path="/x", origin=APP, error=True).headers)
        assert h["Access-Control-Expose-Headers"] == "x-cors-proxy-error, X-Request-Id"

    def test_disallowed_and_absent_origin_still_vary(self) -> None:
        p = policy()
        for origin in ("http://evil.test", None):
            d = p.actual(path="/x", origin=origin)
            assert d.headers == ()
            assert d.vary
            assert not d.allowed

    def test_no_leak_between_credentialed_requests(self) -> None:
        """Starlette's regression: shared headers must not carry the previous origin."""
        p = policy(origins=("*",), allow_credentials=True)
        assert acao(p, "https://a.test") == "https://a.test"
        assert acao(p, "https://b.test") == "https://b.test"
        assert acao(p, "https://a.test") == "https://a.test"

    def test_expose_all_names_response_headers(self) -> None:
        value = expose_all_value(
            ["Content-Type", "X-Request-Id", "Set-Cookie", "x-request-id", "Server"]
        )
        assert value == "X-Request-Id, Server"

    def test_expose_all_value_is_cached_by_names(self) -> None:
        names = ["Content-Type", "X-Trace"]
        assert expose_all_value(names) == "X-Trace"
        assert expose_all_value(names) == "X-Trace"  # from the cache
        assert expose_all_value(["X-Other", "Content-Type"]) == "X-Other"
        assert expose_all_value(["x-trace"]) == "x-trace"  # spelled as the response has it

    def test_nothing_is_kept_between_calls(self) -> None:
        """Endless distinct origins leave the policy as it was: the caches are the
        config generation's, bounded in bytes (tests/test_generation.py)."""
        p = policy(origins=("*",), allow_credentials=True)
        before = repr(vars(p))
        for i in range(2000):
            p.actual(path=f"/x/{i}", origin=f"https://h{i}.test")
            p.preflight(path="/x", origin=f"https://h{i}.test", request_method="PUT",
                        request_headers=None)  # fmt: skip
        assert repr(vars(p)) == before
