"""One log line per exchange: the record and its formatting (pure) and the sink that
writes lines to a stream (I/O).

Imports: ``record`` imports the standard library's pure modules and the other pure
layers only; ``sink`` may use asyncio. tests/project/test_layering.py checks it.
"""
