"""Write transactions on one SQLite file taken in turn, each writer woken the moment it may go.

SQLite lets one writer in at a time. A writer that finds the lock taken retries from SQLite's
busy handler, which sleeps 1, 2, 5, 10 ms and longer between tries and is never woken early.
Two workers committing batches of well under a millisecond each then wait for each other in
sleeps ten times as long: at 1,000 logins/s on the default two workers, half the commits
slept and the p99 went from about 10 ms to about 100 ms. The workers' write transactions
queue on a lock of a file beside the database instead; the kernel hands it on at once.

The lock only orders the server's own writers. Correctness never rests on it: SQLite's lock
still keeps every writer apart, including ``otpctl``, which does not take the turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SUFFIX = "-writer"


class Turnstile:
    """An exclusive lock on ``<database>-writer``, one open file per thread."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = database + SUFFIX
        self._local = threading.local()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the writers' turn for the block; without a usable lock file, go at once."""
        descriptor = self._descriptor()
        if descriptor is None:
            yield
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            yield  # SQLite's own lock still keeps the writers apart
            return
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

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
