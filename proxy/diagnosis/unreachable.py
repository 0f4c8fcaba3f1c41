"""Why the upstream cannot be reached, in words a developer can act on (pure).

The I/O side (``proxy.http.probe``) tries the other loopback address family and resolves the
host only after a connect has failed, and hands the facts here. Three classic traps:

- ``localhost`` resolving to ``::1`` while ``flask run`` listens on ``127.0.0.1`` only
  (or the reverse): the port looks closed, yet the server is up;
- ``127.0.0.1`` inside a container is the container, not the host running Flask, and
  ``host.docker.internal`` reaches the host but not a dev server bound to its loopback;
- port 5000 on macOS is taken by the AirPlay Receiver (``Server: AirTunes/...``), which
  answers 403 to everything, so the page sees a mysterious 403 instead of the app.

An ``https://`` upstream that fails its TLS handshake is not unreachable: ``tls_failure``
names the cause (a self-signed certificate, an unknown CA, another host's name) and the
``upstream_tls`` option that fixes it.
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
    "tls_failure",
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


# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that the words below tell apart.
_SELF_SIGNED: Final = frozenset({18})  # DEPTH_ZERO_SELF_SIGNED_CERT
# UNABLE_TO_GET_ISSUER_CERT, SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
# UNABLE_TO_VERIFY_LEAF_SIGNATURE: a CA this machine does not trust signed it
_UNKNOWN_CA: Final = frozenset({2, 19, 20, 21})
_WRONG_NAME: Final = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_DATES: Final = frozenset({9, 10})  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED
_SKIP: Final = "or skip the check with upstream_tls.verify: false (a dev server you trust)"


def tls_failure(host: str, port: int, *, verify_code: int | None, message: str) -> tuple[str, str]:
    """The short reason and the detail for a TLS handshake with ``host:port`` that failed:
    ``verify_code`` is OpenSSL's certificate verification error (None: the handshake
    failed otherwise), ``message`` what OpenSSL said."""
    where = f"{_shown(host)}:{port}"
    if verify_code is None:
        return "TLS handshake failed", (
            f"{where}: the TLS handshake failed ({message}); if the dev server there "
            "speaks plain HTTP, use http:// in upstream"
        )
    reason = "TLS certificate rejected"
    if verify_code in _SELF_SIGNED:
        return reason, (
            f"{where} sent a self-signed certificate ({message}; flask run --cert adhoc "
            "makes one): trust it with upstream_tls.ca_file set to its PEM file, " + _SKIP
        )
    if verify_code in _UNKNOWN_CA:
        return reason, (
            f"the certificate of {where} is signed by a CA this machine does not trust "
            f"({message}): set upstream_tls.ca_file to that CA's PEM file (mkcert's is "
            "rootCA.pem in the folder `mkcert -CAROOT` prints; a company CA: its root "
            "certificate), " + _SKIP
        )
    if verify_code in _WRONG_NAME:
        return reason, (
            f"the certificate of {where} is not valid for the name {host!r} ({message}): "
            "use a name it lists in upstream (mkcert localhost 127.0.0.1 ::1 makes one for "
            "all three), " + _SKIP
        )
    if verify_code in _DATES:
        return reason, (
            f"the certificate of {where} is outside its validity dates ({message}): renew "
            "it, or check this machine's clock, " + _SKIP
        )
    return reason, (
        f"the certificate of {where} failed verification ({message}, OpenSSL error "
        f"{verify_code}): upstream_tls.ca_file trusts another CA, " + _SKIP
    )
