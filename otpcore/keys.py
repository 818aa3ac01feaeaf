"""Seed key lifecycle: the first key, and rotation with every seed re-sealed at once.

Rotation writes the new key beside the old one (``KEY.new``), re-seals every seed under it
in one transaction, and only then moves it over the old key. A crash at any point leaves
both files, and every seed opens with one of them; the next rotation finishes the job.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import bindparam, func, select, update

from otpcore.crypto import (
    Keyring,
    SeedKey,
    fsync_dir,
    key_file_exists,
    pending_key_path,
    read_key,
    write_new_key,
)
from otpcore.errors import KeyFileError
from otpcore.ports import Clock
from otpcore.store import Store
from otpcore.store.models import TokenRow
from otpcore.store.schema import current_revision

# Seeds read and re-sealed at a time, all in the one transaction.
ROTATION_SLICE = 1_000
# Run on the connection once per slice with every row's values: the ORM's bulk update spent
# more on its own bookkeeping than on the seeds.
_RESEAL = (
    update(TokenRow)
    .where(TokenRow.serial == bindparam("key"))
    .values(sealed_secret=bindparam("sealed"))
)


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


def prepare_rotation(path: Path) -> tuple[Path, bool]:
    """Write the next key beside the key file, sealing nothing; its path, and whether it is new.

    On several nodes each has its own copy of the key file: the next key must reach them all
    before any seed is sealed under it, or their logins fail until it does. A node that holds
    ``KEY.new`` opens seeds sealed under it at once (see ``load_keyring``).
    """
    read_key(path)  # the current key must be sound before a successor is made
    pending = pending_key_path(path)
    if key_file_exists(pending):
        read_key(pending)
        return pending, False
    write_new_key(pending, owner_of=path)
    return pending, True


def rotate_key(store: Store, path: Path, clock: Clock, actor: str = "otpctl") -> int:
    """Re-seal every seed under a new key and make it current; returns how many seeds."""
    current = read_key(path)
    pending = pending_key_path(path)
    new: SeedKey = (
        read_key(pending) if key_file_exists(pending) else write_new_key(pending, owner_of=path)
    )
    old = Keyring(current)
    target = Keyring(new, (current,))
    count = 0
    with store.transaction() as repo:
        repo.lock_inventory()  # an import committing after this read would seal under `old`
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
                break
            resealed = []
            for serial, sealed in rows:
                opener = target if target.sealed_kid(sealed) == new.kid else old
                secret = opener.unseal(serial, sealed)
                resealed.append({"key": serial, "sealed": target.seal(serial, secret)})
            repo.session.connection().execute(_RESEAL, resealed)
            count += len(rows)
            last = rows[-1].serial
        # The ids say which key file opens a backup from either side of this rotation.
        moved = f"from key {current.kid.hex()} to key {new.kid.hex()}"
        repo.audit(clock(), actor, "key_rotate", [], "ok", f"{count} seeds re-sealed {moved}")
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
    return count
