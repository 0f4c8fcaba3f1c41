"""The dev server as a supervised child process (``cors-proxy ... -- COMMAND``): the
process and its watchdog, its output on the proxy's log, tracebacks joined to exchanges.

Imports: the standard library (processes, signals, asyncio), the pure layers and the log
sink; never ``http/`` or the wiring above it (the wiring hands it what it needs, such as
the reachability probe). tests/project/test_layering.py checks it.
"""
