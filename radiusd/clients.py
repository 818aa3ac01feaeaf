"""Which configured client a source address belongs to, decided before anything is decoded."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from otpcore.client_config import ClientConfig


class ClientTable:
    """Clients by source address; the most specific network wins."""

    def __init__(self, clients: Sequence[ClientConfig]) -> None:
        entries = [(network, client) for client in clients for network in client.networks]
        # At one length, an address on a named link before the same address on any link.
        entries.sort(key=lambda entry: (entry[0].prefixlen, zone_of(entry[0]) is not None))
        entries.reverse()
        self._entries = entries
        self._cache: dict[str, ClientConfig | None] = {}

    def match(self, host: str) -> ClientConfig | None:
        """The client for a source address (``fe80::1%eth0`` with its zone), or None."""
        try:
            return self._cache[host]
        except KeyError:
            pass
        found: ClientConfig | None = None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            zone = address.scope_id if isinstance(address, ipaddress.IPv6Address) else None
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            for network, client in self._entries:
                if (
                    address.version == network.version
                    and address in network
                    and same_zone(network, zone)
                ):
                    found = client
                    break
        if len(self._cache) > 65536:
            self._cache.clear()  # a flood of spoofed sources must not grow memory
        self._cache[host] = found
        return found


def source_host(addr: tuple[str | int, ...]) -> str:
    """A datagram's source address as text, with its zone when it has one (``fe80::1%eth0``).

    A link-local address names no host without its interface: a reply sent to it without the
    zone fails, and the same address on another link is another machine.
    """
    host = str(addr[0])
    if len(addr) < 4 or not addr[3] or "%" in host:
        return host
    index = int(addr[3])
    try:
        return f"{host}%{socket.if_indextoname(index)}"
    except OSError:  # the interface has gone since the datagram arrived
        return f"{host}%{index}"


def zone_of(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """The link a client's network is written on (``eth0`` of ``fe80::1%eth0``), if any."""
    address = network.network_address
    return address.scope_id if isinstance(address, ipaddress.IPv6Address) else None


def zone_exists(zone: str) -> bool:
    """Whether this host has the interface a zone names."""
    return _zone_index(zone) is not None


def same_zone(network: ipaddress.IPv4Network | ipaddress.IPv6Network, zone: str | None) -> bool:
    """Whether a source in ``zone`` is on the link a client's network names, if it names one."""
    wanted = zone_of(network)
    if wanted is None:
        return True
    if zone is None:
        return False
    if wanted == zone:
        return True
    index = _zone_index(wanted)
    return index is not None and index == _zone_index(zone)


def _zone_index(zone: str) -> int | None:
    """The index of the interface a zone names as a name (``eth0``) or a number, if it exists."""
    try:
        if zone.isdigit():
            socket.if_indextoname(int(zone))
            return int(zone)
        return socket.if_nametoindex(zone)
    except (OSError, OverflowError):
        return None
