"""The configuration model: a validated ``Config``, overrides from flags and the
environment, and how ``cors-proxy check`` describes it (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from proxy.policy.cors import CorsRule
from proxy.policy.fetch import DEFAULT_PORTS
from proxy.policy.origins import Origin

DEFAULT_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ENV_CONFIG: Final = "CORS_PROXY_CONFIG"
ENV_LISTEN: Final = "CORS_PROXY_LISTEN"
ENV_UPSTREAM: Final = "CORS_PROXY_UPSTREAM"
ENV_ORIGINS: Final = "CORS_PROXY_ORIGINS"


HostHeader = Literal["preserve", "upstream"]
UpstreamCors = Literal["override", "preserve"]
LogFormat = Literal["text", "json"]

_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})


@dataclass(frozen=True)
class UpstreamTarget:
    """The ``upstream`` URL, parsed once when the config loads; every upstream client,
    the WebSocket bridge, the probe and the Location rewrite read it from here."""

    url: str  # as configured, without a trailing "/"
    scheme: str  # "http" or "https"
    host: str  # lower-case, an IPv6 address without brackets: what a socket takes
    port: int  # the scheme's default when the URL names none
    authority: str  # host[:port] as a Host field says it (IPv6 in brackets, no default port)
    prefix: str  # the URL's path without a trailing "/" ("" for none), put before each path
    aliases: frozenset[str]  # origins by which the upstream may name itself (Location)

    @classmethod
    def parse(cls, url: str) -> UpstreamTarget:
        """Parse ``url``; raise ``ValueError`` saying what is wrong with it."""
        text = url.strip().rstrip("/")
        needs = "must be an http:// or https:// URL with a host"
        try:
            parts = Origin.split(text)
        except ValueError as exc:
            shape = str(exc).startswith(("an origin is", "an origin needs"))
            raise ValueError(needs if shape else f"is not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(needs)
        if parts.userinfo is not None:
            raise ValueError("must not carry a user name or password")
        if "?" in parts.rest or "#" in parts.rest:
            raise ValueError("must not have a query or fragment")
        if not parts.port_in_range:
            raise ValueError(f"is not a valid URL (port {parts.port} is outside 1-65535)")
        host = parts.bare_host
        if parts.host.startswith("["):
            try:
                host = ipaddress.IPv6Address(host).compressed
            except ValueError:
                raise ValueError(f"is not a valid URL (bad IPv6 address {parts.host})") from None
        shown = f"[{host}]" if ":" in host else host
        port = parts.effective_port
        assert port is not None  # http and https have default ports
        suffix = "" if parts.written_port is None else f":{port}"
        hosts = {shown}
        if shown in _LOOPBACK_NAMES:
            hosts |= _LOOPBACK_NAMES
        return cls(
            url=text,
            scheme=scheme,
            host=host,
            port=port,
            authority=shown + suffix,
            prefix=parts.rest.rstrip("/"),
            aliases=frozenset(f"{scheme}://{h}{suffix}" for h in hosts),
        )

    @property
    def base(self) -> str:
        """``scheme://authority/prefix``: a request's path goes right after it."""
        return f"{self.scheme}://{self.authority}{self.prefix}"

    @property
    def websocket_base(self) -> str:
        """``base`` with ws:// or wss://."""
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.authority}{self.prefix}"


@dataclass(frozen=True)
class UpstreamTls:
    """``upstream_tls:``: how an ``https://`` upstream's certificate is checked."""

    verify: bool = True  # False: not checked at all (a warning at startup)
    # A PEM file of CAs trusted besides the system's (mkcert's root, a company CA), as an
    # absolute path: the loader resolves it against the config file's folder.
    ca_file: str | None = None

    def describe(self) -> str:
        if not self.verify:
            return "upstream_tls: verify false (the certificate is not checked)"
        trusted = f"the system's CAs and {self.ca_file}" if self.ca_file else "the system's CAs"
        return f"upstream_tls: verify true, trusting {trusted}"


@dataclass(frozen=True)
class InspectorConfig:
    """``inspector:``: the live page at ``/__cors-proxy__/`` and its JSON API."""

    enabled: bool = True
    # Client networks (CIDR or addresses) allowed besides loopback; ("0.0.0.0/0", "::/0")
    # is everyone. Loopback (and, in a container, its gateway: a published port) always.
    allow: tuple[str, ...] = ()
    keep: int = 500  # exchanges kept in memory, newest first (a ring: the oldest go)
    # Host names accepted besides localhost, *.localhost and IP literals (a page on a
    # DNS-rebinding name must not read the inspector as if it were its own origin).
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``warnings`` are printed at startup and by ``check``."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    upstream: str = "http://127.0.0.1:5000"
    host_header: HostHeader = "preserve"
    upstream_cors: UpstreamCors = "override"
    connect_timeout: float = 5.0
    read_timeout: float | None = 60.0
    upstream_wait: float = 5.0  # seconds to keep retrying a refused connect (reloader)
    upstream_tls: UpstreamTls = UpstreamTls()
    log_format: LogFormat = "text"
    explain: bool = False  # print curl commands reproducing each blocked exchange
    max_body_bytes: int | None = None  # larger request bodies get 413; None: no limit
    max_connections: int | None = None  # more connections wait unread; None: no limit
    inspector: InspectorConfig = InspectorConfig()
    rules: tuple[CorsRule, ...] = ()
    # --candidate FILE: stricter rules whose refusals are only logged (report-only)
    candidate: tuple[CorsRule, ...] | None = None
    candidate_source: str | None = None
    source: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)
    upstream_set: bool = field(default=False, compare=False)  # upstream given, not default
    target: UpstreamTarget = field(init=False, repr=False, compare=False)  # from upstream

    def __post_init__(self) -> None:
        # Parsed here so no Config exists with an upstream nothing can connect to;
        # the loader reports a bad upstream before it builds one.
        object.__setattr__(self, "target", UpstreamTarget.parse(self.upstream))

    @property
    def listen_url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}"

    def own_origins(self, port: int) -> frozenset[str]:
        """The origins of pages the proxy itself serves, bound to ``port``: its listen
        address, and ``localhost``, ``127.0.0.1`` and ``[::1]`` when it listens on a
        loopback address or on all interfaces. A WebSocket from one of them needs no
        rule. Never the request's ``Host``: a DNS-rebinding page names its own host there
        and in its ``Origin`` alike."""
        host = self.listen_host.strip("[]").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        everywhere = host == "" or (address is not None and address.is_unspecified)
        loopback = host == "localhost" or (address is not None and address.is_loopback)
        hosts = set(_LOOPBACK_NAMES) if everywhere or loopback else set()
        if not everywhere:
            hosts.add(f"[{address.compressed}]" if address and address.version == 6 else host)
        suffix = "" if port == DEFAULT_PORTS["http"] else f":{port}"
        return frozenset(f"http://{h}{suffix}" for h in hosts)


@dataclass(frozen=True)
class Overrides:
    """Values from flags or the environment, which win over the file."""

    listen: str | None = None
    upstream: str | None = None
    origins: tuple[str, ...] | None = None
    log_format: LogFormat | None = None
    explain: bool | None = None
    candidate: str | None = None  # --candidate FILE


def zero_config_rule(origins: Sequence[str]) -> dict[str, Any]:
    """The one rule ``--origin`` stands for: credentials, common methods, any header."""
    return {
        "name": "command-line",
        "origins": list(origins),
        "allow_methods": [*DEFAULT_METHODS, "OPTIONS"],
        "allow_headers": ["*"],
        "expose_headers": ["*"],
        "allow_credentials": True,
        "max_age": 600,
    }


def overrides_from_env(env: Mapping[str, str]) -> Overrides:
    origins = env.get(ENV_ORIGINS)
    return Overrides(
        listen=env.get(ENV_LISTEN) or None,
        upstream=env.get(ENV_UPSTREAM) or None,
        origins=tuple(o.strip() for o in origins.split(",") if o.strip()) if origins else None,
    )


def merge_overrides(low: Overrides, high: Overrides) -> Overrides:
    return Overrides(
        listen=high.listen or low.listen,
        upstream=high.upstream or low.upstream,
        origins=high.origins if high.origins is not None else low.origins,
        log_format=high.log_format or low.log_format,
        explain=high.explain if high.explain is not None else low.explain,
        candidate=high.candidate or low.candidate,
    )


def describe(cfg: Config) -> list[str]:
    """The normalized rules, as ``cors-proxy check`` prints them."""
    lines = [
        f"listen: {cfg.listen_url}",
        f"upstream: {cfg.upstream} (host_header: {cfg.host_header}, "
        f"upstream_cors: {cfg.upstream_cors})",
        f"timeouts: connect {cfg.connect_timeout:g}s, read "
        + ("none" if cfg.read_timeout is None else f"{cfg.read_timeout:g}s")
        + f"; upstream_wait {cfg.upstream_wait:g}s",
        "limits: max_body_bytes "
        + ("none" if cfg.max_body_bytes is None else str(cfg.max_body_bytes))
        + ", max_connections "
        + ("none" if cfg.max_connections is None else str(cfg.max_connections)),
    ]
    if cfg.target.scheme == "https" or cfg.upstream_tls != UpstreamTls():
        lines.insert(2, cfg.upstream_tls.describe())
    lines.append(describe_inspector(cfg.inspector))
    for i, r in enumerate(cfg.rules):
        lines.append(f"rules[{i}] {r.name!r}: paths {', '.join(r.paths) or '(every path)'}")
        show: Callable[[tuple[str, ...]], str] = lambda t: ", ".join(t) or "-"  # noqa: E731
        lines.append(f"  origins: {show(r.origins)}")
        if r.origin_regex:
            lines.append(f"  origin_regex (full match): {r.origin_regex}")
        lines.append(f"  allow_methods: {show(r.allow_methods)}")
        lines.append(f"  allow_headers: {show(r.allow_headers)} (+ safelisted)")
        lines.append(f"  expose_headers: {show(r.expose_headers)}")
        lines.append(
            f"  allow_credentials: {str(r.allow_credentials).lower()}; max_age: {r.max_age}; "
            f"allow_private_network: {str(r.allow_private_network).lower()}"
        )
        if r.allow_credentials and "*" in r.origins:
            lines.append("  note: '*' with credentials reflects the request's origin")
        if r.report_only:
            lines.append(
                "  report_only: not enforced; every origin is answered as allowed and what"
                " this rule would block is logged"
            )
    if cfg.candidate is not None:
        lines.append(
            f"candidate: {len(cfg.candidate)} rule(s) from {cfg.candidate_source}; what they"
            " would block is logged, the rules above decide"
        )
    return lines


def check_lines(cfg: Config) -> list[str]:
    """What ``cors-proxy check`` prints for a valid config (the inspector shows it too)."""
    lines = [f"config OK: {cfg.source or '(no file: flags and environment)'}"]
    lines += [f"  {line}" for line in describe(cfg)]
    lines += [f"warning: {w}" for w in cfg.warnings]
    return lines


def describe_inspector(ins: InspectorConfig) -> str:
    if not ins.enabled:
        return "inspector: off"
    who = "loopback" + (f", {', '.join(ins.allow)}" if ins.allow else " only")
    hosts = f"; hosts also {', '.join(ins.hosts)}" if ins.hosts else ""
    return f"inspector: /__cors-proxy__/ for {who}; keeps the last {ins.keep} exchanges{hosts}"
