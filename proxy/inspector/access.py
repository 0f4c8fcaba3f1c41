"""Who may open the inspector (pure).

Clients: loopback, plus the networks in ``inspector.allow``, plus, in a container, the
gateway a published port's connections arrive from. Host names: ``localhost``,
``*.localhost``, IP literals and ``inspector.hosts``; any other name is what a page
uses after DNS rebinding to make the proxy its own origin, and is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def client_allowed(remote: str, allowed: Sequence[Network]) -> bool:
    """Whether a client at ``remote`` (an IP address) may open the inspector."""
    try:
        ip = ipaddress.ip_address(remote.partition("%")[0])  # fe80::1%eth0
    except ValueError:
        return False  # a Unix socket or nothing: never
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return True
    return any(ip.version == net.version and ip in net for net in allowed)


def host_allowed(host: str, names: Iterable[str]) -> bool:
    """Whether the request's ``Host`` is a name the inspector answers to."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8080
        end = name.find("]")
        name = name[1:end] if end > 0 else ""
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
        return True
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    if not name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return True
    return name == "localhost" or name.endswith(".localhost") or name in names


def default_gateways(route_table: str) -> list[str]:
    """The IPv4 default gateways in ``/proc/net/route``'s text (a container's published
    ports reach it from there)."""
    found = []
    for line in route_table.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3 or parts[1] != "00000000":
            continue
        try:
            raw = int(parts[2], 16)
        except ValueError:
            continue
        if raw:
            found.append(str(ipaddress.IPv4Address(raw.to_bytes(4, "little"))))
    return found
