"""The configuration model: a validated ``Config``, overrides from flags and the
environment, and how ``cors-proxy check`` describes it (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from proxy.policy.cors import CorsRule

DEFAULT_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ENV_CONFIG: Final = "CORS_PROXY_CONFIG"
ENV_LISTEN: Final = "CORS_PROXY_LISTEN"
ENV_UPSTREAM: Final = "CORS_PROXY_UPSTREAM"
ENV_ORIGINS: Final = "CORS_PROXY_ORIGINS"


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``warnings`` are printed at startup and by ``check``."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    upstream: str = "http://127.0.0.1:5000"
    host_header: str = "preserve"  # preserve | upstream
    upstream_cors: str = "override"  # override | preserve
    connect_timeout: float = 5.0
    read_timeout: float | None = 60.0
    upstream_wait: float = 5.0  # seconds to keep retrying a refused connect (reloader)
    log_format: str = "text"  # text | json
    explain: bool = False  # print curl commands reproducing each blocked exchange
    max_body_bytes: int | None = None  # larger request bodies get 413; None: no limit
    max_connections: int | None = None  # more connections wait unread; None: no limit
    rules: tuple[CorsRule, ...] = ()
    source: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def listen_url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}"


@dataclass(frozen=True)
class Overrides:
    """Values from flags or the environment, which win over the file."""

    listen: str | None = None
    upstream: str | None = None
    origins: tuple[str, ...] | None = None
    log_format: str | None = None
    explain: bool | None = None


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
    return lines
