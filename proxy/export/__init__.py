"""From development to production: the rules learned from traffic, and the rules
rendered for nginx, Caddy, flask-cors and Starlette (pure).

Imports: the standard library's pure modules and the other pure layers (``policy``,
``config.model``, ``config.lint``); never a socket, a process or a YAML library (the
learned YAML is written by hand, the loader stays the one YAML reader).
tests/project/test_layering.py checks it.
"""
