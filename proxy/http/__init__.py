"""All network I/O: the fast lane and aiohttp's server side, the upstream clients,
WebSockets, the proxy's own endpoints and the reachability probe.

Imports: anything third-party, the pure layers and the log sink; never the wiring above
it (``server``, ``forward``, ``generation``, ``cli``), and only that wiring imports it.
tests/project/test_layering.py checks it.
"""
