"""Bulk onboarding of users (``otpctl user import``, SPEC §7): one transaction, bulk writes.

Plain passwords are hashed first, on every core (argon2-cffi releases the GIL), and outside
any transaction, so hashing a large file never holds the database's write lock; a cheap
read-only pass before it refuses a file with a present login or an unknown serial without
making the operator wait for the hashing. The transaction then checks again — what it sees is
what counts — and writes with one executemany per chunk.

On ``update`` a present login gets the row's name and password (hash); its class, start date
and serial change only where the row gives them. Giving a serial binds the user at once
(state active), as when migrating bindings from another system; the binding is recorded as it
is, whatever the token's state (an expired token makes the user expired). Counters and
suspensions are left alone, except on a token that a row's new serial leaves without users:
it is released as a revoke releases it (no unlock could reach it any more). A row may not give
a master or admin user a login password equal to their confirmation password, as ``otpctl user
passwd`` may not. One audit event records the import; it names every row's login for a small
file and, however large the file, every login it makes master or admin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from otpcore.approvals import PRIVILEGED, release_unused
from otpcore.errors import ImportRefused
from otpcore.model import UserClass
from otpcore.passwords import PasswordHashing
from otpcore.ports import Clock
from otpcore.progress import Progress, Ticker
from otpcore.store import Repo, Store
from otpcore.store.models import UserRow
from otpcore.user_csv import UserSpec
from otpcore.views import Imported

CHUNK = 5000  # rows per executemany, and per progress report while writing


def import_users(
    store: Store,
    hashing: PasswordHashing,
    clock: Clock,
    rows: Sequence[UserSpec],
    *,
    update: bool = False,
    actor: str = "otpctl",
    progress: Progress | None = None,
    source: str = "-",
) -> Imported:
    """Create (or with ``update`` also change) the users of ``rows`` in one transaction.

    ``progress(done, total)`` counts one unit per password to hash and one per row written.
    Returns how many were added and updated. Raises ImportRefused naming ``source`` and the row's
    line; nothing is written then.
    """
    _check_unique(rows, source)
    plain = [row for row in rows if row.password is not None]
    ticker = Ticker(progress, len(plain) + len(rows))
    confirmations: dict[str, str] = {}
    if plain:
        with store.transaction() as repo:
            _check_against(repo, rows, update, source)
            confirmations = _refuse_same_passwords(repo, hashing, plain, {}, source)
    hashes = _hash_passwords(hashing, plain, ticker)
    now = clock()
    try:
        with store.transaction() as repo:
            present = _check_against(repo, rows, update, source)
            repo.lock_keys(sorted(present))
            # Checked again only where a confirmation password was set meanwhile.
            _refuse_same_passwords(repo, hashing, plain, confirmations, source)
            # Read with the users locked, so that no revoke or activation moves them meanwhile;
            # the tokens they leave are locked with the ones rows bind, in one statement.
            left = _tokens_left(repo, [row for row in rows if row.login in present])
            repo.lock_keys(serials=sorted({*(row.serial for row in rows if row.serial), *left}))
            added = [row for row in rows if row.login not in present]
            changed = [row for row in rows if row.login in present]
            for start in range(0, len(added), CHUNK):
                chunk = added[start : start + CHUNK]
                repo.session.execute(
                    insert(UserRow), [_new_values(row, hashes, now) for row in chunk]
                )
                ticker.advance(len(chunk))
            for start in range(0, len(changed), CHUNK):
                chunk = changed[start : start + CHUNK]
                repo.session.execute(
                    sql_update(UserRow),
                    [_changed_values(row, hashes) for row in chunk],
                )
                ticker.advance(len(chunk))
            released = release_unused(repo, left)
            # Who gains approval rights is named however large the file: a promotion must
            # not hide among ten thousand customers.
            privileged = [row.login for row in rows if row.user_class in PRIVILEGED]
            unconfirmed = [
                user.login for user in repo.users(privileged) if user.confirmation_hash is None
            ]
            repo.audit(
                now,
                actor,
                "user_import",
                Repo.import_targets([row.login for row in rows]) or privileged,
                "ok",
                _detail(source, added, changed, released, len(privileged)),
            )
    except IntegrityError:
        raise ImportRefused(
            source, None, "a login or token changed while importing; nothing was imported"
        ) from None
    return Imported(len(rows) - len(present), len(present), tuple(unconfirmed))


def _check_unique(rows: Sequence[UserSpec], source: str) -> None:
    seen: dict[str, int | None] = {}
    for row in rows:
        if row.login in seen:
            raise ImportRefused(
                source, row.line, f"login {row.login} repeats line {seen[row.login]}"
            )
        seen[row.login] = row.line


def _check_against(repo: Repo, rows: Sequence[UserSpec], update: bool, source: str) -> set[str]:
    """The rows' logins already present; refuses them without ``update``, and refuses a
    serial that is not in the inventory."""
    present = repo.existing_logins([row.login for row in rows])
    if present and not update:
        first = next(row for row in rows if row.login in present)
        raise ImportRefused(
            source, first.line, f"login {first.login} already exists (use --update to change it)"
        )
    issued = [row for row in rows if row.login in present and row.start and row.serial is None]
    bound = repo.bound_logins([row.login for row in issued])
    if bound:
        # As ``otpctl user issue``: a start date is for a user who is to activate a token.
        first = next(row for row in issued if row.login in bound)
        raise ImportRefused(
            source,
            first.line,
            f"user {first.login} already has token {bound[first.login]}; revoke it first",
        )
    serials = sorted({row.serial for row in rows if row.serial is not None})
    known = repo.existing_serials(serials)
    if len(known) != len(serials):
        first = next(row for row in rows if row.serial is not None and row.serial not in known)
        # The line, not the value: it may be the end of a password split at a comma.
        raise ImportRefused(source, first.line, "serial is not in the inventory")
    return present


def _refuse_same_passwords(
    repo: Repo,
    hashing: PasswordHashing,
    plain: Sequence[UserSpec],
    checked: dict[str, str],
    source: str,
) -> dict[str, str]:
    """Refuse a row whose plain password is its user's stored confirmation password.

    Whoever sees the login password typed at a portal would otherwise approve unlocks and
    revokes as that administrator. Hashes already in ``checked`` unchanged are not verified
    again; returns the hashes found.
    """
    kept = [row for row in plain if row.user_class is not UserClass.GENERAL]
    found = repo.confirmation_hashes([row.login for row in kept])
    for row in kept:
        stored = found.get(row.login)
        if stored is None or checked.get(row.login) == stored:
            continue
        if hashing.verify(stored, row.password or ""):
            raise ImportRefused(
                source,
                row.line,
                f"user {row.login}: the login password must differ from the confirmation password",
            )
    return found


def _tokens_left(repo: Repo, changed: Sequence[UserSpec]) -> list[str]:
    """The tokens that present users leave for the serial their rows give, in key order."""
    moving = [row for row in changed if row.serial is not None]
    bound = repo.bound_logins([row.login for row in moving])
    left = {
        bound[row.login] for row in moving if row.login in bound and bound[row.login] != row.serial
    }
    return sorted(left)


def _hash_passwords(
    hashing: PasswordHashing, rows: Sequence[UserSpec], ticker: Ticker
) -> dict[str, str]:
    """login -> argon2id hash of each row's plain password, hashed on every core."""
    if not rows:
        return {}
    hashes: dict[str, str] = {}
    workers = min(len(rows), len(os.sched_getaffinity(0)) or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passwords = (row.password or "" for row in rows)
        for row, digest in zip(rows, pool.map(hashing.hash, passwords), strict=True):
            hashes[row.login] = digest
            ticker.advance()
    return hashes


def _password_hash(row: UserSpec, hashes: dict[str, str]) -> str:
    if row.password_hash is not None:
        return row.password_hash
    return hashes[row.login]


def _new_values(row: UserSpec, hashes: dict[str, str], now: datetime) -> dict[str, object]:
    return {
        "login": row.login,
        "name": row.name,
        "user_class": (row.user_class or UserClass.GENERAL).value,
        "password_hash": _password_hash(row, hashes),
        "confirmation_hash": None,
        "serial": row.serial,
        "start_date": row.start,
        "revoked": False,
        "suspended": False,
        "password_failures": 0,
        "activation_failures": 0,
        "confirmation_failures": 0,
        "created_at": now,
    }


def _changed_values(row: UserSpec, hashes: dict[str, str]) -> dict[str, object]:
    values: dict[str, object] = {
        "login": row.login,
        "name": row.name,
        "password_hash": _password_hash(row, hashes),
    }
    if row.user_class is not None:
        values["user_class"] = row.user_class.value
        if row.user_class is UserClass.GENERAL:
            values["confirmation_hash"] = None
            values["confirmation_failures"] = 0
    if row.start is not None:
        values["start_date"] = row.start
        if row.serial is None:
            # Issued, as ``otpctl user issue`` does: a revoked user waits for the new date.
            values["revoked"] = False
            values["activation_failures"] = 0
    if row.serial is not None:
        values["serial"] = row.serial
        values["revoked"] = False
        values["activation_failures"] = 0
    return values


def _detail(
    source: str,
    added: Iterable[UserSpec],
    changed: Sequence[UserSpec],
    released: Sequence[str],
    privileged: int,
) -> str:
    new = list(added)
    bound = sum(1 for row in (*new, *changed) if row.serial is not None)
    issued = sum(1 for row in (*new, *changed) if row.start is not None and row.serial is None)
    detail = (
        f"{source}: {len(new)} added, {len(changed)} updated, "
        f"{bound} bound to a token, {issued} issued"
    )
    if privileged:
        detail += f", {privileged} of class master or admin"
    if released:
        # As a revoke's event says it; a migration may leave thousands: then only how many.
        named = Repo.import_targets(released)
        detail += "; suspension lifted, no users left: " + (
            ", ".join(named) if named else f"{len(released)} tokens"
        )
    return detail
