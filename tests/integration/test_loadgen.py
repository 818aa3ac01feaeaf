"""The bench's load generator against a real UDP echo: latencies end at the kernel's stamp."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from bench import loadgen


@contextlib.contextmanager
def _echo() -> Iterator[tuple[str, int]]:
    """A UDP socket on a thread that sends every datagram straight back."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, source = server.recvfrom(4096)
            except TimeoutError:
                continue
            server.sendto(data, source)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """The echo for one test."""
    with _echo() as address:
        yield address


def _packets(count: int) -> list[bytes]:
    # Code 2 (an Accept's), a distinct identifier each, padded to a RADIUS header's length.
    return [bytes([2, number % 256]) + bytes(18) for number in range(count)]


@pytest.mark.parametrize("rate", [None, 400.0])
def test_every_reply_is_timed_from_the_kernels_stamp(
    echo: tuple[str, int], rate: float | None
) -> None:
    result = loadgen.run(_packets(60), echo, rate=rate, sockets=4, timeout=2.0)
    assert (result.sent, result.answered, result.lost) == (60, 60, 0)
    assert result.codes == {2: 60}
    assert len(result.latencies) == len(result.read_latencies) == 60
    # Queued by the kernel before the generator read it, never after; were the stamps not
    # read, both lists would be the same.
    assert all(
        0 < stamped < read
        for stamped, read in zip(result.latencies, result.read_latencies, strict=True)
    )
    assert sum(result.read_latencies) > sum(result.latencies)
    assert result.percentile(99) <= result.percentile(99, as_read=True)


def test_a_reply_queued_before_the_send_returned_is_timed_from_its_stamp() -> None:
    # On one core the echo thread often runs, answers, and has its reply stamped while the
    # generator is still inside sendto: the send's clocks must be read before it.
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # the echo thread, started next, inherits it
    try:
        with _echo() as address:
            for _ in range(5):
                result = loadgen.run(_packets(60), address, sockets=4, timeout=2.0)
                assert result.answered == 60
                assert all(
                    0 < stamped < read
                    for stamped, read in zip(result.latencies, result.read_latencies, strict=True)
                )
    finally:
        os.sched_setaffinity(0, cores)
