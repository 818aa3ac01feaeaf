"""A worker's packet loop, and the threads it hands the work to.

The loop only matches the client, parses the header, consults the duplicate cache and sends;
hashing and the database run in the pool, so one slow request never holds up another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from otpcore.app import App
from otpcore.attempts import AuthRequest, NotWritten, Prepared, needs_password_hash
from otpcore.client_config import ClientConfig
from otpcore.config import Settings
from otpcore.errors import Unavailable
from otpcore.logfields import field
from radiusd.client_box import ClientBox
from radiusd.clients import ClientTable
from radiusd.clock_steps import ClockSteps
from radiusd.dedup import Cached, Conflicting, DedupKey, DuplicateCache, InProgress, datagram_digest
from radiusd.drops import DropLog
from radiusd.fairness import FairPool, FairQueue
from radiusd.handler import Answer, RequestHandler, failed, unavailable
from radiusd.housekeeping import Housekeeping, lowest_priority
from radiusd.packets import Request
from radiusd.reject_delay import reject_hold
from radiusd.wire import Codes, MalformedPacket, parse_header

log = logging.getLogger("otpradius.server")


def hash_threads() -> int:
    """Password-hash threads for one worker: one per core it may run on (2 to 16)."""
    # One per core, not per worker's share of them: a NAS that sends from one port reaches
    # one worker only, which must still be able to use every core. More than that only take
    # turns on the cores and evict each other's 19 MiB from the cache: at four threads per
    # worker on 2 cores the bench's login rate was 0.85 of the hash bound against 0.88 at
    # two, and each worker kept 126 MB instead of 88 MB after a login storm.
    return min(16, max(2, len(os.sched_getaffinity(0))))


MAX_BATCH = 512
# Requests one client may have waiting for the database thread: about two seconds of work for
# one core of the kind the bench runs on, less than the 3 to 5 s a NAS waits before it resends.
# Beyond it a client is flooding, and its new requests are dropped (the NAS retries or fails
# over) rather than queued for ever: unbounded, a sustained flood grew the queue (and the
# worker's memory) without limit, and every answer came later than any NAS still waited.
INBOX_LIMIT = 5_000
# Rejects one client may have held for the reject delay. They are decided before any queue
# (one without User-Name or User-Password, say, costs no hash and no database), so a NAS that
# sent them as fast as the loop reads held each one, its reply and its echoed Proxy-State up
# to 4 KB, for the whole delay: hundreds of megabytes a worker at 10 s. Beyond the bound the
# client's Rejects are not sent, as its other requests are dropped in a flood; each still
# goes into the duplicate cache (bounded as a whole), where a retransmission finds it.
HELD_LIMIT = 5_000
# A password check still queued this long after its request arrived is dropped unhashed. Its
# NAS has given up by then (3 to 5 s a try, three or four tries; FreeRADIUS as a proxy waits
# 20 s): hashed anyway, a queue of 2,000 at 30 ms each took every answer past the NAS's window
# in a 9:00 storm, and the CPU went to logins nobody waited for while the live ones queued.
HASH_WAIT_LIMIT_S = 20.0
STOP_WAIT_S = 10.0


@dataclass(slots=True)
class _Job:
    """A request on its way: where the answer goes and what was asked."""

    key: DedupKey
    transport: asyncio.DatagramTransport
    client: ClientConfig
    request: Request
    auth: AuthRequest
    started: float
    arrived: float  # time.monotonic() when the datagram was read


class Worker(Housekeeping):
    """One process's share of the server."""

    def __init__(self, client_box: ClientBox, settings: Settings, app: App) -> None:
        self.client_box = client_box
        self.clients_taken = 0  # the generation of the box's list this worker serves
        self.settings = settings
        self.app = app
        self.clients = ClientTable(settings.clients)
        self.authenticator = app.authenticator()
        self.handler = RequestHandler(self.authenticator.authenticate,
                                      settings.policy.reply_language)  # fmt: skip
        # One share per configured client: one NAS's requests cannot push another's answers out.
        self.dedup = DuplicateCache(client.name for client in settings.clients)
        self.drops = DropLog()
        # Password hashing runs in a pool (argon2 releases the GIL); everything that touches
        # the database for deciding without a hash, and every commit, runs in one thread that
        # takes whatever has queued up as one batch: one transaction, one fsync.
        self.hash_pool: FairPool[_Job] = FairPool(self._hash_job, hash_threads())
        # The probe also checkpoints the WAL: after a storm at a million users that is tens of
        # milliseconds of copying, which at normal priority stalled the requests behind it.
        self.probe_thread = ThreadPoolExecutor(
            1, thread_name_prefix="probe", initializer=lowest_priority
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix="db")
        # Taken a batch at a time, from the clients in turn: one NAS's backlog cannot hold up
        # another's requests by more than a batch.
        self.inbox: FairQueue[_Job] = FairQueue(INBOX_LIMIT)
        self.ready: list[tuple[_Job, Prepared]] = []
        self.batch_running = False
        self.batch_started = 0.0
        self.hashing_now = 0
        self.healthy = True
        self.watch_key_file = False
        self.key_trouble = ""
        self.seed_trouble = ""
        self.clock_steps = ClockSteps()
        self.outages = 0
        self.delayed: dict[asyncio.TimerHandle, Callable[[], None]] = {}
        self.held: dict[str, int] = {}  # Rejects being held, by client name
        self.transports: list[asyncio.DatagramTransport] = []
        self.stopping = False
        self.closed = False
        self.idle = asyncio.Event()
        # Soon after start, then once an interval; the jitter keeps workers and nodes that
        # started together from purging the one table at the same moment.
        self.next_purge = time.monotonic() + random.uniform(1.0, 5.0)  # noqa: S311 - not a secret

    # The loop side: nothing here blocks.

    def received(
        self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[str | int, ...]
    ) -> None:
        """Check a datagram and queue it, answer a duplicate from the cache, or drop it."""
        if self.stopping:
            return  # a transport that could not pause (see stop_reading)
        host, port = self.clients.source_host(addr), int(addr[1])
        now = time.monotonic()
        # The instant the request is judged at, read now rather than when a thread gets to
        # it: behind a batch's commit or a queue of password hashes, a code of the step it
        # was typed in would be checked against a later one, and an expiry or start date
        # passed meanwhile would decide it.
        received = self.app.clock()
        client = self.clients.match(host)
        if client is None:
            self.drops.drop("unknown_client", host, now)
            return
        try:
            code, identifier = parse_header(data)
        except MalformedPacket as exc:
            self.drops.drop(f"malformed:{exc.reason}", host, now, client.name)
            return
        if code == Codes.STATUS_SERVER:
            self._status(transport, data, client, host, addr, now)
            return
        key = DedupKey(host, port, identifier, data[4:20], client.name, datagram_digest(data))
        if code == Codes.ACCESS_REQUEST and (
            self.hash_pool.full(client.name) or self.inbox.full(client.name)
        ):
            # A client with a full queue (of password checks, or of requests waiting for the
            # database thread) is flooding: its new requests are refused before they are
            # decoded (decoding each would hold up every other client's behind them in the
            # socket) and take no place in the cache, where they would push out other
            # clients' answers. A resend of one already answered still gets its answer, or its
            # NAS would count an accepted login as failed.
            known = self.dedup.known(key, now)
            if isinstance(known, Cached):
                transport.sendto(known.response, addr)
            elif isinstance(known, Conflicting):
                self.drops.drop("conflicting_duplicate", host, now, client.name)
            elif known is None:
                self.drops.drop("overload", host, now, client.name)
            return
        verdict = self.dedup.begin(key, now)
        if isinstance(verdict, InProgress):
            return
        if isinstance(verdict, Conflicting):
            # The key of a request remembered, other bytes: no NAS resends a request changed
            # (RFC 5080 §2.2.1), so it is somebody else's datagram from the NAS's address, and
            # neither the answer kept for the NAS nor a decision is owed to it.
            self.drops.drop("conflicting_duplicate", host, now, client.name)
            return
        if isinstance(verdict, Cached):
            transport.sendto(verdict.response, addr)
            return
        if code == Codes.ACCESS_REQUEST and (not self.healthy or self._stalled(now)):
            # Not decided: a standby the address led to after a failover still answers reads,
            # so an unknown or suspended login was rejected from what may be stale rows, and
            # the NAS took that Reject instead of asking the server it fails over to. The
            # health probe, not a request, finds the database back.
            self.dedup.finish(key, None, now)
            self.drops.drop("database_unavailable", host, now, client.name)
            return
        admitted = self.handler.admit(data, client)
        if isinstance(admitted, Answer):
            self._deliver(transport, key, admitted, now)
            return
        started = time.perf_counter()
        auth = self.handler.to_auth(admitted, client, host, received)
        if isinstance(auth, Answer):
            self._deliver(transport, key, auth, now)
            return
        job = _Job(key, transport, client, admitted, auth, started, now)
        if needs_password_hash(auth):
            if self.hash_pool.submit(job.client.name, job):
                self.hashing_now += 1
            else:
                self._deliver(transport, key, Answer(None, drop_reason="overload"), now)
        elif self.inbox.push(job.client.name, job):
            self._kick()
        else:
            self._deliver(transport, key, Answer(None, drop_reason="overload"), now)

    def _status(
        self,
        transport: asyncio.DatagramTransport,
        data: bytes,
        client: ClientConfig,
        host: str,
        peer: tuple[str | int, ...],
        now: float,
    ) -> None:
        """Answer a Status-Server at once, every copy, without the duplicate cache.

        It decides nothing and touches no state (SPEC §4), so a copy answered again gets what
        the cache would have given it, for one more check of its Message-Authenticator; and a
        client's own Proxy-State makes each reply up to 4 KB, which cached would only take room
        from the answers that count.
        """
        if not self.healthy or self.seed_trouble or self._stalled(now) or self.stopping:
            # No answer while the database is unreachable or the seeds do not open: the NAS
            # fails over.
            return
        answer = self.handler.admit(data, client)
        if not isinstance(answer, Answer):
            return  # not reached: the header said Status-Server, and so does the packet
        if answer.reply is not None:
            transport.sendto(answer.reply, peer)
        elif answer.drop_reason:
            self.drops.drop(answer.drop_reason, host, now, client.name)

    def _prepare(self, job: _Job) -> Prepared | Answer:
        """In the hash pool: read and decide a request that may verify a password."""
        try:
            return self.authenticator.prepare(job.auth)
        except Unavailable as exc:
            return unavailable(exc)
        except Exception as exc:  # a bug must cost one request, never the server
            return failed(exc, job.client, job.auth.login)

    def _hash_job(self, job: _Job) -> None:
        """In a hash thread: prepare, then hand the result back to the loop."""
        if time.monotonic() - job.arrived > HASH_WAIT_LIMIT_S:
            result: Prepared | Answer = Answer(None, drop_reason="queued_too_long")
        else:
            result = self._prepare(job)
        assert self.loop is not None  # noqa: S101 - set before the sockets open
        self.loop.call_soon_threadsafe(self._prepared, job, result)

    def _prepared(self, job: _Job, result: Prepared | Answer) -> None:
        self.hashing_now -= 1
        if isinstance(result, Answer):
            self._deliver(job.transport, job.key, result, job.arrived)
        else:
            self.ready.append((job, result))
            self._kick()
        self._check_idle()

    def _kick(self) -> None:
        """Start a batch in the database thread unless one is running; it takes all queued."""
        if self.batch_running or self.closed or not (self.inbox or self.ready):
            return
        jobs = self.inbox.take(MAX_BATCH)
        ready, self.ready = self.ready[:MAX_BATCH], self.ready[MAX_BATCH:]
        self.batch_running = True
        self.batch_started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(
            self.db_thread, self._run_batch, jobs, ready
        )
        future.add_done_callback(self._batch_done)

    def _batch_done(self, done: asyncio.Future[list[tuple[_Job, Answer]]]) -> None:
        self.batch_running = False
        try:
            answers = done.result()
        except Exception as exc:  # pragma: no cover - _run_batch catches what it can
            log.error("batch failed error=%s", type(exc).__name__)
            answers = []
        for job, answer in answers:
            self._deliver(job.transport, job.key, answer, job.arrived)
        self._kick()
        self._check_idle()

    def _run_batch(
        self, jobs: list[_Job], ready: list[tuple[_Job, Prepared]]
    ) -> list[tuple[_Job, Answer]]:
        """In the database thread: decide the jobs that need no hash, then commit everything."""
        answers: list[tuple[_Job, Answer]] = []
        prepared = list(ready)
        with self.app.hot.reading():
            for job in jobs:
                result = self._prepare(job)
                if isinstance(result, Answer):
                    answers.append((job, result))
                else:
                    prepared.append((job, result))
        if not prepared:
            return answers
        try:
            outcomes = self.authenticator.commit([item for _, item in prepared])
        except Unavailable as exc:
            return answers + [(job, unavailable(exc)) for job, _ in prepared]
        except Exception as exc:
            return answers + [(job, failed(exc, job.client, job.auth.login)) for job, _ in prepared]
        for (job, _), outcome in zip(prepared, outcomes, strict=True):
            if isinstance(outcome, NotWritten):
                # No answer: the NAS asks again, by when the row may be free. The database is
                # not gone, so the node stays in service for everyone else.
                answers.append((job, Answer(None, drop_reason="row_locked")))
                continue
            answer = self.handler.reply(job.request, job.client, outcome, job.key.address,
                                        job.started)  # fmt: skip
            answers.append((job, answer))
        return answers

    def _deliver(
        self, transport: asyncio.DatagramTransport, key: DedupKey, answer: Answer, arrived: float
    ) -> None:
        if answer.unavailable:
            self.outages += 1
        if answer.unavailable and self.healthy:
            # With the reason: a full disk or a read-only file is no network fault.
            log.warning("database unreachable error=%s", field(answer.cause))
            self.healthy = False
        if answer.reply is None:
            self.dedup.finish(key, None, time.monotonic())
            if answer.drop_reason:
                self.drops.drop(answer.drop_reason, key.address, time.monotonic(), key.client)
            return
        delay = self.settings.policy.reject_delay
        wait = reject_hold(delay, time.monotonic() - arrived) if answer.reject else 0.0
        if wait > 0 and not self.stopping:
            held = self.held.get(key.client, 0)
            if held >= HELD_LIMIT:
                # Not sent, but decided, and perhaps counted (a wrong code, a wrong password):
                # kept as the request's answer, so that the NAS's retransmission is answered
                # from the cache rather than decided and counted a second time.
                self.dedup.finish(key, answer.reply, time.monotonic())
                self.drops.drop("overload", key.address, time.monotonic(), key.client)
                return
            self.held[key.client] = held + 1
            reply = answer.reply

            def send() -> None:
                self.delayed.pop(handle, None)
                left = self.held.pop(key.client, 1) - 1
                if left:
                    self.held[key.client] = left
                self._send(transport, key, reply)
                self._check_idle()

            handle = asyncio.get_running_loop().call_later(wait, send)
            self.delayed[handle] = send
            return
        self._send(transport, key, answer.reply)

    def _send(self, transport: asyncio.DatagramTransport, key: DedupKey, reply: bytes) -> None:
        # Cached when sent: a retransmission during the reject delay is dropped, not answered
        # early.
        self.dedup.finish(key, reply, time.monotonic())
        if not transport.is_closing():
            # With the index of a link-local NAS's interface, which the text of its address
            # does not carry to sendto.
            transport.sendto(reply, self.clients.reply_address(key.address, key.port))

    def _busy(self) -> bool:
        return bool(self.batch_running or self.inbox or self.ready or self.hashing_now)

    def _check_idle(self) -> None:
        if self.stopping and not self._busy():
            self.idle.set()

    def reload_clients(self) -> None:
        """Serve the ``[[clients]]`` the supervisor last checked (SIGHUP)."""
        taken = self.client_box.take(self.clients_taken)
        if taken is None:
            # A SIGHUP sent to a worker directly (pkill -HUP reaches every process): the
            # file is read, checked and logged by the supervisor, which then signals us.
            log.info("reload nothing_new: SIGHUP reloads through the main process")
            return
        self.clients_taken, clients = taken
        self.clients = ClientTable(clients)
        self.dedup.set_clients(client.name for client in clients)
        log.info("reload clients=%d", len(clients))

    async def stop(self) -> None:
        """Stop taking requests, answer what is in flight, then return."""
        self.stopping = True
        for transport in self.transports:
            stop_reading(transport)
        self._check_idle()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout=STOP_WAIT_S)
        # Whatever is still queued now (a database that hangs) is dropped unanswered: the NAS
        # retries elsewhere, and no batch may start on the pools being shut down.
        self.closed = True
        for handle, send in list(self.delayed.items()):
            handle.cancel()
            send()  # the delayed Rejects go out now rather than never
        self.drops.flush(time.monotonic(), everything=True)
        for transport in self.transports:
            transport.close()


def stop_reading(transport: asyncio.DatagramTransport) -> None:
    """Take no more datagrams from this transport where it can pause; it stays open for replies."""
    # Datagram transports learnt to pause in a 3.11 bugfix release (gh-103607); Debian 12's
    # 3.11.2 raises. There the packet loop drops what still arrives while it stops, as a
    # paused socket's queue is lost when it closes.
    with contextlib.suppress(AttributeError, NotImplementedError):
        transport.pause_reading()  # type: ignore[attr-defined]
