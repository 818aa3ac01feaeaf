"""Matching a source address to its configured client (SPEC §4), before anything is decoded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from otpcore.config import parse_settings
from radiusd.clients import ClientTable


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


def test_a_zoned_network_written_with_host_bits_keeps_its_link() -> None:
    # ip_network("fe80::1%lo/64", strict=False) alone gives fe80::/64 on every link.
    clients = table(("gw", "fe80::1%lo/64"))
    assert names(clients, "fe80::7%lo", "fe80::7%eth9") == ["gw", None]


def test_the_same_link_under_two_spellings_goes_to_the_first_client_in_the_file() -> None:
    index = socket.if_nametoindex("lo")
    for first, second in (("fe80::1%lo", f"fe80::1%{index}"), (f"fe80::1%{index}", "fe80::1%lo")):
        clients = table(("first", first), ("second", second))
        assert names(clients, "fe80::1%lo") == ["first"]


LO = socket.if_nametoindex("lo")


@pytest.mark.parametrize(
    ("addr", "host", "reply"),
    [
        (("192.0.2.10", 1812), "192.0.2.10", ("192.0.2.10", 1812)),
        (("2001:db8::5", 1812, 0, 0), "2001:db8::5", ("2001:db8::5", 1812)),
        (("fe80::1", 1812, 0, LO), "fe80::1%lo", ("fe80::1", 1812, 0, LO)),
        # An interface gone since: its index stands for it, and the reply goes by it.
        (("fe80::1", 1812, 0, 4000000), "fe80::1%4000000", ("fe80::1", 1812, 0, 4000000)),
    ],
)
def test_a_reply_goes_by_the_interface_its_request_came_in_on(
    addr: tuple[str | int, ...], host: str, reply: tuple[str | int, ...]
) -> None:
    """As text, "fe80::1%lo" reaches sendto without its zone: the reply needs the index."""
    clients = table(("gw", "192.0.2.0/24"))
    assert clients.source_host(addr) == host
    assert clients.reply_address(host, 1812) == reply
    # Answered after a reload replaced the table, which has not seen the request come in.
    assert table(("gw", "192.0.2.0/24")).reply_address(host, 1812) == reply
