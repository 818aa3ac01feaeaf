"""A worker's housekeeping: the database health watch and the purge of expired challenges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from otpcore.app import App
from otpcore.crypto import load_keyring
from otpcore.errors import KeyFileError, OtpError
from otpcore.logfields import field
from radiusd.clock_steps import ClockSteps
from radiusd.drops import DropLog
from radiusd.held_lines import send_held

log = logging.getLogger("otpradius.server")

HEALTH_INTERVAL_S = 1.0
# A database that has not answered the probe, or finished a batch, for this long is taken as
# unreachable: a NAS gives up on a request after a few seconds, and Status-Server must send it
# to another server rather than report this one healthy (a frozen or partitioned PostgreSQL
# does not refuse, it never answers; a SQLite write lock held by another process waits).
STALL_S = 5.0
# Expired challenges are deleted this often, in slices that hold the write lock briefly.
PURGE_INTERVAL_S = 60.0
PURGE_SLICE = 2_000


@dataclass(frozen=True, slots=True)
class Probe:
    """What one health probe found: "" where nothing is wrong."""

    answered: bool  # the database answered and takes writes
    key_file: str  # what is wrong with the key file as a worker starting now would read it
    seeds: str  # why this worker's key does not open the database's seeds


def lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux schedules each thread)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Housekeeping:
    """What ``Worker`` does beside the requests; it provides the state declared here."""

    app: App
    healthy: bool
    # Whether this worker says when the key file goes wrong under it (one worker does, so
    # that the operator reads one line, not one per worker), and what it last found wrong.
    watch_key_file: bool
    key_trouble: str
    # Why this worker's key does not open the seeds in the database ("" while it does): another
    # node rotated the key, or a backup from before a rotation was restored.
    seed_trouble: str
    clock_steps: ClockSteps
    drops: DropLog
    outages: int  # how many times a request found the database unreachable
    stopping: bool
    batch_running: bool
    batch_started: float
    next_purge: float
    probe_thread: ThreadPoolExecutor
    db_thread: ThreadPoolExecutor

    async def watch_health(self) -> None:
        """Probe the database every second; Status-Server is answered only while it answers."""
        loop = asyncio.get_running_loop()
        probe: asyncio.Future[Probe] | None = None
        purge: asyncio.Future[None] | None = None
        outages = 0
        while not self.stopping:
            if probe is None:
                probe = loop.run_in_executor(self.probe_thread, self._probe)
                outages = self.outages
            # Waited for at most STALL_S: a probe that hangs must not keep the last verdict.
            done, _ = await asyncio.wait({probe}, timeout=STALL_S)
            answered = False
            if done:
                found, probe = probe.result(), None
                # Not when a request found the database unreachable while the probe ran: its
                # answer may be from before, and would call the database reachable again.
                answered = found.answered and self.outages == outages
                self._report_key_file(found.key_file)
                if answered:
                    self._report_seeds(found.seeds)
            send_held()  # lines a busy syslog daemon or stderr reader could not take yet
            self.drops.flush(time.monotonic())  # drops held back a minute ago, if no more came
            if self.watch_key_file:
                self._report_clock_step(self.clock_steps.look())
            stalled = self._stalled(time.monotonic())
            ok = answered and not stalled
            if ok != self.healthy:
                cause = ""
                if not done:
                    cause = f" (no answer within {STALL_S:.0f} s)"
                elif stalled:
                    cause = f" (a write waited over {STALL_S:.0f} s)"
                elif not ok and self.app.hot.failure:
                    cause = f" error={field(self.app.hot.failure)}"
                log.warning("database %s%s", "reachable again" if ok else "unreachable", cause)
            self.healthy = ok
            now = time.monotonic()
            if ok and now >= self.next_purge and (purge is None or purge.done()):
                self.next_purge = now + PURGE_INTERVAL_S * random.uniform(0.9, 1.1)  # noqa: S311
                # Beside the watch, not in it: a purge waiting for the database must not stop
                # the watch from seeing that it waits.
                purge = asyncio.ensure_future(self.purge_challenges())
            await asyncio.sleep(HEALTH_INTERVAL_S)

    def _stalled(self, now: float) -> bool:
        """True while the database thread has been on one batch for over STALL_S."""
        return self.batch_running and now - self.batch_started > STALL_S

    def _probe(self) -> Probe:
        """Whether the database answers, and whether the key file and this worker's key serve."""
        answered = self.app.hot.ping()
        seeds = self._seed_trouble() if answered else self.seed_trouble
        return Probe(answered, self._key_file_trouble(), seeds)

    def _seed_trouble(self) -> str:
        # A node not yet given the key another node rotated to drops every OTP login (its
        # NAS waits out each one), yet answered Status-Server, so the NAS kept sending logins
        # here. One seed tells: a rotation re-seals them all in one transaction. Opening it
        # also makes the ring read the key file again, which is how the node takes the new key.
        try:
            sample = self.app.hot.some_seed()
            if sample is not None:
                self.app.keyring.unseal(*sample)
        except KeyFileError as exc:
            return str(exc)
        except OtpError:
            return self.seed_trouble  # the database failed meanwhile: no new verdict
        return ""

    def _key_file_trouble(self) -> str:
        # The workers keep the key they read at start, so a key file deleted, emptied or opened
        # to others under them changes no login: nothing said, the operator learnt of it only
        # when a worker restarted (a hung one killed, say) and could not start, and the whole
        # server stopped. Read each probe, as a worker restarted now would read it.
        if not self.watch_key_file:
            return ""
        try:
            load_keyring(self.app.settings.key_file)
        except KeyFileError as exc:
            return str(exc)
        return ""

    def _report_key_file(self, trouble: str) -> None:
        """Say once when the key file becomes unusable, and once when it is usable again."""
        if trouble == self.key_trouble:
            return
        if trouble and not self.key_trouble:
            log.error("key file unusable error=%s: logins go on with the key read at start, "
                      "but a worker or server started now cannot start; put the key file back",
                      field(trouble))  # fmt: skip
        elif not trouble:
            log.warning("key file usable again")
        self.key_trouble = trouble

    def _report_clock_step(self, step: float) -> None:
        # Every code is checked against the wall clock: one stepped by more than a time step
        # turns users' right codes into wrong ones, each counted, until it is right again, and
        # a step back after the clock ran ahead makes the steps already used come round again.
        if step:
            log.warning("wall clock stepped %s seconds=%.1f: one-time passwords are checked "
                        "against it; check its time source", "back" if step < 0 else "forward",
                        abs(step))  # fmt: skip

    def _report_seeds(self, trouble: str) -> None:
        """Follow whether this worker's key opens the seeds; say it once for the server."""
        if trouble == self.seed_trouble:
            return
        if self.watch_key_file and trouble and not self.seed_trouble:
            log.error("key does not open the database's seeds error=%s: Status-Server goes "
                      "unanswered and OTP logins are dropped until it does; give this node the "
                      "rotated key file", field(trouble))  # fmt: skip
        elif self.watch_key_file and not trouble:
            log.warning("key opens the database's seeds again")
        self.seed_trouble = trouble

    async def purge_challenges(self) -> None:
        """Delete expired challenges, a slice at a time, between the database thread's batches.

        Every challenge-mode login and activation step leaves a row; without this the table
        grew for ever, by as many rows a second as anyone with one password cared to send.
        """
        # Not from the probe thread: its write lock would make a commit wait in SQLite's busy
        # handler, and at the lowest priority on a busy core it could keep that lock a while.
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                deleted = await loop.run_in_executor(self.db_thread, self._purge_slice)
            except OtpError as exc:
                log.warning("challenge purge failed, next in %.0f s: %s", PURGE_INTERVAL_S, exc)
                return
            except Exception as exc:  # housekeeping must never end the health watch it runs in
                log.error("challenge purge failed error=%s", type(exc).__name__)
                return
            if deleted < PURGE_SLICE:
                return

    def _purge_slice(self) -> int:
        with self.app.hot.transaction() as writer:
            return writer.purge_challenges(self.app.clock(), PURGE_SLICE)
