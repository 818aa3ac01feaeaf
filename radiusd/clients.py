"""Which configured client a source address belongs to, decided before anything is decoded."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from otpcore.client_config import ClientConfig


class ClientTable:
    """Clients by source address; the most specific network wins."""

    def __init__(self, clients: Sequence[ClientConfig]) -> None:
        entries = [(network, client) for client in clients for network in client.networks]
        entries.sort(key=lambda entry: entry[0].prefixlen, reverse=True)
        self._entries = entries
        self._cache: dict[str, ClientConfig | None] = {}

    def match(self, host: str) -> ClientConfig | None:
        """The client for a source address, or None for an unknown source."""
        try:
            return self._cache[host]
        except KeyError:
            pass
        found: ClientConfig | None = None
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            address = None
        if address is not None:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            for network, client in self._entries:
                if address.version == network.version and address in network:
                    found = client
                    break
        if len(self._cache) > 65536:
            self._cache.clear()  # a flood of spoofed sources must not grow memory
        self._cache[host] = found
        return found
