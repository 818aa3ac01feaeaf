"""The ``[[clients]]`` of the configuration (SPEC §6): the NAS allowed to send requests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otpcore.config_checks import Checker, SecretReader
from otpcore.model import InputMode
from otpcore.zones import with_zone, zone_problem

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A RADIUS client (NAS) allowed to send requests."""

    name: str
    networks: tuple[IpNetwork, ...]
    secret: bytes = field(repr=False)
    mode: InputMode = InputMode.AUTO
    require_message_authenticator: bool = True
    limit_proxy_state: bool = True
    # Addresses as written whose host bits were set ("192.0.2.10/24"): each admits its whole
    # network, which the shells warn about. Not compared: only what the networks are matters.
    widened: tuple[str, ...] = field(default=(), compare=False)


_CLIENT_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "address": (str, list),
    "secret": str,
    "secret_file": str,
    "mode": str,
    "require_message_authenticator": bool,
    "limit_proxy_state": bool,
}


def parse_clients(
    items: object, source: Path, read_secret: SecretReader
) -> tuple[ClientConfig, ...]:
    """Validate the ``[[clients]]`` array (also used on SIGHUP reload)."""
    check = Checker(source)
    if not isinstance(items, list):
        raise check.fail("[[clients]]", "expected an array of tables")
    clients: list[ClientConfig] = []
    names: set[str] = set()
    owners: dict[IpNetwork, str] = {}
    for index, item in enumerate(items, start=1):
        where = f"[[clients]] #{index}"
        if not isinstance(item, dict):
            raise check.fail(where, "expected a table")
        for key, value in item.items():
            if key not in _CLIENT_KEYS:
                raise check.fail(f"{where} {key}", "unknown key")
            check.typed(f"{where} {key}", value, _CLIENT_KEYS[key])
        for key in ("name", "address"):
            if key not in item:
                raise check.fail(f"{where} {key}", "missing required key")
        name = item["name"]
        if not name.strip():
            # A name is how logs, the duplicate cache's shares and the stored challenges tell
            # clients apart; `otpctl check` keys its own challenges with the empty name.
            raise check.fail(f"{where} name", "must not be empty")
        where = f"[[clients]] {name!r}"
        if name in names:
            raise check.fail(f"{where} name", "duplicate client name")
        names.add(name)
        networks, widened = _networks(check, where, item["address"])
        for network in networks:
            # The most specific network decides who sent a datagram; the same one twice would
            # leave it to the order of the file, and with it which secret and mode apply.
            if owners.get(network, name) != name:
                raise check.fail(
                    f"{where} address", f"{network} is also given for client {owners[network]!r}"
                )
            owners[network] = name
        clients.append(
            ClientConfig(
                name=name,
                networks=networks,
                secret=_client_secret(check, where, item, source.parent, read_secret),
                mode=_mode(check, where, item.get("mode", "auto")),
                require_message_authenticator=item.get("require_message_authenticator", True),
                limit_proxy_state=item.get("limit_proxy_state", True),
                widened=widened,
            )
        )
    return tuple(clients)


def _networks(
    check: Checker, where: str, value: str | list[Any]
) -> tuple[tuple[IpNetwork, ...], tuple[str, ...]]:
    """The networks of ``address``, and those of its items written with host bits set."""
    items = [value] if isinstance(value, str) else value
    networks: list[IpNetwork] = []
    widened: list[str] = []
    for item in items:
        text = str(item)
        try:
            network = ipaddress.ip_network(text, strict=False)
            written = ipaddress.ip_interface(text).ip
        except ValueError:
            raise check.fail(f"{where} address", f"{item!r} is not an address or CIDR") from None
        if problem := zone_problem(text):
            raise check.fail(f"{where} address", f"{item!r}: {problem}")
        if isinstance(network, ipaddress.IPv6Network):
            network = with_zone(network, text)
        # By value: ip_interface drops a zone ("fe80::1%eth0") that ip_network keeps, and
        # the two would never compare equal for a link-local gateway written alone.
        if int(written) != int(network.network_address):
            widened.append(text)
        networks.append(_ipv4_form(network))
    if not networks:
        raise check.fail(f"{where} address", "no address given")
    return tuple(networks), tuple(widened)


# IPv4 addresses written as IPv6 (``::ffff:192.0.2.10``, as dual-stack tools show them).
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _ipv4_form(network: IpNetwork) -> IpNetwork:
    """An IPv4-mapped network as the IPv4 one, the form its NAS's requests arrive in."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        address = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((address, network.prefixlen - 96))
    return network


def _client_secret(
    check: Checker, where: str, item: dict[str, Any], base: Path, read_secret: SecretReader
) -> bytes:
    if ("secret" in item) == ("secret_file" in item):
        raise check.fail(f"{where} secret", "give exactly one of 'secret' and 'secret_file'")
    if "secret" in item:
        secret = str(item["secret"]).encode("utf-8")
    else:
        path = check.path(f"{where} secret_file", base, item["secret_file"])
        try:
            secret = read_secret(path).strip()
        except OSError as exc:
            raise check.fail(f"{where} secret_file", f"{path}: {exc.strerror}") from None
    if not secret:
        raise check.fail(f"{where} secret", "must not be empty")
    return secret


def _mode(check: Checker, where: str, value: str) -> InputMode:
    try:
        return InputMode(value)
    except ValueError:
        raise check.fail(f"{where} mode", "must be split, challenge, auto or otp") from None
