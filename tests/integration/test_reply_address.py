"""A reply goes back to the address and interface its request came from: for a NAS known by
a link-local address (fe80::1%eth0), the interface's index must reach sendto, as its text
"fe80::1%eth0" does not (the reply would leave by whichever link is listed first)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from otpcore.app import App
from otpcore.ports import FrozenClock
from radiusd.client_box import ClientBox
from radiusd.nas import encode_request
from radiusd.wire import Codes
from radiusd.worker import Worker
from tests.integration.lifecycle import activated, add_user, code, import_token

SECRET = "testing123-secret"
LO = socket.if_nametoindex("lo")
NAS = ("fe80::1", 40_000, 0, LO)  # as recvfrom gives a link-local source: the index apart


class _Transport:
    """Where the worker's answers go, and to which address: kept, for the test to read."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False


@pytest.fixture
def worker(make_app: Callable[..., App], clock: FrozenClock) -> Any:
    client = {"name": "gw", "address": "fe80::1%lo", "secret": SECRET, "mode": "otp"}
    app = make_app(clients=[client])
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    worker = Worker(ClientBox(), app.settings, app)
    yield worker
    worker.hash_pool.shutdown()
    worker.probe_thread.shutdown()
    worker.db_thread.shutdown()


async def _sent(worker: Worker, *datagrams: bytes) -> list[tuple[bytes, Any]]:
    """Hand the datagrams to the worker one after another, each once the one before it was
    answered; what was sent, and where."""
    worker.loop = asyncio.get_running_loop()
    transport = _Transport()
    for answered, datagram in enumerate(datagrams, start=1):
        worker.received(transport, datagram, NAS)  # type: ignore[arg-type]
        for _ in range(500):
            if len(transport.sent) == answered:
                break
            await asyncio.sleep(0.01)
    return transport.sent


def test_every_reply_to_a_link_local_nas_carries_its_interface(
    worker: Worker, clock: FrozenClock
) -> None:
    login = encode_request(SECRET.encode(), user_name="taro", password=code(clock))
    status = encode_request(SECRET.encode(), code=Codes.STATUS_SERVER)
    # A decided login, its retransmission answered from the cache, and a Status-Server.
    sent = asyncio.run(_sent(worker, login, login, status))
    assert [addr for _, addr in sent] == [NAS, NAS, NAS]
    assert sent[0][0] == sent[1][0]
