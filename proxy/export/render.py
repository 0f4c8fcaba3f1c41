"""One entry point for every target (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from proxy.config.model import Config
from proxy.export import caddy, flask_cors, nginx, starlette
from proxy.export.model import Export

RENDERERS: Final[dict[str, Callable[[Config, str], Export]]] = {
    "nginx": nginx.render,
    "caddy": caddy.render,
    "flask-cors": flask_cors.render,
    "starlette": starlette.render,
}


def render(target: str, cfg: Config, source: str) -> Export:
    """The ``target``'s configuration for ``cfg`` (read from ``source``)."""
    return RENDERERS[target](cfg, source)
