"""A config generation: one loaded config and everything derived from it, swapped whole
on reload (exchanges in flight keep the one they started with)."""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

from proxy.config.model import Config
from proxy.policy.cors import CorsPolicy
from proxy.policy.headers import upstream_aliases


@dataclass(frozen=True)
class Generation:
    """One loaded config and everything derived from it; swapped whole on reload."""

    number: int
    config: Config
    policy: CorsPolicy
    upstream_origins: frozenset[str]
    upstream_authority: str
    upstream_host: str
    upstream_port: int

    @classmethod
    def build(cls, number: int, config: Config) -> Generation:
        url = URL(config.upstream)
        host = url.raw_host or ""
        shown = f"[{host}]" if ":" in host else host
        port = url.port or (443 if url.scheme == "https" else 80)
        authority = shown if url.is_default_port() else f"{shown}:{port}"
        return cls(
            number=number,
            config=config,
            policy=CorsPolicy(config.rules),
            upstream_origins=upstream_aliases(url.scheme, shown, port),
            upstream_authority=authority,
            upstream_host=host,
            upstream_port=port,
        )
