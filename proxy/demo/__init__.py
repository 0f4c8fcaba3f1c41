"""``cors-proxy demo``: a bundled Flask app (run as the supervised child), a page on a
second origin and a rule set, shipped inside the package (package data).

Imports: ``run`` is wiring (anything); ``app`` runs in the child and imports Flask only,
never the proxy. tests/project/test_layering.py checks it.
"""
