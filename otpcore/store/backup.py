"""A consistent copy of an SQLite database, taken while the server runs on it.

A copy of the database file alone is not a backup: recent commits may still be only in its
write-ahead log, and a copy taken during a commit can be torn. ``VACUUM INTO`` writes one read
transaction's snapshot to a new file instead; in WAL mode a reader never waits for a writer nor
holds one up, so the server keeps answering throughout.

Every step works through one descriptor of the target's folder, checked once: a folder only
the caller (or root) can change, so nobody can swap a file in it between two steps.
"""

from __future__ import annotations

import contextlib
import errno
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

from otpcore.errors import AlreadyExists, Interrupted, InvalidInput, StorageError
from otpcore.ports import Clock
from otpcore.store.engine import driver_reason, safe_url
from otpcore.store.sessions import Store

# PostgreSQL has its own tools for this, which also cover its write-ahead log and replicas.
NOT_SQLITE = "otpctl db backup copies an SQLite database; back up PostgreSQL with pg_dump"
# How often the copy is written through to disk while it is made (see _written_behind).
WRITE_BEHIND_S = 0.01
# The hidden name a copy is made under, of a fixed length whatever the target's name.
PARTIAL_PREFIX = ".otpctl-backup-"
# The key id follows the format's version byte in every sealed seed (crypto.Keyring.seal).
_KEY_IDS = "SELECT DISTINCT lower(hex(substr(sealed_secret, 2, 8))) FROM tokens ORDER BY 1"
# What link() says on file systems without hard links (vfat, some FUSE and network mounts).
_NO_LINKS = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.EMLINK}


@dataclass(frozen=True)
class Backup:
    """A copy ``backup_database`` wrote."""

    path: Path
    size: int
    mode: int
    key_ids: list[str]  # hex ids of the keys its seeds are sealed under (none without tokens)


@dataclass
class _Progress:
    """What a stop must know wherever it lands: which file is the copy, and if all is done."""

    copy: tuple[int, int] | None = None  # device and inode of the file being written
    done: Backup | None = None  # set once the audit event is committed

    def named(self, target: Path) -> bool:
        """Whether ``target`` is the copy, link() having given it that name."""
        try:
            info = os.stat(target, follow_symlinks=False)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self.copy


def backup_database(store: Store, target: Path, clock: Clock, actor: str) -> Backup:
    """Write a checked, consistent copy of the SQLite database to the new file ``target``.

    The copy is made under a hidden name beside ``target``, mode 0600 (it holds password
    hashes and sealed seeds), synced and checked, and only then linked to ``target``, which
    is never an existing file: whatever fails before, ``target`` is absent; whatever fails
    after (the audit event, say), the error says the copy was written. A stop (the caller
    turns it into KeyboardInterrupt) is Interrupted only while no copy has that name.
    """
    if store.engine.dialect.name != "sqlite" or not store.engine.url.database:
        raise InvalidInput(NOT_SQLITE)
    text = str(target)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(f"{text!r}: a file name with control characters is refused")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes of another encoding, which Python holds as lone surrogates: the audit event
        # could not hold the name, and would fail only once the copy exists. Shown with
        # those bytes as \x83, as an import shows such a name, not as surrogates (\udc83).
        shown = os.fsencode(target).decode("utf-8", "backslashreplace")
        raise InvalidInput(f"{shown}: a file name that is not UTF-8 is refused") from None
    target = Path(os.path.abspath(target))
    live = Path(os.path.realpath(store.engine.url.database))
    progress = _Progress()
    try:
        return _backup(store, live, target, clock, actor, progress)
    except KeyboardInterrupt:
        # A stop may land between any two steps, right after link() or after the audit
        # event too: what the folder holds, not how far the code got, says if a copy exists.
        if not progress.named(target):
            raise Interrupted(f"{target}: interrupted; no copy written") from None
        if progress.done is not None:
            return progress.done  # everything was done before the stop came
        message = f"{target}: written, but not recorded in the audit: interrupted"
        raise StorageError(message) from None


def _backup(
    store: Store, live: Path, target: Path, clock: Clock, actor: str, progress: _Progress
) -> Backup:
    with _folder(target) as folder:
        _refuse_sqlite_names(live, folder, target)
        if _exists_in(folder, target.name):
            raise _exists(target)
        partial = f"{PARTIAL_PREFIX}{secrets.token_hex(8)}"
        descriptor = _create_private(folder, partial, target)
        try:
            made = os.fstat(descriptor)
            progress.copy = (made.st_dev, made.st_ino)
            key_ids = _linked(store, folder, partial, descriptor, target)
            return _published(
                store, folder, partial, descriptor, target, key_ids, clock, actor, progress
            )
        except BaseException:
            # The hidden name goes, and the copy with it unless link() gave it its own.
            _remove(folder, partial, f"{partial}-journal")
            raise
        finally:
            os.close(descriptor)


def _linked(store: Store, folder: int, partial: str, descriptor: int, target: Path) -> list[str]:
    """Write the copy under its hidden name, check it, and link it to ``target``; its key ids."""
    _check_links(folder, partial, target)
    via = f"/proc/self/fd/{folder}/{partial}"  # SQLite takes a name: this folder's
    with _written_behind(descriptor, target):
        _vacuum_into(store, via, target)
    _check_same(folder, partial, descriptor, target)
    os.fsync(descriptor)
    if os.fstat(descriptor).st_size == 0:
        raise StorageError(f"{target}: the copy came out empty; none made")
    key_ids = _checked(via, target)
    try:
        os.link(partial, target.name, src_dir_fd=folder, dst_dir_fd=folder)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    return key_ids


def _published(
    store: Store, folder: int, partial: str, descriptor: int, target: Path,
    key_ids: list[str], clock: Clock, actor: str, progress: _Progress,
) -> Backup:  # fmt: skip
    """Finish a copy already linked to ``target``: it stays, whatever happens now."""
    try:
        _remove(folder, partial)
        os.fsync(folder)
        written = os.fstat(descriptor)
        backup = Backup(target, written.st_size, stat.S_IMODE(written.st_mode), key_ids)
        keys = ", ".join(key_ids) or "none"
        with store.transaction() as repo:
            detail = f"{target} ({written.st_size} bytes, keys {keys})"
            repo.audit(clock(), actor, "db_backup", [], "ok", detail)
    except (OSError, StorageError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise StorageError(f"{target}: written, but not recorded in the audit: {reason}") from None
    progress.done = backup
    return backup


def _exists(target: Path) -> AlreadyExists:
    return AlreadyExists(f"{target}: already exists; a backup never replaces a file")


@contextmanager
def _folder(target: Path) -> Iterator[int]:
    """The target's folder, opened once and checked: nobody but the caller or root may change
    it (others may only add files where the sticky bit keeps them from touching ours)."""
    try:
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    try:
        info = os.fstat(folder)
        if info.st_uid not in (os.geteuid(), 0):
            raise InvalidInput(
                f"{target.parent}: owned by another account, which could swap the copy; "
                "keep backups in a folder of the service's account"
            )
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise InvalidInput(
                f"{target.parent}: others may write in this folder; keep backups in one only "
                "the service's account can write"
            )
        yield folder
    finally:
        os.close(folder)


def _refuse_sqlite_names(database: Path, folder: int, target: Path) -> None:
    # SQLite keeps DB-wal, DB-shm and DB-journal beside the database, and the server DB-writer
    # (the writers' turn): a copy under such a name would be taken for the live database's own
    # log, journal or lock, and block or corrupt it.
    # Compared as folders on disk, not as text: a symlink may name the same folder.
    try:
        beside = os.stat(database.parent)
    except OSError:
        return
    here = os.fstat(folder)
    same = (beside.st_dev, beside.st_ino) == (here.st_dev, here.st_ino)
    if same and target.name.startswith(f"{database.name}-"):
        raise InvalidInput(
            f"{target}: a name the database keeps beside it; give the copy another name"
        )


def _exists_in(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _create_private(folder: int, partial: str, target: Path) -> int:
    # Created here, empty and private, because SQLite would create it with the umask's mode;
    # VACUUM INTO writes into an empty file it finds.
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(partial, flags, 0o600, dir_fd=folder)
    except OSError as exc:
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None


def _check_links(folder: int, partial: str, target: Path) -> None:
    # The copy is published by link(), which never replaces a file; found out before the
    # copy, not after minutes of it, where a file system has no hard links.
    probe = f"{partial}-link"
    try:
        os.link(partial, probe, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as exc:
        if exc.errno in _NO_LINKS:
            raise StorageError(
                f"{target.parent}: this file system has no hard links, which a backup needs "
                "so that it never replaces a file; write the copy to a local disk"
            ) from None
        raise StorageError(f"{target}: cannot create: {exc.strerror}") from None
    _remove(folder, probe)


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


def _vacuum_into(store: Store, path: str, target: Path) -> None:
    try:
        fairy = store.engine.raw_connection()
    except Exception as exc:
        # The first connection is opened here: a file that is no database, or one that cannot
        # be opened (a read-only mount in WAL mode), is said as every other command says it.
        where = safe_url(store.engine.url)
        raise StorageError(
            f"{where}: cannot open the database: {driver_reason(exc)}; no copy made"
        ) from None
    try:
        connection = fairy.driver_connection
        assert connection is not None  # noqa: S101 - a fresh pool connection is open
        connection.execute("VACUUM INTO ?", (path,))
    except Exception as exc:
        raise StorageError(f"{target}: {driver_reason(exc)}") from None
    finally:
        fairy.close()


def _check_same(folder: int, partial: str, descriptor: int, target: Path) -> None:
    written = os.fstat(descriptor)
    try:
        named = os.stat(partial, dir_fd=folder, follow_symlinks=False)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (written.st_dev, written.st_ino):
        raise StorageError(f"{target}: the copy was replaced while it was written; none made")


def _checked(path: str, target: Path) -> list[str]:
    """The copy's key ids, once SQLite has found its pages and indexes sound."""
    uri = f"file:{quote(path)}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as copy:
            verdict = copy.execute("PRAGMA quick_check").fetchall()
            key_ids = [row[0] for row in copy.execute(_KEY_IDS)]
    except sqlite3.Error as exc:
        raise StorageError(f"{target}: the copy cannot be read: {driver_reason(exc)}") from None
    if verdict != [("ok",)]:
        raise StorageError(f"{target}: the copy failed SQLite's check: {verdict[0][0]}")
    return key_ids


def _remove(folder: int, *names: str) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=folder)
