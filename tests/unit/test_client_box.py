"""The client list the supervisor hands its workers on reload."""

from __future__ import annotations

import ipaddress

import pytest

from otpcore.client_config import ClientConfig
from otpcore.errors import ConfigError
from radiusd.client_box import ClientBox


def _clients(*names: str) -> tuple[ClientConfig, ...]:
    network = (ipaddress.ip_network("192.0.2.10/32"),)
    return tuple(ClientConfig(name, network, b"s" * 16) for name in names)


def test_a_worker_takes_each_published_list_once() -> None:
    box = ClientBox(capacity=4096)
    assert box.take(0) is None  # nothing published: a worker keeps what it serves
    box.publish(_clients("vpn-gw-1"))
    taken = box.take(0)
    assert taken is not None
    generation, clients = taken
    assert clients == _clients("vpn-gw-1")
    assert clients[0].secret == b"s" * 16
    assert box.take(generation) is None
    box.publish(_clients("vpn-gw-1", "portal"))
    later = box.take(generation)
    assert later is not None
    assert [client.name for client in later[1]] == ["vpn-gw-1", "portal"]


def test_a_list_too_large_to_hand_on_is_refused_and_the_last_one_kept() -> None:
    box = ClientBox(capacity=1024)
    box.publish(_clients("vpn-gw-1"))
    with pytest.raises(ConfigError, match=r"\[\[clients\]\]: too many entries to reload \(40\)"):
        box.publish(_clients(*(f"nas-{n:02d}" for n in range(40))))
    taken = box.take(0)
    assert taken is not None
    assert [client.name for client in taken[1]] == ["vpn-gw-1"]
