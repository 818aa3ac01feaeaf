"""Seed key lifecycle: the first key, and rotation with every seed re-sealed at once.

Rotation writes the new key beside the old one (``KEY.new``), re-seals every seed under it
in one transaction, and only then moves it over the old key. A crash at any point leaves
both files, and every seed opens with one of them; the next rotation finishes the job.

Rotations, and ``--prepare``, on one host take turns on the key file's folder, from before
they read a key file to after the rename that ends a rotation; within that, a rotation takes
its keys from the files only once it holds the database's sealing lock. A second rotation
started beside the first then re-seals under a key of its own the seeds the first one left,
rather than reading a key file the first is replacing.

Before it takes that lock, a rotation seals every seed under the key it expects to write (the
prepared one, or one it makes), reading the tokens a slice at a time; in the lock it writes
those whose sealed seed is still the one it read, and seals again only the rest (a seed an
import replaced meanwhile, a token added, a key another rotation wrote first). A sealed seed
is known unchanged by its tag (``seal_tag``). On SQLite, where every login that must write
waits for the one write lock, the lock's part is a single UPDATE of the whole table that asks
a function of ours for each row's new seal; on PostgreSQL, where logins wait only for the rows
locked, the rows are locked and written a slice at a time in serial order. At a million
tokens on SQLite the logins waited 12.5 s when the seeds were sealed in the lock, 7.2 s when
the staged seals were read and written back a slice at a time, and 3.6 s now.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from otpcore.crypto import (
    KID_BYTES,
    TAG_BYTES,
    Keyring,
    SeedKey,
    fsync_dir,
    key_file_exists,
    new_key,
    pending_key_path,
    read_key,
    seal_tag,
    write_new_key,
)
from otpcore.errors import KeyFileError, KeyFileMissing, Unavailable
from otpcore.ports import Clock
from otpcore.store import Store
from otpcore.store.models import TokenRow
from otpcore.store.repo import Repo
from otpcore.store.schema import current_revision

log = logging.getLogger(__name__)
_holding = threading.local()  # the key folders this thread holds (``key_files_held``)

# Seeds locked and re-sealed at a time on PostgreSQL, all in the one transaction.
ROTATION_SLICE = 1_000
# Seeds read and sealed ahead at a time, each slice a read transaction of its own (a long one
# would keep the server's checkpoints from emptying the WAL).
STAGING_SLICE = 5_000
# PostgreSQL: run on the driver's cursor once per slice with every row's values (building
# SQLAlchemy's parameters took a third of the time the logins waited).
_RESEAL = "UPDATE tokens SET sealed_secret = %(sealed)s WHERE serial = %(key)s"
# SQLite: the table read and written by SQLite itself, asking ``_reseal_in_one_statement``'s
# function for each row's new seal.
_RESEALED = "otpradius_resealed"
_RESEAL_ALL = "UPDATE tokens SET sealed_secret = otpradius_resealed(serial, sealed_secret)"


def create_key(path: Path) -> bool:
    """Create the key file if it is missing; True if it was created."""
    if key_file_exists(path):
        read_key(path)  # refuse a malformed or too open file now rather than later
        return False
    write_new_key(path)
    return True


def sealed_seed_count(store: Store) -> int:
    """How many seeds the database holds, each sealed under some key (0 before any schema)."""
    if current_revision(store.engine) is None:
        return 0
    # The table alone, no column: a schema at an older revision is counted all the same.
    with store.reading() as repo:
        return repo.session.scalar(select(func.count()).select_from(TokenRow)) or 0


def sealing_key_ids(store: Store) -> list[str]:
    """The ids (hex) of the keys the database's seeds are sealed under, as each seed names it."""
    if current_revision(store.engine) is None:
        return []
    # A sealed seed is a version byte, then the key's id: read from the column, not opened.
    kid = func.substr(TokenRow.sealed_secret, 2, KID_BYTES)
    with store.reading() as repo:
        return sorted(bytes(value).hex() for value in repo.session.scalars(select(kid).distinct()))


def key_needed(store: Store, path: Path) -> KeyFileMissing | None:
    """The error for the key file at ``path`` not being there while the database holds seeds
    (restored without it, say): which key they are sealed under, as key backups are labelled.
    None when the database holds none: a new key will do."""
    count = sealed_seed_count(store)
    if not count:
        return None
    return KeyFileMissing(
        f"{path}: key file not found, but the database holds {count} seed(s) sealed under key "
        f"{', '.join(sealing_key_ids(store))}: restore the key file with that id (a new key "
        "would open none of them)"
    )


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: how many seeds it re-sealed, under which key."""

    count: int
    kid: bytes  # the new key's id, now the key file's
    prepared: bool  # the new key was there before (``--prepare``, or a rotation cut short)


@contextlib.contextmanager
def key_files_held(path: Path) -> Iterator[None]:
    """Hold the key file's folder against other rotations and ``--prepare`` on this host.

    Held from before a key file is read to after a rotation's rename: the database's lock ends
    with the commit, before the rename, and a rotation let in there would read the old key
    file and the pending one, which the first one is about to rename away. ``flock`` on the
    folder itself, so no lock file is left beside the key; where the folder cannot be locked
    the rotation goes on, its seeds still ordered by the database's lock. A thread that holds
    the folder already (otpctl, around the checks of its start) holds it on.
    """
    folder = os.path.realpath(path.parent)
    held: set[str] = _holding.__dict__.setdefault("folders", set())
    if folder in held:
        yield
        return
    descriptor: int | None = None
    try:
        descriptor = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another key rotation is running on this host; waiting for it to end")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    except OSError:
        pass  # a folder that cannot be opened: read_key says what is wrong with it
    except BaseException:  # Ctrl-C while waiting
        if descriptor is not None:
            os.close(descriptor)
        raise
    held.add(folder)
    try:
        yield
    finally:
        held.discard(folder)
        if descriptor is not None:
            os.close(descriptor)  # lets the lock go


def prepare_rotation(path: Path) -> tuple[Path, bool]:
    """Write the next key beside the key file, sealing nothing; its path, and whether it is new.

    On several nodes each has its own copy of the key file: the next key must reach them all
    before any seed is sealed under it, or their logins fail until it does. A node that holds
    ``KEY.new`` opens seeds sealed under it at once (see ``load_keyring``).
    """
    with key_files_held(path):  # not a pending key a rotation is renaming away
        read_key(path)  # the current key must be sound before a successor is made
        pending = pending_key_path(path)
        if key_file_exists(pending):
            read_key(pending)
            return pending, False
        write_new_key(pending, owner_of=path)
        return pending, True


def rotate_key(store: Store, path: Path, clock: Clock, actor: str = "otpctl") -> int:
    """Re-seal every seed under a new key and make it current; returns how many seeds."""
    return rotate(store, path, clock, actor).count


def rotate(store: Store, path: Path, clock: Clock, actor: str = "otpctl") -> Rotation:
    """Re-seal every seed under a new key and make it current (see ``Rotation``)."""
    with key_files_held(path):
        try:
            return _rotate(store, path, clock, actor)
        except Unavailable as exc:
            # A connection lost as the rotation committed cannot say whether it did: the
            # operator must not take the error for "nothing happened", nor restore by it.
            raise Unavailable(
                f"{exc}; the rotation may or may not have been written: run 'otpctl key rotate' "
                f"again once the database answers, which finishes it either way (keep "
                f"{pending_key_path(path).name} until then)"
            ) from None


def _rotate(store: Store, path: Path, clock: Clock, actor: str) -> Rotation:
    pending = pending_key_path(path)
    # The key it will write (or the one prepared), and every seed sealed under it ahead.
    ahead = read_key(pending) if key_file_exists(pending) else new_key()
    staged = _staged(store, read_key(path), ahead)
    with store.transaction() as repo:
        repo.lock_inventory()  # an import committing after this read would seal under `old`
        # The key files again now: a rotation that held the lock before this one has renamed
        # its key over the key file, and this one starts from that key.
        current = read_key(path)
        prepared = key_file_exists(pending)
        if prepared:
            new: SeedKey = read_key(pending)
        else:
            # Not the key file itself: without the folder's lock, the key read ahead may be
            # the pending key of a rotation that has since renamed it into place.
            fresh = ahead if ahead.key != current.key else None
            new = write_new_key(pending, owner_of=path, key=fresh)
        if new.key != ahead.key:
            staged = {}  # sealed under a key this rotation does not write
        target = Keyring(new, (current,))  # opens the seeds under either key
        if repo.session.get_bind().dialect.name == "sqlite":
            count, ahead_count = _reseal_in_one_statement(repo, staged, target)
        else:
            count, ahead_count = _reseal_in_slices(repo, staged, target)
        # The ids say which key file opens a backup from either side of this rotation.
        moved = f"from key {current.kid.hex()} to key {new.kid.hex()}"
        detail = f"{count - ahead_count} seeds re-sealed {moved}"
        if ahead_count:
            # A rotation whose commit was not seen to end (its connection lost as it
            # committed) had done the work: the event must not say these came from ``current``.
            detail += f", {ahead_count} already under key {new.kid.hex()}"
        repo.audit(clock(), actor, "key_rotate", [], "ok", detail)
    try:
        os.replace(pending, path)
    except OSError as exc:
        # Every seed opens with the pending key now, and a server reads both files: only
        # the rename is left, which a second rotation does.
        raise KeyFileError(
            f"{path}: every seed is re-sealed under {pending}, which could not replace the key "
            f"file: {exc.strerror or exc}; run 'otpctl key rotate' again to finish"
        ) from None
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        raise KeyFileError(
            f"{path}: replaced, but its folder could not be synced to disk: {exc.strerror or exc}"
        ) from None
    return Rotation(count, new.kid, prepared)


def _reseal_in_one_statement(
    repo: Repo, staged: dict[str, bytes], target: Keyring
) -> tuple[int, int]:
    """Give every row the seal staged for it if its seed is still the one staged, else seal
    its seed again, in one UPDATE of the whole table; how many rows, and how many of them
    were sealed under the new key already (SQLite)."""
    failed: list[BaseException] = []
    ahead = 0

    def resealed(serial: str, sealed: bytes) -> bytes:
        nonlocal ahead
        ahead += target.sealed_kid(sealed) == target.current.kid
        try:
            return _new_seal(staged, target, serial, sealed)
        except BaseException as exc:
            failed.append(exc)  # SQLite would say only that a function of ours failed
            raise

    connection = repo.session.connection()
    driver: Any = connection.connection.driver_connection  # the sqlite3 connection
    driver.create_function(_RESEALED, 2, resealed)
    try:
        return connection.exec_driver_sql(_RESEAL_ALL).rowcount, ahead
    except Exception:
        if failed:
            raise failed[0] from None
        raise
    finally:
        driver.create_function(_RESEALED, 2, None)


def _reseal_in_slices(repo: Repo, staged: dict[str, bytes], target: Keyring) -> tuple[int, int]:
    """Write the seal staged for every row whose seed is still the one staged, and seal the
    others again, locking the rows a slice at a time in serial order; how many rows, and how
    many of them were sealed under the new key already."""
    count = ahead = 0
    last = ""
    while True:
        # In serial order, as every other writer locks tokens (no deadlock on PostgreSQL),
        # and a slice at a time: the whole table as ORM objects held every token in memory
        # at once, and their writes, one ORM update a row, kept the logins that must write
        # waiting several times as long.
        rows = repo.session.execute(
            select(TokenRow.serial, TokenRow.sealed_secret)
            .where(TokenRow.serial > last)
            .order_by(TokenRow.serial)
            .limit(ROTATION_SLICE)
            .with_for_update()
        ).all()
        if not rows:
            return count, ahead
        ahead += sum(target.sealed_kid(sealed) == target.current.kid for _, sealed in rows)
        resealed = [
            {"key": serial, "sealed": _new_seal(staged, target, serial, sealed)}
            for serial, sealed in rows
        ]
        repo.session.connection().exec_driver_sql(_RESEAL, resealed)
        count += len(rows)
        last = rows[-1].serial


def _new_seal(staged: dict[str, bytes], target: Keyring, serial: str, sealed: bytes) -> bytes:
    """The seal staged for a row if its seed is still the one staged, else its seed sealed
    again; KeyFileError for a seed no key of ``target`` opens."""
    ready = staged.get(serial)
    if ready is not None and ready[:TAG_BYTES] == seal_tag(sealed):
        return ready[TAG_BYTES:]
    return target.seal(serial, target.unseal(serial, sealed))


def _staged(store: Store, current: SeedKey, new: SeedKey) -> dict[str, bytes]:
    """serial -> the tag of its sealed seed, then that seed sealed under ``new``, for
    every seed sealed under ``current`` or ``new``; read outside any write transaction."""
    target = Keyring(new, (current,))
    staged: dict[str, bytes] = {}
    last = ""
    while True:
        with store.reading() as repo:
            rows = repo.session.execute(
                select(TokenRow.serial, TokenRow.sealed_secret)
                .where(TokenRow.serial > last)
                .order_by(TokenRow.serial)
                .limit(STAGING_SLICE)
            ).all()
        if not rows:
            return staged
        for serial, sealed in rows:
            try:
                secret = target.unseal(serial, sealed)
            except KeyFileError:
                continue  # the locked pass tries again, and says why it cannot
            staged[serial] = seal_tag(sealed) + target.seal(serial, secret)
        last = rows[-1].serial
