"""A config generation: one loaded config and everything derived from it, swapped whole
on reload (exchanges in flight keep the one they started with)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config.model import Config, UpstreamTarget
from proxy.policy.cors import CorsPolicy


@dataclass(frozen=True)
class Generation:
    """One loaded config and everything derived from it; swapped whole on reload."""

    number: int
    config: Config
    policy: CorsPolicy

    @property
    def target(self) -> UpstreamTarget:
        return self.config.target

    @classmethod
    def build(cls, number: int, config: Config) -> Generation:
        return cls(number=number, config=config, policy=CorsPolicy(config.rules))
