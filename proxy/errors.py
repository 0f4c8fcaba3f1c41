"""The proxy's exception hierarchy (pure).

ProxyError
├── ConfigError            a config file, flag or variable is invalid (exit code 2)
└── UpstreamError          the upstream could not give a whole response
    ├── UpstreamUnavailable    refused, reset, DNS failure before a response -> 502
    ├── UpstreamTimeout        connect or read timeout before a response     -> 504
    └── UpstreamBodyError      the response started, then broke off (truncated)
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base class of every error the proxy raises on purpose."""


class ConfigError(ProxyError):
    """One or more problems in the configuration, one line each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class UpstreamError(ProxyError):
    """The upstream failed; ``reason`` is short and goes into X-Cors-Proxy-Error."""

    status = 502

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class UpstreamUnavailable(UpstreamError):
    """Nothing reached the upstream, or it closed before answering."""

    def __init__(
        self, reason: str, detail: str = "", *, sent: bool = False, reused: bool = False
    ) -> None:
        super().__init__(reason, detail)
        # True when request bytes may have reached the upstream: never retry then.
        self.sent = sent
        # True when it was a pooled connection the upstream had closed while idle
        self.reused = reused


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamBodyError(UpstreamError):
    """The status line went out already; the body can only be cut short."""
