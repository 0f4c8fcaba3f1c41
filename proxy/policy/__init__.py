"""The CORS policy and the Fetch standard's rules, as pure functions and values.

Imports: the standard library's pure modules and the other pure layers only (no I/O,
no third-party packages); tests/project/test_layering.py checks it.
"""
