"""Write transactions on one SQLite file taken in turn, each writer woken the moment it may go.

SQLite lets one writer in at a time. A writer that finds the lock taken retries from SQLite's
busy handler, which sleeps 1, 2, 5, 10 ms and longer between tries and is never woken early.
Two workers committing batches of well under a millisecond each then wait for each other in
sleeps ten times as long: at 1,000 logins/s on the default two workers, half the commits
slept and the p99 went from about 10 ms to about 100 ms. The workers' write transactions
queue on a lock of a file beside the database instead; the kernel hands it on at once.

``otpctl``'s write transactions take the turn too: going straight to SQLite's lock, an
operator's unlock would sleep in the busy handler while the workers handed the turn on among
themselves, and could lose every try until its busy timeout. Unlike the workers, it waits for
the turn no longer than that timeout: a writer that never lets go (one stuck on a dead disk)
makes it fail as busy rather than hang.

Correctness never rests on the lock: SQLite's own still keeps every writer apart, including a
tool that does not take the turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from otpcore.errors import Busy

SUFFIX = "-writer"


class Turnstile:
    """An exclusive lock on ``<database>-writer``, one open file per thread.

    ``wait`` bounds how long a turn is waited for, in seconds; None waits as long as it takes.
    """

    def __init__(self, database: str, wait: float | None = None) -> None:
        self.database = database
        self.path = database + SUFFIX
        self.wait = wait
        self._local = threading.local()
        self._opened: set[int] = set()
        self._opened_lock = threading.Lock()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the writers' turn for the block; without a usable lock file, go at once.

        Raises Busy when the turn did not come within ``wait``.
        """
        descriptor = self._descriptor()
        if descriptor is None:
            yield
            return
        try:
            taken = self._take(descriptor)
        except OSError:
            yield  # SQLite's own lock still keeps the writers apart
            return
        if not taken:
            assert self.wait is not None  # noqa: S101 - only a bounded wait gives up
            raise Busy(self.wait)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close every thread's lock file; only once no thread is in a turn or will be."""
        with self._opened_lock:
            opened, self._opened = self._opened, set()
        for descriptor in opened:
            with contextlib.suppress(OSError):
                os.close(descriptor)

    def _take(self, descriptor: int) -> bool:
        """Lock ``descriptor``; False if that did not happen within ``wait``."""
        if self.wait is None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            return True
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        # Not by trying again now and then: the kernel hands the lock to those blocked on it,
        # and a writer that only looks in between would lose to the workers every time.
        waiter = _Waiter(descriptor)
        if waiter.taken(self.wait):
            return True
        # The waiter keeps the descriptor, and closes it once the lock comes: this thread's
        # next turn opens the file anew.
        self._local.descriptor = None
        with self._opened_lock:
            self._opened.discard(descriptor)
        return False

    def _descriptor(self) -> int | None:
        # One open file per thread: flock excludes another open file of the same process as
        # it excludes another process, while one file shared by threads would let them all in.
        descriptor: int | None = getattr(self._local, "descriptor", None)
        if descriptor is None:
            # A failure is not kept: a file that could not be opened once (no descriptor
            # left, the folder being restored) is tried again at the next commit.
            descriptor = self._open()
            self._local.descriptor = descriptor
        return descriptor

    def _open(self) -> int | None:
        try:
            database = os.stat(self.database)
            descriptor = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
        except OSError:
            return None
        with self._opened_lock:
            self._opened.add(descriptor)
        with contextlib.suppress(OSError):
            created = os.fstat(descriptor)
            # The database's owner, as SQLite gives its -wal and -shm files, so that a file
            # made by root (otpctl check under sudo) still opens for the service.
            if os.geteuid() == 0 and created.st_uid != database.st_uid:
                os.fchown(descriptor, database.st_uid, database.st_gid)
            # But not the database's mode: flock needs only a descriptor, even a read-only one,
            # so anyone who may open the file can take the turn and keep it, and every commit
            # waits. A file left more open by an earlier release is closed up too.
            if stat.S_IMODE(created.st_mode) != 0o600:
                os.fchmod(descriptor, 0o600)
        return descriptor


class _Waiter:
    """A blocking ``flock`` in a thread of its own, so that its caller can stop waiting.

    No lock call takes a deadline, and a signal would reach only the main thread.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._mutex = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self._error: OSError | None = None
        threading.Thread(target=self._run, name="otpradius-turn", daemon=True).start()

    def taken(self, timeout: float) -> bool:
        """True once the lock is held; False if it was not within ``timeout`` seconds, the
        descriptor then being the waiter's to close."""
        if not self._done.wait(timeout):
            with self._mutex:
                if not self._done.is_set():
                    self._abandoned = True
                    return False
        if self._error is not None:
            raise self._error
        return True

    def _run(self) -> None:
        error: OSError | None = None
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        except OSError as exc:
            error = exc
        with self._mutex:
            if self._abandoned:
                # Nobody waits for this turn any more: closing the file lets it go at once.
                os.close(self._descriptor)
                return
            self._error = error
            self._done.set()


def writers_turnstile(engine: Engine, wait: float | None = None) -> Turnstile | None:
    """The turnstile of a SQLite file database's writers; None for any other database (an
    in-memory one has a single writer; PostgreSQL locks rows, not the database)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return None
    return Turnstile(database, wait)
