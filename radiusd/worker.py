"""A worker process: UDP sockets (SO_REUSEPORT), the packet loop, and a thread pool for the work.

The loop only matches the client, parses the header, consults the duplicate cache and sends;
hashing and the database run in the pool, so one slow request never holds up another.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sqlalchemy import text

from otpcore.app import App, build_app
from otpcore.config import ClientConfig, Settings, settings_from_toml
from otpcore.errors import OtpError
from radiusd.clients import ClientTable
from radiusd.clock import system_clock
from radiusd.dedup import Cached, DedupKey, DuplicateCache, InProgress
from radiusd.handler import Answer, RequestHandler
from radiusd.packets import MalformedPacket, parse_header

log = logging.getLogger("otpradius.server")

POOL_THREADS = 16
HEALTH_INTERVAL_S = 1.0
DROP_LOG_INTERVAL_S = 60.0


def open_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound with SO_REUSEPORT, so every worker process shares the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@dataclass
class DropLog:
    """Counts drops by reason and logs at most one line per reason per interval."""

    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def drop(self, reason: str, source: str, now: float) -> None:
        """Count a dropped datagram and log it unless this reason was logged recently."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if now - self.last.get(reason, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
            self.last[reason] = now
            log.warning("drop reason=%s src=%s total=%d", reason, source, self.counts[reason])


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


class Worker:
    """One process's share of the server."""

    def __init__(self, config_path: Path, settings: Settings, app: App) -> None:
        self.config_path = config_path
        self.settings = settings
        self.app = app
        self.clients = ClientTable(settings.clients)
        self.handler = RequestHandler(app.authenticator().authenticate,
                                      settings.policy.reply_language)  # fmt: skip
        self.dedup = DuplicateCache()
        self.drops = DropLog()
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="auth")
        self.healthy = True
        self.pending: set[asyncio.Future[None]] = set()
        self.delayed: dict[asyncio.TimerHandle, Callable[[], None]] = {}
        self.transports: list[asyncio.DatagramTransport] = []
        self.stopping = False

    # The loop side: nothing here blocks.

    def received(
        self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[str | int, ...]
    ) -> None:
        """Admit a datagram to the pool, answer a duplicate from the cache, or drop it."""
        host, port = str(addr[0]), int(addr[1])
        now = time.monotonic()
        client = self.clients.match(host)
        if client is None:
            self.drops.drop("unknown_client", host, now)
            return
        try:
            code, identifier = parse_header(data)
        except MalformedPacket as exc:
            self.drops.drop(f"malformed:{exc.reason}", host, now)
            return
        if code == 12 and not self.healthy:
            return  # Status-Server: no answer while the database is unreachable
        key = DedupKey(host, port, identifier, data[4:20])
        verdict = self.dedup.begin(key, now)
        if isinstance(verdict, InProgress):
            return
        if isinstance(verdict, Cached):
            transport.sendto(verdict.response, (host, port))
            return
        if self.stopping:
            self.dedup.finish(key, None, now)
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.handler.handle, data, client, host)
        wrapped = asyncio.ensure_future(self._answer(future, transport, key, client))
        self.pending.add(wrapped)
        wrapped.add_done_callback(self.pending.discard)

    async def _answer(
        self,
        future: asyncio.Future[Answer],
        transport: asyncio.DatagramTransport,
        key: DedupKey,
        client: ClientConfig,
    ) -> None:
        try:
            answer = await future
        except Exception as exc:  # a bug must cost one request, never the server
            log.error("handler failed error=%s client=%s", type(exc).__name__, client.name)
            answer = Answer(None, drop_reason="internal_error")
        if answer.unavailable:
            self.healthy = False
        if answer.reply is None:
            self.dedup.finish(key, None, time.monotonic())
            if answer.drop_reason and not answer.unavailable:
                self.drops.drop(answer.drop_reason, key.address, time.monotonic())
            elif answer.unavailable:
                self.drops.drop("database_unavailable", key.address, time.monotonic())
            return
        delay = self.settings.policy.reject_delay
        if answer.reject and delay > 0 and not self.stopping:
            # Jitter keeps the delay from telling a fast path from a slow one.
            wait = delay * random.uniform(0.8, 1.2)  # noqa: S311 - not a secret
            reply = answer.reply

            def send() -> None:
                self.delayed.pop(handle, None)
                self._send(transport, key, reply)

            handle = asyncio.get_running_loop().call_later(wait, send)
            self.delayed[handle] = send
            return
        self._send(transport, key, answer.reply)

    def _send(self, transport: asyncio.DatagramTransport, key: DedupKey, reply: bytes) -> None:
        # Cached when sent: a retransmission during the reject delay is dropped, not answered
        # early.
        self.dedup.finish(key, reply, time.monotonic())
        if not transport.is_closing():
            transport.sendto(reply, (key.address, key.port))

    # Housekeeping

    async def watch_health(self) -> None:
        """Probe the database every second; Status-Server is answered only while it answers."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            ok = await loop.run_in_executor(self.pool, self._probe)
            if ok != self.healthy:
                log.warning("database %s", "reachable again" if ok else "unreachable")
            self.healthy = ok
            await asyncio.sleep(HEALTH_INTERVAL_S)

    def _probe(self) -> bool:
        try:
            with self.app.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def reload_clients(self) -> None:
        """Re-read ``[[clients]]`` from the configuration file (SIGHUP)."""
        try:
            fresh = load_settings(self.config_path)
        except OtpError as exc:
            log.error("reload failed, keeping the current clients: %s", exc)
            return
        self.clients = ClientTable(fresh.clients)
        log.info("reload clients=%d", len(fresh.clients))

    async def stop(self) -> None:
        """Stop taking requests, answer what is in flight, then return."""
        self.stopping = True
        for transport in self.transports:
            transport.pause_reading()  # type: ignore[attr-defined]
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=10)
        for handle, send in list(self.delayed.items()):
            handle.cancel()
            send()  # the delayed Rejects go out now rather than never
        for transport in self.transports:
            transport.close()


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OtpError(f"{path}: {exc.strerror}") from None
    return settings_from_toml(content, path, Path.read_bytes)


async def _serve(worker: Worker, sockets: list[socket.socket], ready_fd: int | None) -> None:
    loop = asyncio.get_running_loop()
    for sock in sockets:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(worker), sock=sock)
        worker.transports.append(transport)
    done = asyncio.Event()

    async def _stop() -> None:
        await worker.stop()
        done.set()

    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(_stop()))
    loop.add_signal_handler(signal.SIGINT, lambda: asyncio.ensure_future(_stop()))
    loop.add_signal_handler(signal.SIGHUP, worker.reload_clients)
    health = asyncio.ensure_future(worker.watch_health())
    if ready_fd is not None:
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    await done.wait()
    health.cancel()
    worker.pool.shutdown(wait=True, cancel_futures=False)


def run_worker(config_path: Path, settings: Settings, ready_fd: int | None) -> int:
    """Serve until SIGTERM; returns the process exit status."""
    app = build_app(settings, system_clock)
    sockets = [open_socket(host, port) for host, port in settings.server.listen]
    worker = Worker(config_path, settings, app)
    asyncio.run(_serve(worker, sockets, ready_fd))
    app.store.dispose()
    return 0
