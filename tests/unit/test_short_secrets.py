"""Warnings about the clients at start and on reload: a shared secret of 12 octets or fewer
(SPEC §4), an address whose host bits widen it to a whole network or whose zone names no
interface of the host, and no client at all."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from otpcore.config import parse_settings
from radiusd.supervisor import warn_weak_clients

SOURCE = Path("/etc/otpradius/config.toml")


def no_secret_files(path: Path) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", str(path))


def warnings_for(secret: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    client = {"name": "vpn-gw-1", "address": "127.0.0.1/32", "secret": secret}
    settings = parse_settings({"clients": [client]}, SOURCE, no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_weak_clients(settings)
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    ("secret", "octets"),
    [
        ("s", 1),
        ("testing123", 10),
        ("x" * 12, 12),
        ("秘密の鍵", 12),  # counted in octets as sent, not in characters
    ],
)
def test_a_secret_of_twelve_octets_or_fewer_is_warned_about(
    secret: str, octets: int, caplog: pytest.LogCaptureFixture
) -> None:
    assert warnings_for(secret, caplog) == [
        f"weak secret client=vpn-gw-1 length={octets}: use 16 or more random octets"
    ]


@pytest.mark.parametrize("secret", ["x" * 13, "testing123testing", "秘密の鍵です"])
def test_a_secret_of_thirteen_octets_or_more_is_not(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert warnings_for(secret, caplog) == []


def address_warnings(address: str | list[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    client = {"name": "gw", "address": address, "secret": "a-secret-of-sixteen+"}
    settings = parse_settings({"clients": [client]}, SOURCE, no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_weak_clients(settings)
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    ("address", "network", "host"),
    [
        ("192.0.2.10/24", "192.0.2.0/24", "192.0.2.10/32"),
        ("2001:db8::7/64", "2001:db8::/64", "2001:db8::7/128"),
    ],
)
def test_an_address_with_host_bits_is_warned_about_as_the_network_it_admits(
    address: str, network: str, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Meant as one gateway, it lets every host of the network in with the client's secret."""
    assert address_warnings(address, caplog) == [
        f"wide address client=gw address={address}: admits all of {network}; "
        f"write {host} for that host alone"
    ]


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.10",
        "192.0.2.0/24",
        ["10.0.0.1/32", "::1"],
        "fe80::1%lo",
        f"fe80::%{socket.if_nametoindex('lo')}/64",
    ],
)
def test_an_address_without_host_bits_is_not(
    address: str | list[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert address_warnings(address, caplog) == []


@pytest.mark.parametrize(
    ("address", "zone"), [("fe80::1%eht0", "eht0"), ("fe80::%4000000/64", "4000000")]
)
def test_a_zone_naming_no_interface_of_the_host_is_warned_about(
    address: str, zone: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in the interface leaves the NAS unanswered; the warning is the only sign of it."""
    network = address if "/" in address else f"{address}/128"
    assert address_warnings(address, caplog) == [
        f"unknown zone client=gw address={network}: this host has no interface {zone}; "
        "its requests are dropped"
    ]


def test_a_configuration_without_clients_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    settings = parse_settings({}, SOURCE, no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_weak_clients(settings)
    assert [record.getMessage() for record in caplog.records] == [
        "no clients: every request is dropped until [[clients]] names one and the server is "
        "reloaded"
    ]


def test_one_link_given_to_two_clients_by_name_and_by_index_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The configuration cannot tell fe80::1%lo from fe80::1%1; only the first is matched."""
    index = socket.if_nametoindex("lo")
    clients = [
        {"name": "gw", "address": "fe80::1%lo", "secret": "a-secret-of-sixteen+"},
        {"name": "gw-2", "address": f"fe80::1%{index}", "secret": "a-secret-of-sixteen+"},
        {"name": "gw-3", "address": "fe80::1%4000000", "secret": "a-secret-of-sixteen+"},
    ]
    settings = parse_settings({"clients": clients}, SOURCE, no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_weak_clients(settings)
    assert [record.getMessage() for record in caplog.records] == [
        "unknown zone client=gw-3 address=fe80::1%4000000/128: this host has no interface "
        "4000000; its requests are dropped",
        f"same link client=gw-2 address=fe80::1%{index}/128: client=gw has it already, as "
        "fe80::1%lo/128; this client is never matched there",
    ]


def test_a_wide_link_local_address_is_warned_about_on_its_own_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert address_warnings("fe80::1%lo/64", caplog) == [
        "wide address client=gw address=fe80::1%lo/64: admits all of fe80::%lo/64; "
        "write fe80::1%lo/128 for that host alone"
    ]
