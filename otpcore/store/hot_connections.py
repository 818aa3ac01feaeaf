"""The authentication hot path's connections: one plain DBAPI connection per thread.

Each thread runs its statements on a driver connection of its own, opened when first needed
and dropped when the database fails, by every thread at once, so a restart or a failover costs
one request rather than one per thread. The driver's errors are told apart here: a connection
found lost before anything was written on it is opened again; a lost race, a row held too
long and a database gone each become the core's own error.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from otpcore.errors import RowsHeld, Unavailable, WriteConflict
from otpcore.store.engine import driver_reason

_NAMED = re.compile(r":(\w+)")
# The page cache of a request path connection, in KiB. SQLite's default (2 MiB) does not hold
# the inner pages of the users' and tokens' B-trees at a million users, so a request read
# them again with each of its rows: 8.7 page reads a request instead of 3.7. The cache grows
# only as pages are read, so a small database never takes all of it.
HOT_CACHE_KIB = 32 * 1024
# How long a PostgreSQL statement of the hot path waits for a row lock. Another node's batch
# holds one for milliseconds; a row held longer is an import, an administrator's session left
# open, a tool of the bank's: waiting for it stopped every login of the node behind one user's.
# Longer than PostgreSQL's deadlock_timeout (1 s by default), so that a lock cycle is still
# found and its batch written again whole.
LOCK_WAIT_MS = 1500


class HotConnections:
    """One DBAPI connection per thread, the statements run on it, and its failures classified.

    ``database_path`` is the SQLite file the connections open (None for any other database),
    watched for being deleted or replaced under them.
    """

    def __init__(self, engine: Engine, database_path: str | None) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._sql: dict[str, str] = {}
        # Bumped when a connection fails: every thread then drops its own connection before
        # the next use, so a database restart costs one request rather than one per thread.
        self._generation = 0
        # The file the SQLite connections open, to notice it deleted or replaced (see
        # ``HotStore.ping``).
        self._database_path = database_path
        # How many times a thread could not open its connection, and how many of those a
        # connection opened since by ``check_connect`` has answered: the health probe keeps
        # its own open, which says nothing of whether another can be opened now.
        self.connect_failures = 0
        self.connects_checked = 0

    def _connection(self) -> Any:
        connection: Any = getattr(self._local, "connection", None)
        if connection is not None and self._local.generation != self._generation:
            self._discard()
            connection = None
        if connection is None:
            try:
                fairy = self.engine.raw_connection()
            except Exception as exc:
                self.connect_failures += 1
                raise Unavailable(f"database unavailable: {driver_reason(exc)}") from None
            connection = fairy.driver_connection
            if self.sqlite:
                # No checkpoint at commit: copying the WAL back into the database file and
                # syncing it would stall one commit by many milliseconds now and then; the
                # daemon checkpoints from its health probe instead (see ``HotStore.ping``).
                connection.execute("PRAGMA wal_autocheckpoint=0")
                connection.execute(f"PRAGMA cache_size=-{HOT_CACHE_KIB}")
            else:
                connection.autocommit = True  # reads need no transaction; writes BEGIN
                connection.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
            self._local.fairy = fairy
            self._local.connection = connection
            self._local.generation = self._generation
            self._local.file = self._file_identity()
        return connection

    def check_connect(self) -> None:
        """Open a connection beside this thread's and close it; Unavailable if none opens."""
        try:
            fairy = self.engine.raw_connection()
        except Exception as exc:
            raise Unavailable(f"database unavailable: {driver_reason(exc)}") from None
        with contextlib.suppress(Exception):  # opened is all it had to show
            fairy.invalidate()

    def _file_identity(self) -> tuple[int, int] | None:
        """The device and inode the SQLite path names now (None: no such file, or not SQLite)."""
        if self._database_path is None:
            return None
        try:
            found = os.stat(self._database_path)
        except OSError:
            return None
        return (found.st_dev, found.st_ino)

    def _file_replaced(self) -> bool:
        """True when the SQLite path no longer names the file this thread's connection opened:
        the file was deleted, or another put in its place, under the running daemon."""
        if self._database_path is None:
            return False
        # Gone is gone, even to a connection the pool kept open on the old file: it would
        # have recorded "no file" as the one it opened.
        found = self._file_identity()
        return found is None or found != getattr(self._local, "file", None)

    def _discard(self) -> None:
        fairy = getattr(self._local, "fairy", None)
        self._local.connection = None
        self._local.fairy = None
        if fairy is not None:
            with contextlib.suppress(Exception):  # it is being thrown away anyway
                fairy.invalidate()

    def _text(self, statement: str) -> str:
        sql = self._sql.get(statement)
        if sql is None:
            sql = statement if self.sqlite else _NAMED.sub(r"%(\1)s", statement)
            self._sql[statement] = sql
        return sql

    def run(self, statement: str, params: dict[str, Any]) -> Any:
        """Run one of ``hot_sql``'s statements on this thread's connection: the driver's cursor."""
        # Inside a transaction, its own connection: when another thread's connection failed
        # meanwhile, a fresh one here would run the rest outside the transaction.
        connection = getattr(self._local, "pinned", None) or self._connection()
        cursor = connection.cursor()
        cursor.execute(self._text(statement), params)
        return cursor

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except Unavailable:
            self._discard()
            raise
        except Exception as exc:
            if is_driver_error(exc) and getattr(exc, "sqlstate", None) in _CONFLICTS:
                # Rolled back, and the connection is sound: not a sign of a database gone.
                raise WriteConflict(f"write conflict: {type(exc).__name__}") from None
            if is_driver_error(exc) and getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise RowsHeld(
                    f"a row stayed locked by another transaction for over {LOCK_WAIT_MS} ms"
                ) from None
            if is_driver_error(exc):
                self._generation += 1
                self._discard()
                # The driver's reason, not only its class: "database or disk is full" and
                # "connection refused" call for different hands.
                raise Unavailable(f"database unavailable: {driver_reason(exc)}") from None
            raise

    def _read(self, statement: str, params: dict[str, Any]) -> list[Any]:
        """The rows of one of ``hot_sql``'s reads.

        Outside a transaction, a read that finds this thread's connection broken runs once
        more on a fresh connection: PostgreSQL restarted, failed over to a standby, or a
        proxy dropped the connection while it was idle, and the first request after that
        must not fail for a connection that was dead before it began. Nothing was written on
        it, so nothing can be applied twice. Inside a transaction nothing is tried again
        (see ``_may_retry``).
        """
        try:
            return list(self.run(statement, params).fetchall())
        except Exception as exc:
            if not self._may_retry(exc):
                raise
        self._reconnect()
        return list(self.run(statement, params).fetchall())

    def _may_retry(self, exc: Exception) -> bool:
        """True when ``exc`` is this thread's connection found broken outside a transaction:
        the one failure a statement may be run again for, once, on a fresh connection.

        Never inside a transaction: what it wrote went with the connection, and running the
        rest on another would apply it half (or, tried whole, twice for a commit that was in
        fact done). A SQLite connection is a file, not a link that breaks.
        """
        if self.sqlite or getattr(self._local, "pinned", None) is not None:
            return False
        return connection_lost(exc, getattr(self._local, "connection", None))

    def _reconnect(self) -> None:
        """Drop this thread's connection, and have every other thread drop its own before its
        next use: a restart or a failover broke them all."""
        self._generation += 1
        self._discard()


# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race and
# was rolled back whole.
_CONFLICTS = frozenset({"40P01", "40001"})
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout passed


def connection_lost(exc: Exception, connection: Any) -> bool:
    """True when ``exc`` is the driver's word that ``connection`` is gone: psycopg's
    OperationalError or InterfaceError (a terminated backend, a server that closed the link,
    a connection closed already), with the connection closed since. An error a statement
    caused leaves its connection open."""
    if not is_driver_error(exc):
        return False
    kinds = {kind.__name__ for kind in type(exc).__mro__}
    if not kinds & {"OperationalError", "InterfaceError"}:
        return False
    return connection is not None and bool(getattr(connection, "closed", False))


def is_driver_error(exc: Exception) -> bool:
    """True for the DBAPI's own errors (sqlite3.Error, psycopg.Error): the database failed."""
    module = type(exc).__module__.split(".")[0]
    return module in {"sqlite3", "psycopg", "psycopg2"} or type(exc).__name__ in {
        "OperationalError",
        "InterfaceError",
        "DatabaseError",
    }
