"""Which configured client a source address belongs to, decided before anything is decoded;
and the interface a link-local source came in on, which its reply must leave by."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from otpcore.client_config import ClientConfig
from otpcore.zones import plain_zone

Peer = tuple[str, int] | tuple[str, int, int, int]


class ClientTable:
    """Clients by source address; the most specific network wins."""

    def __init__(self, clients: Sequence[ClientConfig]) -> None:
        entries = [(network, client) for client in clients for network in client.networks]
        # Longest prefix first; at one length an address on a named link before the same
        # address on any link; otherwise in the file's order (the sort is stable).
        entries.sort(key=lambda entry: (entry[0].prefixlen, zone_of(entry[0]) is not None),
                     reverse=True)  # fmt: skip
        self._entries = entries
        self._cache: dict[str, ClientConfig | None] = {}
        # Interface index to name and back, as datagrams arrived on them: the name is what
        # configuration and logs say, the index what a reply is sent by; neither costs a
        # system call a datagram.
        self._names: dict[int, str] = {}
        self._indexes: dict[str, int] = {}

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

    def source_host(self, addr: tuple[str | int, ...]) -> str:
        """A datagram's source address as text, with its zone if it has one (``fe80::1%eth0``).

        A link-local address names no host without its interface: the same address on
        another link is another machine.
        """
        host = str(addr[0])
        if len(addr) < 4 or not addr[3]:
            return host
        index = int(addr[3])
        name = self._names.get(index)
        if name is None:
            name = _interface_name(index)
            self._names[index] = name
            self._indexes[name] = index
        return f"{host}%{name}"

    def reply_address(self, host: str, port: int) -> Peer:
        """Where a reply to ``host`` goes: a zoned one by the index of its interface.

        As text, "fe80::1%eth0" is sent with no interface at all (Python's sendto leaves the
        zone out), and leaves by whichever link the routing table lists first.
        """
        if "%" not in host:
            return (host, port)
        address, _, zone = host.partition("%")
        index = self._indexes.get(zone)
        if index is None:  # a request that came in before a reload replaced this table
            index = int(zone) if zone.isascii() and zone.isdigit() else interface_index(zone) or 0
        return (address, port, 0, index)


def zone_of(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """The link a client's network is written on (``eth0`` of ``fe80::1%eth0``), if any."""
    address = network.network_address
    return address.scope_id if isinstance(address, ipaddress.IPv6Address) else None


def zone_exists(zone: str) -> bool:
    """Whether this host has the interface a zone names."""
    return interface_index(zone) is not None


def same_zone(network: ipaddress.IPv4Network | ipaddress.IPv6Network, zone: str | None) -> bool:
    """Whether a source in ``zone`` is on the link a client's network names, if it names one."""
    wanted = zone_of(network)
    if wanted is None:
        return True
    if zone is None:
        return False
    if wanted == zone:
        return True
    index = interface_index(wanted)
    return index is not None and index == interface_index(zone)


def interface_index(zone: str) -> int | None:
    """The index of the interface a zone names as a name (``eth0``) or a number, if it exists."""
    try:
        if zone.isascii() and zone.isdigit():
            socket.if_indextoname(int(zone))
            return int(zone)
        return socket.if_nametoindex(zone)
    except (OSError, OverflowError, ValueError):
        return None


def _interface_name(index: int) -> str:
    """The name of an interface, or its index where it has gone or its name is unusual (one
    that could break a key=value log line)."""
    try:
        name = socket.if_indextoname(index)
    except OSError:
        return str(index)
    # A name of digits alone would be read back as another interface's index.
    return name if plain_zone(name) and not name.isdigit() else str(index)
