"""A consistent copy of an SQLite database, taken while the server runs on it.

A copy of the database file alone is not a backup: recent commits may still be only in its
write-ahead log, and a copy taken during a commit can be torn. ``VACUUM INTO`` writes one read
transaction's snapshot to a new file instead; in WAL mode a reader never waits for a writer nor
holds one up, so the server keeps answering throughout.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from otpcore.errors import AlreadyExists, InvalidInput, StorageError
from otpcore.ports import Clock
from otpcore.store.engine import driver_reason
from otpcore.store.repo import Store

# PostgreSQL has its own tools for this, which also cover its write-ahead log and replicas.
NOT_SQLITE = "otpctl db backup copies an SQLite database; back up PostgreSQL with pg_dump"
# How often the copy is written through to disk while it is made (see _written_behind).
WRITE_BEHIND_S = 0.01
# The key id follows the format's version byte in every sealed seed (crypto.Keyring.seal).
_KEY_IDS = "SELECT DISTINCT lower(hex(substr(sealed_secret, 2, 8))) FROM tokens ORDER BY 1"


@dataclass(frozen=True)
class Backup:
    """A copy ``backup_database`` wrote."""

    path: Path
    size: int
    key_ids: list[str]  # hex ids of the keys its seeds are sealed under (none without tokens)


def backup_database(store: Store, target: Path, clock: Clock, actor: str) -> Backup:
    """Write a checked, consistent copy of the SQLite database to the new file ``target``.

    The copy is made under a hidden name beside ``target``, mode 0600 (it holds password
    hashes and sealed seeds), synced and checked, and only then linked to ``target``, which
    is never an existing file: whatever fails, ``target`` is either the whole copy or absent.
    An audit event records it, with the key ids the copy needs.
    """
    if store.engine.dialect.name != "sqlite" or not store.engine.url.database:
        raise InvalidInput(NOT_SQLITE)
    # Absolute: SQLite would read a name like "file:x.db" as a URI and write somewhere else.
    target = Path(os.path.abspath(target))
    _refuse_sqlite_names(Path(os.path.abspath(store.engine.url.database)), target)
    if os.path.lexists(target):
        raise _exists(target)
    _refuse_open_folder(target)
    partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    descriptor = _create_private(partial, target)
    try:
        with _written_behind(descriptor, target):
            _vacuum_into(store, partial, target)
        _check_unreplaced(descriptor, partial, target)
        os.fsync(descriptor)
        key_ids = _checked(partial, target)
        try:
            os.link(partial, target)  # fails if target appeared meanwhile: never replaced
        except FileExistsError:
            raise _exists(target) from None
        except OSError as exc:
            raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    except BaseException:
        _remove(partial, Path(f"{partial}-journal"))
        raise
    finally:
        os.close(descriptor)
    _remove(partial)
    _fsync_folder(target.parent)
    size = target.stat().st_size
    keys = ", ".join(key_ids) or "none"
    try:
        with store.transaction() as repo:
            detail = f"{target} ({size} bytes, keys {keys})"
            repo.audit(clock(), actor, "db_backup", [], "ok", detail)
    except StorageError as exc:
        # The copy is whole and stays: say so, rather than let it pass for a failed one.
        raise StorageError(f"{target}: written, but not recorded in the audit: {exc}") from None
    return Backup(target, size, key_ids)


def _exists(target: Path) -> AlreadyExists:
    return AlreadyExists(f"{target}: already exists; a backup never replaces a file")


def _refuse_sqlite_names(database: Path, target: Path) -> None:
    # SQLite keeps DB-wal, DB-shm and DB-journal beside the database: a copy under such a name
    # would be taken for the live database's own log or journal, and block or corrupt it.
    if target.parent == database.parent and target.name.startswith(f"{database.name}-"):
        raise InvalidInput(
            f"{target}: a name SQLite uses beside the database; give the copy another name"
        )


def _refuse_open_folder(target: Path) -> None:
    # Where others may write, one could rename a file of ours away and put their own in its
    # place between two steps; the sticky bit (as on /tmp) stops that.
    try:
        mode = target.parent.stat().st_mode
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise InvalidInput(
            f"{target.parent}: others may write in this folder; keep backups in one only "
            "the service's account can write"
        )


def _create_private(path: Path, target: Path) -> int:
    # Created here, empty and private, because SQLite would create it with the umask's mode;
    # VACUUM INTO writes into an empty file it finds. The descriptor stays open so that the
    # file written is known to be this one.
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None


@contextmanager
def _written_behind(descriptor: int, target: Path) -> Iterator[None]:
    # On ext4 (ordered data) the daemon's next commit syncs the journal, and with it every
    # block allocated meanwhile: left to one sync at the end, the copy of a million users
    # (400 MB) held commits, and logins with them, for up to 320 ms. Synced every 10 ms while
    # it is written, no reply took over 11 ms at 1,000 logins/s (python -m bench.backup).
    done = threading.Event()
    failures: list[OSError] = []

    def write_through() -> None:
        try:
            while not done.wait(WRITE_BEHIND_S):
                os.fdatasync(descriptor)
        except OSError as exc:
            failures.append(exc)

    helper = threading.Thread(target=write_through, name="backup-sync", daemon=True)
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()
    if failures:
        raise StorageError(f"{target}: cannot write the copy: {failures[0].strerror}")


def _vacuum_into(store: Store, partial: Path, target: Path) -> None:
    fairy = store.engine.raw_connection()
    try:
        connection = fairy.driver_connection
        assert connection is not None  # noqa: S101 - a fresh pool connection is open
        connection.execute("VACUUM INTO ?", (str(partial),))
    except Exception as exc:
        raise StorageError(f"{target}: {driver_reason(exc)}") from None
    finally:
        fairy.close()


def _check_unreplaced(descriptor: int, partial: Path, target: Path) -> None:
    written = os.fstat(descriptor)
    try:
        named = os.stat(partial, follow_symlinks=False)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (written.st_dev, written.st_ino):
        raise StorageError(f"{target}: the copy was replaced while it was written; none made")


def _checked(partial: Path, target: Path) -> list[str]:
    """The copy's key ids, once SQLite has found its pages and indexes sound."""
    uri = f"file:{quote(str(partial))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as copy:
            verdict = copy.execute("PRAGMA quick_check").fetchall()
            key_ids = [row[0] for row in copy.execute(_KEY_IDS)]
    except sqlite3.Error as exc:
        raise StorageError(f"{target}: the copy cannot be read: {driver_reason(exc)}") from None
    if verdict != [("ok",)]:
        raise StorageError(f"{target}: the copy failed SQLite's check: {verdict[0][0]}")
    return key_ids


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
