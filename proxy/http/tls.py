"""TLS to an ``https://`` upstream: the client context from ``upstream_tls``, and a failed
handshake as the proxy's own error (I/O)."""

from __future__ import annotations

import re
import ssl

from proxy.config.model import UpstreamTls
from proxy.diagnosis.unreachable import tls_failure
from proxy.errors import UpstreamUnavailable


def client_context(tls: UpstreamTls) -> ssl.SSLContext:
    """The system's CAs, plus ``ca_file``'s; or no verification at all (``verify: false``)."""
    context = ssl.create_default_context()
    if tls.ca_file:
        context.load_verify_locations(cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_unavailable(exc: ssl.SSLError, host: str, port: int) -> UpstreamUnavailable:
    """A handshake that failed: never a refused connect (``upstream_wait`` does not retry
    it, as nothing will change by waiting), with the cause and the option that fixes it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code: int | None = exc.verify_code
        message = exc.verify_message or str(exc)
    else:
        code, message = None, re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))
    reason, detail = tls_failure(host, port, verify_code=code, message=str(message))
    return UpstreamUnavailable(reason, detail)
