"""The configuration: its model and lint (pure) and its loader, the one YAML reader.

Imports: ``model`` and ``lint`` import the standard library's pure modules and the
other pure layers only; ``loader`` adds PyYAML and file reads. tests/project/test_layering.py
checks it.
"""
