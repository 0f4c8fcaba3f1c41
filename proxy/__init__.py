"""cors-proxy: a local reverse proxy that adds CORS headers and explains upstream 500s.

Layers (enforced by ruff TID251 and tests/test_layering.py):

- pure (standard library only, no aiohttp, no yaml, no sockets, no asyncio):
  ``origins``, ``cors``, ``headers``, ``werkzeug_tb``, ``diagnostics``, ``verdict``,
  ``errors``, ``logfmt``.
- the one YAML reader: ``config``.
- the thin I/O shell: ``upstream`` (HTTP client), ``forward``, ``websocket``, ``app``,
  ``server``, ``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cors-dev-proxy")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
