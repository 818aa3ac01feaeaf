"""A consistent copy of an SQLite database, taken while the server runs on it.

A copy of the database file alone is not a backup: recent commits may still be only in its
write-ahead log, and a copy taken during a commit can be torn. ``VACUUM INTO`` writes one read
transaction's snapshot to a new file instead; in WAL mode a reader never waits for a writer nor
holds one up, so the server keeps answering throughout.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from otpcore.errors import AlreadyExists, InvalidInput, StorageError
from otpcore.ports import Clock
from otpcore.store.engine import driver_reason
from otpcore.store.repo import Store

# PostgreSQL has its own tools for this, which also cover its write-ahead log and replicas.
NOT_SQLITE = "otpctl db backup copies an SQLite database; back up PostgreSQL with pg_dump"
# How often the copy is written through to disk while it is made (see _written_behind).
WRITE_BEHIND_S = 0.01


def backup_database(store: Store, target: Path, clock: Clock, actor: str) -> int:
    """Write a consistent copy of the SQLite database to the new file ``target``; its size.

    The file is created mode 0600 (it holds password hashes and sealed seeds) and is never
    an existing one; if the copy fails, nothing is left behind. An audit event records it.
    """
    if store.engine.dialect.name != "sqlite":
        raise InvalidInput(NOT_SQLITE)
    _create_private(target)
    try:
        with _written_behind(target):
            _vacuum_into(store, target)
        _fsync(target, os.O_RDONLY)
        _fsync(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    size = target.stat().st_size
    with store.transaction() as repo:
        repo.audit(clock(), actor, "db_backup", [], "ok", f"{target.absolute()} ({size} bytes)")
    return size


def _create_private(target: Path) -> None:
    # Created here, empty and private, because SQLite would create it with the umask's mode;
    # VACUUM INTO writes into an empty file it finds. O_EXCL: a backup never replaces a file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        descriptor = os.open(target, flags, 0o600)
    except FileExistsError:
        raise AlreadyExists(f"{target}: already exists; a backup never replaces a file") from None
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    os.close(descriptor)


@contextmanager
def _written_behind(target: Path) -> Iterator[None]:
    # On ext4 (ordered data) the daemon's next commit syncs the journal, and with it every
    # block allocated meanwhile: left to one sync at the end, the copy of a million users
    # (400 MB) held commits, and logins with them, for up to 320 ms. Synced every 10 ms while
    # it is written, no reply took over 11 ms at 1,000 logins/s (python -m bench.backup).
    done = threading.Event()
    descriptor = os.open(target, os.O_RDONLY)

    def write_through() -> None:
        while not done.wait(WRITE_BEHIND_S):
            os.fdatasync(descriptor)

    helper = threading.Thread(target=write_through, name="backup-sync", daemon=True)
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()
        os.close(descriptor)


def _vacuum_into(store: Store, target: Path) -> None:
    fairy = store.engine.raw_connection()
    try:
        connection = fairy.driver_connection
        assert connection is not None  # noqa: S101 - a fresh pool connection is open
        connection.execute("VACUUM INTO ?", (str(target),))
    except Exception as exc:
        raise StorageError(f"{target}: {driver_reason(exc)}") from None
    finally:
        fairy.close()


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
