"""Header plans: hop-by-hop, X-Forwarded-*, Vary, Location (pure)."""

from __future__ import annotations

import pytest

from proxy.config.model import UpstreamTarget
from proxy.policy.cors import ActualDecision
from proxy.policy.headers import (
    ResponseHead,
    downstream_response_headers,
    merge_vary,
    response_head,
    rewrite_location,
    upstream_request_headers,
)


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [n.lower() for n, _ in headers]


class TestRequest:
    def test_hop_by_hop_and_connection_named_are_dropped(self) -> None:
        out = upstream_request_headers(
            [
                ("Host", "127.0.0.1:8080"),
                ("Connection", "keep-alive, X-Foo"),
                ("X-Foo", "gone"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic x"),
                ("Expect", "100-continue"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
            ],
            client_ip="127.0.0.1",
            scheme="http",
            upstream_authority=None,
        )
        assert names(out)[:3] == ["host", "cookie", "cookie"]
        assert ("X-Forwarded-For", "127.0.0.1") in out
        assert ("X-Forwarded-Proto", "http") in out
        assert ("X-Forwarded-Host", "127.0.0.1:8080") in out
        for gone in (
            "connection",
            "x-foo",
            "keep-alive",
            "te",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "expect",
        ):
            assert gone not in names(out)

    def test_forwarded_values_are_appended(self) -> None:
        out = upstream_request_headers(
            [
                ("Host", "h"),
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Forwarded-For", "10.0.0.2"),
                ("X-Forwarded-Proto", "https"),
            ],
            client_ip="127.0.0.1",
            scheme="http",
            upstream_authority=None,
        )
        assert ("X-Forwarded-For", "10.0.0.1, 10.0.0.2, 127.0.0.1") in out
        assert ("X-Forwarded-Proto", "https, http") in out

    def test_host_header_upstream(self) -> None:
        out = upstream_request_headers(
            [("Host", "127.0.0.1:8080")],
            client_ip="::1",
            scheme="http",
            upstream_authority="127.0.0.1:5000",
        )
        assert ("Host", "127.0.0.1:5000") in out
        assert ("Host", "127.0.0.1:8080") not in out
        assert ("X-Forwarded-Host", "127.0.0.1:8080") in out

    def test_connection_can_name_host_and_forwarded_fields(self) -> None:
        """Fields a client lists in Connection are hop-by-hop, whichever they are."""
        out = upstream_request_headers(
            [
                ("Host", "h:1"),
                ("Connection", "Host, X-Forwarded-For"),
                ("X-Forwarded-For", "10.0.0.9"),
                ("Proxy-Foo", "x"),
                ("X-Kept", "y"),
            ],
            client_ip="127.0.0.1",
            scheme="http",
            upstream_authority=None,
        )
        assert out == [
            ("X-Kept", "y"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Proto", "http"),
        ]

    def test_every_input_counts_and_each_caller_gets_its_own_list(self) -> None:
        """(The generation's request cache keeps one per head and client address.)"""
        fields = [("Host", "h:1"), ("Origin", "http://localhost:3000")]

        def plan(ip: str, authority: str | None = None) -> list[tuple[str, str]]:
            return upstream_request_headers(
                fields, client_ip=ip, scheme="http", upstream_authority=authority
            )

        first = plan("10.0.0.1")
        first.append(("X-Changed", "by the caller"))  # never seen by the next caller
        assert plan("10.0.0.1") == [
            ("Host", "h:1"),
            ("Origin", "http://localhost:3000"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "h:1"),
        ]
        assert ("X-Forwarded-For", "10.0.0.2") in plan("10.0.0.2")  # the client is input
        assert ("Host", "up:5000") in plan("10.0.0.1", "up:5000")


class TestResponse:
    def test_filtering_keeps_repeats_and_pulls_cors_and_vary(self) -> None:
        plan = downstream_response_headers(
            [
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "10"),
                ("Vary", "Accept-Encoding"),
                ("vary", "Cookie, accept-encoding"),
                ("Access-Control-Allow-Origin", "*"),
            ],
            strip_cors=True,
        )
        assert plan.headers == [
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", "10"),
        ]
        assert plan.upstream_cors == [("Access-Control-Allow-Origin", "*")]
        assert merge_vary(plan.vary, "Origin") == "Accept-Encoding, Cookie, Origin"

    def test_plan_names_cookies_and_locations(self) -> None:
        plan = downstream_response_headers(
            [
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "gone"),
                ("Set-Cookie", "a=1"),
                ("Location", "/next"),
                ("Proxy-Status", "x"),
                ("set-cookie", "b=2"),
            ],
            strip_cors=True,
        )
        assert plan.headers == [("Set-Cookie", "a=1"), ("Location", "/next"), ("set-cookie", "b=2")]
        assert plan.names == ["set-cookie", "location", "set-cookie"]
        assert plan.cookies == ["a=1", "b=2"]
        assert plan.locations
        assert not downstream_response_headers([("Server", "x")], strip_cors=True).locations

    def test_preserve_keeps_upstream_cors(self) -> None:
        plan = downstream_response_headers([("Access-Control-Allow-Origin", "*")], strip_cors=False)
        assert plan.headers == [("Access-Control-Allow-Origin", "*")]

    @pytest.mark.parametrize(
        ("tokens", "add", "out"),
        [
            ([], None, None),
            ([], "Origin", "Origin"),
            (["origin"], "Origin", "origin"),
            (["*"], "Origin", "*"),
        ],
    )
    def test_merge_vary(self, tokens: list[str], add: str | None, out: str | None) -> None:
        assert merge_vary(tokens, add) == out


ALLOWED = ActualDecision(
    True,
    (("Access-Control-Allow-Origin", "http://localhost:3000"),),
    "frontend",
    "",
    vary=True,
    expose_all=True,
)
UPSTREAM = frozenset({"http://127.0.0.1:5000"})


def head(
    fields: list[tuple[str, str]],
    decision: ActualDecision = ALLOWED,
    *,
    override: bool = True,
    client: str = "http://127.0.0.1:8080",
) -> ResponseHead:
    return response_head(
        fields, decision, override=override, upstream_origins=UPSTREAM, client_origin=client
    )


class TestResponseHead:
    """The whole head for the client, kept per upstream head and decision (pure)."""

    def test_fields_cors_vary_cookies_and_location(self) -> None:
        got = head(
            [
                ("Content-Type", "text/html"),
                ("Location", "http://127.0.0.1:5000/next"),
                ("Set-Cookie", "a=1"),
                ("Vary", "Accept-Encoding"),
                ("Access-Control-Allow-Origin", "*"),
                ("Connection", "keep-alive"),
            ]
        )
        assert got.fields == (
            ("Content-Type", "text/html"),
            ("Location", "http://127.0.0.1:8080/next"),
            ("Set-Cookie", "a=1"),
            ("Access-Control-Allow-Origin", "http://localhost:3000"),
            ("Access-Control-Expose-Headers", "Location"),
            ("Vary", "Accept-Encoding, Origin"),
        )
        assert got.cookies == ("a=1",)
        assert got.upstream_cors == (("Access-Control-Allow-Origin", "*"),)

    def test_every_input_changes_the_head(self) -> None:
        """(The generation's response cache keys plans by all of these: test_generation.)"""
        fields = [("Location", "http://127.0.0.1:5000/a"), ("Access-Control-Max-Age", "5")]
        base = head(fields)
        assert head(list(fields)) == base
        denied = ActualDecision(False, (), "frontend", "origin x", vary=True)
        assert ("Access-Control-Allow-Origin", "http://localhost:3000") not in head(
            fields, denied
        ).fields
        kept_upstream = head(fields, override=False).fields  # the upstream's CORS stays...
        assert ("Access-Control-Max-Age", "5") in kept_upstream
        assert ("Access-Control-Allow-Origin", "http://localhost:3000") not in kept_upstream
        assert ("Location", "http://localhost:9/a") in head(
            fields, client="http://localhost:9"
        ).fields
        dated = head([*fields, ("Date", "Fri, 04 Dec 2026 22:00:01 GMT")])
        assert ("Date", "Fri, 04 Dec 2026 22:00:01 GMT") in dated.fields
        assert len({base, head(fields, denied), dated, head(fields, override=False)}) == 4


class TestLocation:
    aliases = UpstreamTarget.parse("http://127.0.0.1:5000").aliases

    @pytest.mark.parametrize(
        ("location", "out"),
        [
            ("http://127.0.0.1:5000/api/hello?x=1", "http://localhost:8080/api/hello?x=1"),
            ("http://localhost:5000/a", "http://localhost:8080/a"),
            ("http://127.0.0.1:5000", "http://localhost:8080"),
            ("//127.0.0.1:5000/a", "http://localhost:8080/a"),
            ("/relative", "/relative"),
            ("http://127.0.0.1:5001/a", "http://127.0.0.1:5001/a"),
            ("https://example.com/a", "https://example.com/a"),
            ("http://[bad", "http://[bad"),
        ],
    )
    def test_rewrite(self, location: str, out: str) -> None:
        assert rewrite_location(location, self.aliases, "http://localhost:8080") == out

    def test_ipv6_upstream(self) -> None:
        aliases = UpstreamTarget.parse("http://[::1]:5000").aliases
        here = "http://localhost:8080"
        assert rewrite_location("http://[::1]:5000/a?b", aliases, here) == here + "/a?b"
        assert rewrite_location("http://127.0.0.1:5000/a", aliases, here) == here + "/a"
        assert rewrite_location("http://[::2]:5000/a", aliases, here) == "http://[::2]:5000/a"
