"""Transactions over the database (``Store``), and what the driver's errors mean.

Each transaction hands out a ``Repo``. A driver error that ends one becomes the storage
error it means (``Busy``, ``Unavailable``, ``StorageError``); ``key_taken`` recognises a
unique violation.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

import otpcore.store.engine as setup
from otpcore.errors import Busy, StorageError, Unavailable
from otpcore.store.engine import READ_ONLY
from otpcore.store.repo import Repo
from otpcore.store.turnstile import Turnstile, writers_turnstile

# SQLite's primary result codes for a database file that cannot take or hold the write: a
# full disk, a read-only file or mount, an I/O error. Not a database away for a while.
_SQLITE_STORAGE_FAILURES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR}
)
# A row whose key another transaction has (or has just) written: SQLite's extended result codes
# and PostgreSQL's unique_violation.
_SQLITE_KEY_TAKEN = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)
_PG_UNIQUE_VIOLATION = "23505"
# PostgreSQL's read_only_sql_transaction: a write on a standby or a read-only session.
_PG_READ_ONLY = "25006"
_PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout passed


def key_taken(exc: IntegrityError) -> bool:
    """Whether an insert failed because a row with the same key or unique value is present:
    on PostgreSQL, one another transaction committed after this one looked for it."""
    cause = exc.orig
    return (
        getattr(cause, "sqlstate", None) == _PG_UNIQUE_VIOLATION
        or getattr(cause, "sqlite_errorcode", None) in _SQLITE_KEY_TAKEN
    )


class Store:
    """The database: hands out one transaction at a time as a ``Repo``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._turnstile = self._writers_turnstile()

    def _writers_turnstile(self) -> Turnstile | None:
        # Read when made, not when imported: a test shortens the timeout.
        return writers_turnstile(self.engine, wait=setup.BUSY_TIMEOUT_S)

    @contextmanager
    def transaction(self) -> Iterator[Repo]:
        """One transaction: committed when the block ends, rolled back if it raises.

        On SQLite it waits for the writers' turn first, as the daemon's commits do, for at
        most the busy timeout (then Busy): otherwise it would meet a login storm in SQLite's
        busy handler, whose sleeps lose to the workers' turns handed on at once.
        """
        turn = self._turnstile.turn() if self._turnstile is not None else contextlib.nullcontext()
        with turn, self._session(self.engine) as repo:
            yield repo

    @contextmanager
    def reading(self) -> Iterator[Repo]:
        """A transaction that only reads: one consistent view and, on SQLite, no write lock,
        so it never holds up a commit of the daemon however long it reads."""
        with self._session(self.engine.execution_options(**{READ_ONLY: True})) as repo:
            yield repo

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Repo]:
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield Repo(session)
        except (OperationalError, PoolTimeout) as exc:
            cause = getattr(exc, "orig", None) or exc
            if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                # SQLite's busy timeout ran out: another writer kept its lock all that time.
                raise Busy(setup.BUSY_TIMEOUT_S) from None
            if getattr(cause, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
                held = "another transaction held a row it writes"
                raise Busy(setup.BUSY_TIMEOUT_S, held) from None
            if (getattr(cause, "sqlite_errorcode", None) or 0) & 0xFF in _SQLITE_STORAGE_FAILURES:
                # The file, not a server: no wait makes a full disk or a read-only file take
                # the write, and "unavailable" sent the operator looking for one.
                where = setup.safe_url(self.engine.url)
                raise StorageError(f"{where}: {setup.driver_reason(cause)}") from None
            raise Unavailable(f"database unavailable: {setup.driver_reason(cause)}") from None
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _PG_READ_ONLY:
                raise
            # A standby that the address leads to during a failover, or a database set
            # read-only: like a server away, it takes no write now, and the command may be
            # run again once the primary is back (not a bug of otpctl's).
            raise Unavailable(f"database read-only: {setup.driver_reason(exc)}") from None

    def dispose(self) -> None:
        """Close every pooled connection, and the lock files of the writers' turn."""
        self.engine.dispose()
        if self._turnstile is not None:
            self._turnstile.close()
            self._turnstile = self._writers_turnstile()  # should the store be used again
