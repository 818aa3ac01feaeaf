"""Matching a source address to its configured client (SPEC §4), before anything is decoded."""

from __future__ import annotations

from pathlib import Path

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
