"""The config loader: defaults, precedence, normalization, one message per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.loader import load
from proxy.config.model import (
    Config,
    InspectorConfig,
    Overrides,
    UpstreamTarget,
    describe,
    overrides_from_env,
)
from proxy.errors import ConfigError
from tests.support import ROOT


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def problems(tmp_path: Path, data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, data))
    return info.value.problems


def test_example_config_loads() -> None:
    cfg = load(str(ROOT / "config.example.yaml"))
    assert (cfg.listen_host, cfg.listen_port, cfg.upstream) == (
        "127.0.0.1",
        8080,
        "http://127.0.0.1:5000",
    )
    assert [r.name for r in cfg.rules] == ["frontend", "everything-else"]
    for rule in cfg.rules:  # a page on Vite's dev server works too
        assert {"http://localhost:3000", "http://localhost:5173"} <= set(rule.origins)
    assert cfg.rules[0].allow_headers == ("content-type", "authorization", "x-requested-with")
    assert cfg.warnings == ()


def test_defaults_are_safe() -> None:
    cfg = load(None)
    assert cfg == Config(source=None)
    assert cfg.listen_host == "127.0.0.1"  # never all interfaces unless asked
    assert cfg.rules == ()


def test_inspector_key(tmp_path: Path) -> None:
    assert load(None).inspector == InspectorConfig(True, (), 500, ())
    cfg = load(write(tmp_path, {"inspector": {"allow": ["192.168.1.7", "fd00::/8"], "keep": 50,
                                              "hosts": ["DevBox.lan"]}}))  # fmt: skip
    assert cfg.inspector == InspectorConfig(
        True, ("192.168.1.7/32", "fd00::/8"), 50, ("devbox.lan",)
    )
    assert "inspector: /__cors-proxy__/ for loopback, 192.168.1.7/32, fd00::/8; keeps the last " \
        "50 exchanges; hosts also devbox.lan" in describe(cfg)  # fmt: skip
    off = load(write(tmp_path, {"inspector": False}))
    assert not off.inspector.enabled
    assert "inspector: off" in describe(off)


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"listen": "127.0.0.1:1111", "upstream": "http://127.0.0.1:2222"})
    env = overrides_from_env(
        {"CORS_PROXY_LISTEN": "127.0.0.1:3333", "CORS_PROXY_UPSTREAM": "http://127.0.0.1:4444"}
    )
    assert load(path, env).listen_port == 3333
    assert load(path, env).upstream == "http://127.0.0.1:4444"
    flags = Overrides(listen="0.0.0.0:5555", upstream=env.upstream)
    assert (load(path, flags).listen_host, load(path, flags).listen_port) == ("0.0.0.0", 5555)
    assert load(path).listen_port == 1111


def test_origin_flag_is_the_zero_config_rule() -> None:
    cfg = load(
        None,
        overrides_from_env({"CORS_PROXY_ORIGINS": "http://localhost:3000, http://localhost:5173/"}),
    )
    (rule,) = cfg.rules
    assert rule.origins == ("http://localhost:3000", "http://localhost:5173")
    assert rule.allow_credentials
    assert rule.allow_headers == ("*",)
    assert any("normalized" in w for w in cfg.warnings)


def test_normalization_warns(tmp_path: Path) -> None:
    cfg = load(
        write(tmp_path, {"rules": [{"origins": ["HTTP://LocalHost:3000/", "https://x.test:443"]}]})
    )
    assert cfg.rules[0].origins == ("http://localhost:3000", "https://x.test")
    assert len(cfg.warnings) == 2
    assert "'HTTP://LocalHost:3000/' normalized to 'http://localhost:3000'" in cfg.warnings[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"listne": "x"}, "listne: unknown key (did you mean 'listen'?)"),
        (
            {"rules": [{"origins": ["http://a.test"], "allow_header": ["x"]}]},
            "rules[0].allow_header: unknown key (did you mean 'allow_headers'?)",
        ),
        (
            {"rules": [{"origins": ["http://a.test"], "allow_methods": ["GET", "BAD METHOD"]}]},
            "rules[0].allow_methods[1]: 'BAD METHOD' is not a valid HTTP method",
        ),
        (
            {"rules": [{"origins": ["http://a.test"], "allow_headers": ["X:Y"]}]},
            "rules[0].allow_headers[0]: 'X:Y' is not a valid HTTP header name",
        ),
        (
            {"rules": [{"origins": ["null"], "allow_credentials": True}]},
            "rules[0].origins: 'null' cannot be combined with allow_credentials: true",
        ),
        (
            {"rules": [{"origin_regex": "https://(x"}]},
            "rules[0].origin_regex: 'https://(x' is not a valid regex",
        ),
        (
            {"inspector": {"enable": True}},
            "inspector.enable: unknown key (did you mean 'enabled'?)",
        ),
        ({"inspector": "yes"}, "inspector: expected a mapping with enabled, allow, keep, hosts"),
        ({"inspector": {"enabled": "no"}}, "inspector.enabled: expected true or false, got 'no'"),
        (
            {"inspector": {"allow": ["192.168.1.0/24", "lan"]}},
            "inspector.allow[1]: 'lan' is not an IP address or network",
        ),
        ({"inspector": {"keep": 0}}, "inspector.keep: expected a whole number 1 to 100000, got 0"),
        (
            {"inspector": {"hosts": ["http://devbox:8080"]}},
            "inspector.hosts[0]: 'http://devbox:8080' is not a host name",
        ),
        (
            {"rules": [{"origins": ["localhost:3000"]}]},
            "rules[0].origins[0]: 'localhost:3000' is not a valid origin",
        ),
        (
            {"rules": [{"origins": ["http://a.test/app"]}]},
            "rules[0].origins[0]: 'http://a.test/app' is not a valid origin",
        ),
        ({"rules": [{"name": "x"}]}, "rules[0].origins: a rule needs origins or origin_regex"),
        (
            {"rules": [{"origins": ["http://a.test"], "max_age": "10"}]},
            "rules[0].max_age: expected whole seconds >= 0 or null, got '10'",
        ),
        (
            {"rules": [{"origins": ["http://a.test"], "allow_credentials": "yes"}]},
            "rules[0].allow_credentials: expected true or false, got 'yes'",
        ),
        (
            {"rules": [{"origins": ["http://a.test"], "paths": ["api/*"]}]},
            "rules[0].paths[0]: 'api/*' must start with '/'",
        ),
        ({"rules": {"origins": []}}, "rules: expected a list of rules"),
        (
            {"timeouts": {"connect": "abc"}},
            "timeouts.connect: expected a number of seconds > 0, got 'abc'",
        ),
        (
            {"timeouts": {"connect": 0}},
            "timeouts.connect: 0 would fail every request at once; expected a number of"
            " seconds > 0, got 0",
        ),
        (
            {"timeouts": {"read": 0.0}},
            "timeouts.read: 0 would fail every request at once; expected a number of"
            " seconds > 0 or null for no limit, got 0.0",
        ),
        ({"upstream_wait": -1}, "upstream_wait: expected a number of seconds >= 0, got -1"),
        ({"timeouts": {"conect": 1}}, "timeouts.conect: unknown key (did you mean 'connect'?)"),
        ({"listen": "localhost"}, "listen: 'localhost' is not HOST:PORT"),
        ({"listen": "127.0.0.1:70000"}, "listen: '127.0.0.1:70000' is not HOST:PORT"),
        (
            {"upstream": "127.0.0.1:5000"},
            "upstream: '127.0.0.1:5000' must be an http:// or https:// URL",
        ),
        ({"upstream": 5000}, "upstream: expected a URL"),
        ({"upstream": "http://"}, "upstream: 'http://' must be an http:// or https:// URL"),
        ({"upstream": "ftp://x:21"}, "upstream: 'ftp://x:21' must be an http:// or https:// URL"),
        ({"upstream": "http://x:99999"}, "upstream: 'http://x:99999' is not a valid URL (port"),
        ({"upstream": "http://x:5o"}, "upstream: 'http://x:5o' is not a valid URL (the port"),
        ({"upstream": "http://[zz]:5000"}, "upstream: 'http://[zz]:5000' is not a valid URL"),
        ({"upstream": "http://a:b@x:5000"}, "upstream: 'http://a:b@x:5000' must not carry a"),
        ({"upstream": "http://x:5000/?a=1"}, "upstream: 'http://x:5000/?a=1' must not have a"),
        ({"host_header": "keep"}, "host_header: 'keep' is not one of preserve, upstream"),
        ({"upstream_cors": "merge"}, "upstream_cors: 'merge' is not one of override, preserve"),
    ],
)
def test_each_problem_names_key_and_value(tmp_path: Path, data: Any, expected: str) -> None:
    found = problems(tmp_path, data)
    assert any(p.startswith(expected) for p in found), found


def test_upstream_wait_zero_is_allowed(tmp_path: Path) -> None:
    assert load(write(tmp_path, {"upstream_wait": 0})).upstream_wait == 0


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "listne": 1,
            "rules": [
                {"origins": ["ftp://x"]},
                {"origins": ["http://a"], "allow_methods": ["a b"]},
            ],
        },
    )
    assert len(found) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [", "not valid YAML at line"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load(str(tmp_path / "nope.yaml"))


def test_star_with_credentials_is_explained(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, {"rules": [{"origins": ["*"], "allow_credentials": True}]}))
    assert any("reflects" in w and "request's origin" in w for w in cfg.warnings)
    assert any("reflects" in line for line in describe(cfg))


def test_ipv6_listen_and_null_read_timeout(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, {"listen": "[::1]:0", "timeouts": {"read": None}}))
    assert (cfg.listen_host, cfg.listen_port, cfg.read_timeout) == ("::1", 0, None)
    assert cfg.listen_url == "http://[::1]:0"


@pytest.mark.parametrize(
    ("url", "host", "port", "authority", "prefix", "base"),
    [
        ("http://127.0.0.1:5000", "127.0.0.1", 5000, "127.0.0.1:5000", "", "http://127.0.0.1:5000"),
        ("HTTP://Api.Test/v1/", "api.test", 80, "api.test", "/v1", "http://api.test/v1"),
        ("https://api.test:443", "api.test", 443, "api.test", "", "https://api.test"),
        ("https://api.test:8443/a/b", "api.test", 8443, "api.test:8443", "/a/b", None),
        ("http://[0:0::1]:5000", "::1", 5000, "[::1]:5000", "", "http://[::1]:5000"),
    ],
)
def test_upstream_target_parsed_once(
    url: str, host: str, port: int, authority: str, prefix: str, base: str | None
) -> None:
    t = UpstreamTarget.parse(url)
    assert (t.host, t.port, t.authority, t.prefix) == (host, port, authority, prefix)
    assert t.base == (base or f"{t.scheme}://{authority}{prefix}")
    assert t.websocket_base == t.base.replace("http", "ws", 1)
    assert Config(upstream=url).target == t


def test_upstream_aliases_name_loopback_three_ways() -> None:
    assert UpstreamTarget.parse("http://localhost:5000").aliases == {
        "http://localhost:5000",
        "http://127.0.0.1:5000",
        "http://[::1]:5000",
    }
    assert UpstreamTarget.parse("https://API.test").aliases == {"https://api.test"}


LOOPBACK_ORIGINS = {"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"}


@pytest.mark.parametrize(
    ("listen_host", "own"),
    [
        ("127.0.0.1", LOOPBACK_ORIGINS),
        ("localhost", LOOPBACK_ORIGINS),
        ("::1", LOOPBACK_ORIGINS),
        ("127.0.0.2", {*LOOPBACK_ORIGINS, "http://127.0.0.2:8080"}),
        ("0.0.0.0", LOOPBACK_ORIGINS),
        ("::", LOOPBACK_ORIGINS),
        ("192.168.1.5", {"http://192.168.1.5:8080"}),
        ("fe80::1", {"http://[fe80::1]:8080"}),
        ("devbox.local", {"http://devbox.local:8080"}),
    ],
)
def test_own_origins_are_the_listen_address_and_loopback_names(
    listen_host: str, own: set[str]
) -> None:
    assert Config(listen_host=listen_host).own_origins(8080) == own


def test_own_origins_drop_port_80_as_browsers_do() -> None:
    assert "http://localhost" in Config().own_origins(80)


def test_upstream_tls_problems_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    base = {"upstream": "https://api.example.test"}
    assert problems(tmp_path, {**base, "upstream_tls": {"verify": "no", "cafile": "x"}}) == [
        "upstream_tls.cafile: unknown key (did you mean 'ca_file'?)",
        "upstream_tls.verify: expected true or false, got 'no'",
    ]
    missing = problems(tmp_path, {**base, "upstream_tls": {"ca_file": "nope.pem"}})
    assert missing == [f"upstream_tls.ca_file: 'nope.pem': no such file ({tmp_path}/nope.pem)"]
    garbage = problems(tmp_path, {**base, "upstream_tls": {"ca_file": "not-a-cert.pem"}})
    assert garbage[0].startswith("upstream_tls.ca_file: 'not-a-cert.pem' holds no PEM certificate")
    assert problems(tmp_path, {**base, "upstream_tls": True}) == [
        "upstream_tls: expected a mapping with verify/ca_file, got bool True"
    ]


def test_upstream_tls_warnings(tmp_path: Path) -> None:
    lax = load(write(tmp_path, {"upstream": "https://a.test", "upstream_tls": {"verify": False}}))
    assert lax.upstream_tls.verify is False
    assert any(w.startswith("upstream_tls.verify: false: the upstream's") for w in lax.warnings)
    assert "upstream_tls: verify false (the certificate is not checked)" in describe(lax)
    plain = load(write(tmp_path, {"upstream": "http://a.test", "upstream_tls": {"verify": False}}))
    assert "upstream_tls: has no effect: upstream http://a.test is not an https:// URL" in (
        plain.warnings
    )
    default = load(write(tmp_path, {"upstream": "https://a.test"}))
    assert not [w for w in default.warnings if "upstream_tls" in w]
    assert "upstream_tls: verify true, trusting the system's CAs" in describe(default)
