"""Link-local IPv6 addresses written with their interface (``fe80::1%eth0``) in the
configuration: which zones may stand, and on which addresses."""

from __future__ import annotations

import ipaddress
import re

# What Linux takes as an interface name, narrowed to the characters real ones use (eth0,
# enp0s3, br-lan, eth0.100, wg_vpn) so that a zone can stand in a key=value log line as it is;
# or an interface index.
_ZONE = re.compile(r"[A-Za-z0-9_.\-]{1,15}")
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")


def plain_zone(zone: str) -> bool:
    """Whether a zone is an interface name or index as the configuration may give one."""
    return _ZONE.fullmatch(zone) is not None


def zone_problem(text: str) -> str | None:
    """Why the zone of an address or network as written cannot stand; None if it may, or
    if there is none."""
    head, percent, rest = text.partition("%")
    if not percent:
        return None
    zone = rest.partition("/")[0]
    if not plain_zone(zone):
        return f"{zone!r} is not an interface name or index"
    try:
        address = ipaddress.IPv6Address(head)
    except ValueError:
        return "a zone (%interface) is only for an IPv6 address"
    if address not in _LINK_LOCAL:
        # Matched only against datagrams with that zone, which no global address carries:
        # the client would be silently unanswered.
        return "a zone (%interface) is only for a link-local address (fe80::/10)"
    return None


def with_zone(network: ipaddress.IPv6Network, text: str) -> ipaddress.IPv6Network:
    """``network`` with the zone ``text`` was written with: ``ip_network("fe80::1%eth0/64",
    strict=False)`` gives fe80::/64 on every link."""
    zone = text.partition("%")[2].partition("/")[0]
    if not zone or network.network_address.scope_id == zone:
        return network
    return ipaddress.IPv6Network(f"{network.network_address}%{zone}/{network.prefixlen}")
