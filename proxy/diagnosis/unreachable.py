"""Why the upstream cannot be reached, in words a developer can act on (pure).

The I/O side (``proxy.http.probe``) tries the other loopback address family and resolves the
host only after a connect has failed, and hands the facts here. Three classic traps:

- ``localhost`` resolving to ``::1`` while ``flask run`` listens on ``127.0.0.1`` only
  (or the reverse): the port looks closed, yet the server is up;
- ``127.0.0.1`` inside a container is the container, not the host running Flask, and
  ``host.docker.internal`` reaches the host but not a dev server bound to its loopback;
- port 5000 on macOS is taken by the AirPlay Receiver (``Server: AirTunes/...``), which
  answers 403 to everything, so the page sees a mysterious 403 instead of the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = [
    "dns_hint",
    "impostor",
    "loopback_alternatives",
    "refused_hint",
    "timeout_hint",
]

_LOOPBACK_V4: Final = "127.0.0.1"
_LOOPBACK_V6: Final = "::1"
_DOCKER_HOST: Final = "host.docker.internal"
# The names by which a container reaches the machine it runs on (docker, podman).
_HOST_FROM_CONTAINER: Final = frozenset({_DOCKER_HOST, "host.containers.internal"})


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _family(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def loopback_alternatives(host: str) -> tuple[str, ...]:
    """Loopback addresses worth trying when ``host`` refused: the other family's."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return (_LOOPBACK_V4, _LOOPBACK_V6)
    if host.startswith("127."):
        return (_LOOPBACK_V6,)
    if host == _LOOPBACK_V6:
        return (_LOOPBACK_V4,)
    return ()


def refused_hint(
    host: str,
    port: int,
    *,
    tried: Sequence[str],
    answering: Sequence[str],
    in_container: bool,
) -> str:
    """What to do about a refused connect to ``host:port``.

    ``tried``: the addresses the connect went to (``host`` resolved); ``answering``: the
    loopback alternatives that did accept a connection on the same port.
    """
    host = host.strip("[]")
    others = [a for a in answering if a not in tried]
    if others:
        addr = others[0]
        where = ", ".join(_shown(a) for a in tried) or _shown(host)
        said = f"{host} resolves to {where} here; " if host.lower() == "localhost" else ""
        missing = _LOOPBACK_V4 if ":" in addr else _LOOPBACK_V6
        flag = f" (flask run --host {missing})" if missing == _LOOPBACK_V4 else ""
        return (
            f"{said}nothing listens on {where} port {port}, but {_shown(addr)}:{port} "
            f"answers: the dev server listens on {_family(addr)} only. Set upstream to "
            f"http://{_shown(addr)}:{port}, or start the server on {missing}{flag}"
        )
    if host.lower() in _HOST_FROM_CONTAINER:
        return (
            f"nothing listens on {host}:{port}, the machine this container runs on: the usual"
            " cause is a dev server that listens on 127.0.0.1 only, which a container cannot"
            " reach; run it with --host 0.0.0.0 (flask run --host 0.0.0.0, vite --host"
            " 0.0.0.0), and check that it runs, on this port"
        )
    loopback = host.lower() == "localhost" or host.startswith("127.") or host == _LOOPBACK_V6
    if loopback and in_container:
        return (
            f"nothing listens on {_shown(host)}:{port} inside this container "
            f"({_shown(host)} here is the container itself): if the dev server runs on the "
            f"host, use http://{_DOCKER_HOST}:{port} (with extra_hosts: "
            f'["{_DOCKER_HOST}:host-gateway"] on Linux) or the compose service name, and '
            "start it with --host 0.0.0.0; if it runs in this container, is it running, on "
            "this port?"
        )
    return f"nothing listens on {_shown(host)}:{port}; is the dev server running, on this port?"


def dns_hint(host: str, *, in_container: bool) -> str:
    hint = f"the name {host!r} does not resolve here; check the host in upstream"
    if host.lower() == _DOCKER_HOST:
        return (
            f"{hint}: on Linux {_DOCKER_HOST} exists only with extra_hosts: "
            f'["{_DOCKER_HOST}:host-gateway"] in the compose service'
        )
    if in_container:
        return f"{hint} (in docker-compose, the service name of the app, e.g. http://web:5000)"
    return hint


def timeout_hint(host: str, port: int, seconds: float) -> str:
    return (
        f"no connection to {_shown(host)}:{port} within {seconds:g}s: something drops the "
        "packets (a firewall, a wrong address, a container network); a stopped dev "
        "server would have refused at once"
    )


def impostor(server: str | None, port: int) -> str | None:
    """The response came from a known program that is not a web app's dev server."""
    if server is None or not server.startswith("AirTunes"):
        return None
    return (
        f"port {port} is answered by macOS AirPlay Receiver (Server: {server}), not by "
        "your app: run the dev server on another port (flask run --port 5001) and point "
        "upstream at it, or turn off AirPlay Receiver in System Settings > General > "
        "AirDrop & Handoff"
    )
