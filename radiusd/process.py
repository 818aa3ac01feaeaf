"""A worker process's life: build the app, open the sockets, serve until SIGTERM, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import cast

from otpcore.app import build_app
from otpcore.config import Settings
from otpcore.errors import OtherKey, Unavailable
from otphost.clock import system_clock
from radiusd.client_box import ClientBox
from radiusd.expiry import ExpiryWatch
from radiusd.sockets import open_socket
from radiusd.worker import Worker

log = logging.getLogger("otpradius.server")

SWITCH_INTERVAL_S = 0.0005
# How often the packet loop tells the supervisor it is still turning (see ``_beat``).
HEARTBEAT_INTERVAL_S = 1.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SIGNALS = (*_STOP_SIGNALS, signal.SIGHUP)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is not None:
            self.worker.received(self.transport, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error %s", type(exc).__name__)


async def _beat(heartbeat: Callable[[], None]) -> None:
    """Tell the supervisor, once an interval, that this worker's packet loop still turns."""
    while True:
        heartbeat()
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


def _noted(signo: int, frame: object) -> None:
    """Python's part of a signal, which is nothing: its number reaches the loop by the wakeup
    socket, written there by the interpreter whichever thread the kernel interrupted."""


@contextlib.contextmanager
def _signals(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None], reload: Callable[[], None]
) -> Iterator[None]:
    """In the loop: SIGTERM and SIGINT call ``stop`` (once), SIGHUP calls ``reload``.

    Not ``loop.add_signal_handler``: closing the loop, asyncio closes its wakeup socket before
    it gives the signals back, and gives them back as they were (SIGINT raising
    KeyboardInterrupt, SIGTERM ending the process). A stop signal that came again while a
    worker ended (pkill run twice, Ctrl-C pressed again, or pkill once with the supervisor's
    own SIGTERM after it) printed "Exception ignored when trying to write to the signal wakeup
    fd" and a traceback, or made the worker fail with KeyboardInterrupt. Here the first stop
    signal has the kernel ignore all three for the rest of the process's life, and leaving the
    block does so too: whatever comes after, the worker ends as it began to.
    """
    receiver, sender = socket.socketpair()
    receiver.setblocking(False)
    sender.setblocking(False)
    stopping = False

    def take() -> None:
        nonlocal stopping
        try:
            numbers = receiver.recv(256)
        except BlockingIOError:
            return
        for number in numbers:
            if stopping:
                return
            if number in _STOP_SIGNALS:
                stopping = True
                _ignore_signals()
                stop()
            elif number == signal.SIGHUP:
                reload()

    loop.add_reader(receiver.fileno(), take)
    signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    try:
        for signo in _SIGNALS:
            signal.signal(signo, _noted)
        yield
    finally:
        # Ignored before the socket is let go: none can be written to a closed one.
        _ignore_signals()
        signal.set_wakeup_fd(-1)
        loop.remove_reader(receiver.fileno())
        receiver.close()
        sender.close()


def _ignore_signals() -> None:
    for signo in _SIGNALS:
        signal.signal(signo, signal.SIG_IGN)


async def _serve(
    worker: Worker,
    sockets: list[socket.socket],
    ready_fd: int | None,
    check_expiry: bool,
    heartbeat: Callable[[], None] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    worker.loop = loop
    for sock in sockets:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(worker), sock=sock)
        worker.transports.append(transport)
    stop_requested = asyncio.Event()
    with _signals(loop, stop_requested.set, worker.reload_clients):
        # Blocked by the supervisor until now; a reload asked for meanwhile arrives here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        health = asyncio.ensure_future(worker.watch_health())
        watch = ExpiryWatch(worker.app, worker.settings.tokens.warn_days) if check_expiry else None
        expiry = asyncio.ensure_future(watch.run()) if watch is not None else None
        # Beside the loop's work until the process ends, through the stop too: the stop waits for
        # answers in flight, and the supervisor must not take that wait for a hang.
        beat = asyncio.ensure_future(_beat(heartbeat)) if heartbeat is not None else None
        if ready_fd is not None:
            os.write(ready_fd, b"R")
            os.close(ready_fd)
        await stop_requested.wait()
        await worker.stop()
        for task in (health, expiry, beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if watch is not None:
            watch.shutdown()
        worker.hash_pool.shutdown()
        worker.probe_thread.shutdown(wait=True, cancel_futures=False)
        worker.db_thread.shutdown(wait=True, cancel_futures=False)


def run_worker(
    client_box: ClientBox,
    settings: Settings,
    ready_fd: int | None,
    *,
    check_expiry: bool = False,
    heartbeat: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGTERM; returns the process exit status.

    ``check_expiry``: this worker logs the tokens nearing expiry, at start and then daily.
    ``heartbeat``: called from the packet loop every ``HEARTBEAT_INTERVAL_S`` while it runs.
    """
    seed_trouble = ""
    try:
        app = build_app(settings, system_clock)
        reachable = True
    except OtherKey as exc:
        # A worker restarted (a hung one killed, say) after another node rotated the key and
        # before this node was given it: dying here again and again would stop the whole
        # server, where the workers still running wait, silent, for the key file, and take it
        # by themselves. The server's own start still refuses such a key (an operator is there).
        log.warning("worker started with a key that does not open the database's seeds: %s",
                    exc)  # fmt: skip
        app = build_app(settings, system_clock, check_schema=False)
        reachable = True
        seed_trouble = str(exc)
    except Unavailable as exc:
        # A worker restarted while the database is away (the others serving on, silent): dying
        # here again and again would count as a worker that cannot start and stop the whole
        # server, which would then not come back by itself. The schema and the key were
        # checked at the server's start; this worker waits for the database as the others do.
        log.warning("worker started while the database does not answer: %s", exc)
        app = build_app(settings, system_clock, check_schema=False)
        reachable = False
    # The start-up checks are done: from here the pooled store serves only the first worker's
    # daily expiry report, and no connection of it should idle on PostgreSQL meanwhile (the
    # request path has its own, one a thread).
    app.store.dispose()
    sockets = [open_socket(host, port) for host, port in settings.server.listen]
    worker = Worker(client_box, settings, app)
    # Status-Server waits for the health probe to find the database there.
    worker.healthy = reachable
    worker.seed_trouble = seed_trouble
    # The first worker, as for the expiry report: one line for the whole server.
    worker.watch_key_file = check_expiry
    # What start-up built lives as long as the process: keep the collector from walking it
    # again and again, and collect young objects less often (requests make many, briefly).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    # The packet loop and the database thread share the interpreter: with the default 5 ms
    # turns, a batch being decided keeps the loop from sending finished answers and reading
    # new requests for that long. Shorter turns took p99 at half peak from ~20 ms to ~6 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    asyncio.run(_serve(worker, sockets, ready_fd, check_expiry, heartbeat))
    app.store.dispose()
    return 0
