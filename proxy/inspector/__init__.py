"""The inspector's pure side: the ring of recent exchanges, what the page shows of each
one (the detail model, masking, the one-line YAML fix) and who may see it. The page's
HTML, CSS and JavaScript ship here as package data (``static/``); ``proxy/http/inspector.py``
serves them with the JSON API and the server-sent events.

Imports: the standard library's pure modules and the other pure layers only (no I/O,
no asyncio); tests/project/test_layering.py checks it.
"""
