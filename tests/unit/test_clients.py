"""Matching a source address to its configured client (SPEC §4), before anything is decoded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from otpcore.config import parse_settings
from radiusd.clients import ClientTable, source_host


def no_secret_files(path: Path) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", str(path))


def table(*clients: tuple[str, str | list[str]]) -> ClientTable:
    data = {"clients": [{"name": n, "address": a, "secret": "s" * 16} for n, a in clients]}
    settings = parse_settings(data, Path("/etc/otpradius/config.toml"), no_secret_files)
    return ClientTable(settings.clients)


def test_the_most_specific_network_names_the_client() -> None:
    clients = table(("lan", "192.0.2.0/24"), ("gw", "192.0.2.10/32"), ("v6", "2001:db8::/64"))
    assert [
        getattr(clients.match(host), "name", None)
        for host in ("192.0.2.10", "192.0.2.11", "::ffff:192.0.2.10", "2001:db8::5", "198.51.100.1")
    ] == ["gw", "lan", "gw", "v6", None]


def test_a_client_written_as_an_ipv4_mapped_address_matches_its_nas() -> None:
    clients = table(("gw", "::ffff:192.0.2.10"))
    matched = clients.match("192.0.2.10")
    assert matched is not None
    assert matched.name == "gw"


def names(clients: ClientTable, *hosts: str) -> list[str | None]:
    return [getattr(clients.match(host), "name", None) for host in hosts]


def test_a_link_local_client_matches_only_on_its_own_link() -> None:
    # The same link-local address on another interface is another machine.
    clients = table(("gw", "fe80::1%lo"))
    assert names(clients, "fe80::1%lo", "fe80::1%eth9", "fe80::1", "fe80::2%lo") == [
        "gw",
        None,
        None,
        None,
    ]


def test_a_zone_is_the_same_link_written_as_a_name_or_a_number() -> None:
    index = socket.if_nametoindex("lo")
    by_number = table(("gw", f"fe80::%{index}/64"))
    by_name = table(("gw", "fe80::%lo/64"))
    assert names(by_number, "fe80::7%lo", f"fe80::7%{index}") == ["gw", "gw"]
    assert names(by_name, "fe80::7%lo", f"fe80::7%{index}") == ["gw", "gw"]


def test_an_address_on_a_named_link_is_preferred_to_the_same_address_on_any() -> None:
    anywhere, on_lo = ("any", "fe80::1"), ("lo", "fe80::1%lo")
    for order in ((anywhere, on_lo), (on_lo, anywhere)):
        clients = table(*order)
        assert names(clients, "fe80::1%lo", "fe80::1%eth9", "fe80::1") == ["lo", "any", "any"]


@pytest.mark.parametrize(
    ("addr", "host"),
    [
        (("192.0.2.10", 1812), "192.0.2.10"),
        (("2001:db8::5", 1812, 0, 0), "2001:db8::5"),
        (("fe80::1", 1812, 0, socket.if_nametoindex("lo")), "fe80::1%lo"),
        (("fe80::1", 1812, 0, 4000000), "fe80::1%4000000"),  # an interface gone meanwhile
    ],
)
def test_a_source_address_keeps_the_zone_a_reply_needs(
    addr: tuple[str | int, ...], host: str
) -> None:
    assert source_host(addr) == host
