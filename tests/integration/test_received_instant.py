"""A worker judges a request at the instant its datagram was read, by the clock it was handed,
however long the request then waits behind a batch's commit (SPEC §3)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from otpcore.app import App
from otpcore.ports import FrozenClock
from otpcore.totp import time_step
from radiusd.client_box import ClientBox
from radiusd.nas import decode_reply, encode_request
from radiusd.wire import Codes
from radiusd.worker import Worker
from tests.integration.lifecycle import activated, add_user, code, import_token

SECRET = "testing123-secret"
NAS = ("127.0.0.1", 40_000)


class _Transport:
    """Where the worker's answers go: kept, for the test to read."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return False


@pytest.fixture
def otp_app(make_app: Callable[..., App], clock: FrozenClock) -> App:
    """taro active on 23456789 (60 s steps, window 1), behind a client in OTP mode: its
    requests need no password hash and are decided in the database thread's batches."""
    client = {"name": "local", "address": "127.0.0.1/32", "secret": SECRET, "mode": "otp"}
    app = make_app(clients=[client])
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    return app


async def _answer_after_a_wait(worker: Worker, datagram: bytes, wait: Callable[[], None]) -> bytes:
    """Hand ``datagram`` to the worker while its database thread is busy, call ``wait`` (the
    clock moves on meanwhile), then let the batch run; the answer sent."""
    worker.loop = asyncio.get_running_loop()
    busy, go_on = threading.Event(), threading.Event()

    def earlier_batch() -> None:
        busy.set()
        go_on.wait(10)

    worker.db_thread.submit(earlier_batch)
    assert busy.wait(10)
    transport = _Transport()
    worker.received(transport, datagram, NAS)  # type: ignore[arg-type]
    wait()
    go_on.set()
    for _ in range(500):
        if transport.sent:
            return transport.sent[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no answer")


def test_a_code_read_in_step_n_and_decided_in_step_n_plus_2_is_judged_in_n(
    otp_app: App, clock: FrozenClock
) -> None:
    worker = Worker(ClientBox(), otp_app.settings, otp_app)
    try:
        step = time_step(clock(), 60)
        datagram = encode_request(SECRET.encode(), user_name="taro", password=code(clock))

        def two_steps_later() -> None:
            clock.advance(120)
            assert time_step(clock(), 60) == step + 2

        raw = asyncio.run(_answer_after_a_wait(worker, datagram, two_steps_later))
    finally:
        worker.hash_pool.shutdown()
        worker.probe_thread.shutdown()
        worker.db_thread.shutdown()
    reply = decode_reply(raw, SECRET.encode(), datagram[4:20])
    assert reply.code is Codes.ACCESS_ACCEPT
    assert otp_app.hot.token("23456789").last_step == step  # type: ignore[union-attr]
