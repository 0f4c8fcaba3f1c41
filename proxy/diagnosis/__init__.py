"""Explains exchanges but never decides them: the browser oracle, near misses, the
cookie doctor, error pages, unreachable upstreams, curl reproductions.

Imports: the standard library's pure modules and the other pure layers only (no I/O,
no third-party packages); tests/project/test_layering.py checks it.
"""
