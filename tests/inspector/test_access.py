"""Who may open the inspector (proxy/inspector/access.py, pure)."""

from __future__ import annotations

import pytest

from proxy.inspector.access import client_allowed, default_gateways, host_allowed, networks


@pytest.mark.parametrize(
    ("remote", "allow", "ok"),
    [
        ("127.0.0.1", (), True),
        ("127.8.9.10", (), True),
        ("::1", (), True),
        ("::ffff:127.0.0.1", (), True),
        ("192.168.1.20", (), False),
        ("10.0.0.2", (), False),
        ("fe80::1%eth0", (), False),
        ("", (), False),
        ("not-an-ip", (), False),
        ("192.168.1.20", ("192.168.1.0/24",), True),
        ("192.168.2.20", ("192.168.1.0/24",), False),
        ("::ffff:192.168.1.20", ("192.168.1.0/24",), True),
        ("2001:db8::5", ("2001:db8::/32",), True),
        ("8.8.8.8", ("0.0.0.0/0",), True),
    ],
)
def test_client_allowed(remote: str, allow: tuple[str, ...], ok: bool) -> None:
    assert client_allowed(remote, networks(allow)) is ok


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("app.localhost:8080", True),
        ("localhost.:8080", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("192.168.1.5", True),
        # a name that resolves to the proxy only after DNS rebinding
        ("attacker.example:8080", False),
        ("localhost.attacker.example", False),
        ("[not-ip]:80", False),
        ("", False),
        (":8080", False),
        ("devbox.lan:8080", False),
    ],
)
def test_host_allowed(host: str, ok: bool) -> None:
    assert host_allowed(host, ()) is ok


def test_listed_host_names_are_allowed() -> None:
    assert host_allowed("devbox.lan:8080", ("devbox.lan",))
    assert not host_allowed("other.lan:8080", ("devbox.lan",))


ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_default_gateway_from_proc_net_route() -> None:
    assert default_gateways(ROUTE) == ["172.17.0.1"]
    assert default_gateways("") == []
    assert default_gateways("header\ngarbage line\n") == []
