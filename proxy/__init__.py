"""cors-proxy: a local reverse proxy that adds CORS headers and explains upstream 500s.

The folders are the layers (README "Architecture"); each subpackage's docstring says
what it may import, and tests/project/test_layering.py holds the one rule.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cors-dev-proxy")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
