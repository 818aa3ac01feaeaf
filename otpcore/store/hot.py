"""The authentication hot path's reads, health probe and write transactions, on plain DBAPI
connections.

Building an ORM or Core statement costs several hundred microseconds a request; these few
fixed statements run straight on the driver instead, with one connection per thread (see
``hot_connections.py``). The tables are the same as in ``models.py`` (Alembic owns them); the
statements are the same single conditional writes as in ``repo.py``, so several processes and
nodes stay correct. On SQLite the WAL is checkpointed here too, from the health probe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine

from otpcore.errors import Unavailable
from otpcore.model import Algorithm, TokenKind, User, UserClass
from otpcore.store import hot_sql as sql
from otpcore.store.engine import BUSY_TIMEOUT_S
from otpcore.store.hot_connections import HotConnections, is_driver_error
from otpcore.store.hot_writer import HotWriter
from otpcore.store.turnstile import writers_turnstile

# A WAL past this many pages (64 MiB of 4 KiB pages) is restarted by the next commit.
WAL_RESTART_PAGES = 16_384
# How long that restart may wait for readers before it gives up until the next probe.
WAL_RESTART_WAIT_MS = 100


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token row as the hot path reads it (the secret still sealed)."""

    serial: str
    kind: TokenKind
    algorithm: Algorithm
    digits: int
    period: int
    sealed_secret: bytes = field(repr=False)
    expires: datetime | None
    last_step: int
    drift: int
    last_request: bytes | None = field(repr=False)
    fail_count: int
    suspended: bool
    disabled: bool


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """A pending challenge as read (not yet consumed)."""

    login: str
    stage: str
    serial: str | None
    expires_at: datetime
    used_by: bytes | None = field(default=None, repr=False)  # the answer that consumed it


class HotStore(HotConnections):
    """Reads and atomic writes of the authentication path, one DBAPI connection per thread.

    ``turn_wait`` bounds the wait for the writers' turn on SQLite (then Busy): ``otpctl
    check`` must not hang behind a writer that never lets go. The daemon's workers wait as
    long as it takes; the health watch reports a batch stalled that long.
    """

    def __init__(self, engine: Engine, turn_wait: float | None = None) -> None:
        turnstile = writers_turnstile(engine, turn_wait)
        super().__init__(engine, turnstile.database if turnstile is not None else None)
        self.wal_restart_pages = WAL_RESTART_PAGES
        self._wal_pages = 0  # as the last checkpoint found it
        self._turnstile = turnstile
        # Why the last health probe failed, for the log: the driver's first line, never a value.
        self.failure = ""

    # Reads (never under the write lock)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """On SQLite, this thread's reads inside the block share one read transaction.

        Each read on its own is a transaction of its own, and SQLite takes and drops its file
        locks for every one: about five ``fcntl`` calls a request on the otp path. A batch's
        reads see one snapshot; the writes that follow are conditional all the same.
        """
        connection = None
        if self.sqlite:
            try:
                with self._guard():
                    connection = self._connection()
                    connection.execute("BEGIN")
            except Unavailable:
                connection = None  # each read then fails on its own, as without the block
        try:
            yield
        finally:
            # Not on a connection a failed read replaced meanwhile: it began nothing.
            if connection is not None and self._local.connection is connection:
                try:
                    connection.execute("COMMIT")
                except Exception:
                    # Still in the transaction, it would refuse the batch's BEGIN IMMEDIATE.
                    self._discard()

    def ping(self) -> bool:
        """True when the database answers and takes writes; on SQLite also moves the WAL into
        the database file. When False, ``failure`` says why (a PostgreSQL that answers but is
        read-only names that).

        The checkpoint is PASSIVE: it never waits for, nor blocks, a reader or a writer.
        """
        failures = self.connect_failures
        try:
            with self._guard():
                if self.sqlite:
                    self._checkpoint()
                else:
                    self._check_writable()
            if failures != self.connects_checked and not self.sqlite:
                # A login's thread could not connect (PostgreSQL out of connection slots, say)
                # while this probe's connection still answered: Status-Server went on being
                # answered, and the log said unreachable and reachable again, while every
                # login was dropped. Reachable again only once a new connection opens.
                self.check_connect()
                self.connects_checked = failures
        except Exception as exc:
            self.failure = str(exc) if isinstance(exc, Unavailable) else type(exc).__name__
            return False
        self.failure = ""
        return True

    def _check_writable(self) -> None:
        """Raise Unavailable, saying why, when this PostgreSQL server takes no writes."""
        rows = self._read(sql.READ_ONLY_PG, {})
        in_recovery, read_only = rows[0] if rows else (False, "off")
        refused = ""
        if in_recovery:
            refused = "the server is a standby in recovery"
        elif str(read_only) != "off":
            refused = "transaction_read_only is on"
        if refused:
            # Every accepting decision would fail to commit: not reachable, and said why.
            # Every thread's connection ends before its next use, as when a connection fails:
            # one opened again may reach the server that takes writes (the new primary that
            # the address leads to once a failover is done).
            self._generation += 1
            raise Unavailable(f"database read-only: {refused}")

    def _checkpoint(self) -> None:
        # One row: busy flag, pages in the WAL, pages copied into the database.
        rows = self.run("PRAGMA wal_checkpoint(PASSIVE)", {}).fetchall()
        if self._file_replaced():
            # Connections keep the file they opened: deleted, it takes logins that no one
            # will see again; replaced (a restore), it hides every change made in the new
            # one. Every thread opens the path again before its next use.
            self._generation += 1
            raise Unavailable("database file deleted or replaced")
        self._wal_pages = max(0, int(rows[0][1])) if rows else 0

    def challenge(self, challenge_id: bytes) -> ChallengeRecord | None:
        """A pending challenge, read but not consumed."""
        with self._guard():
            rows = self._read(sql.CHALLENGE, {"id": challenge_id})
        if not rows:
            return None
        login, stage, serial, expires_at, used_by = rows[0]
        used = bytes(used_by) if used_by is not None else None
        return ChallengeRecord(login, stage, serial, self._instant(expires_at), used)

    def user(self, login: str) -> User | None:
        """A user, or None."""
        if not sql.storable(login):
            return None
        with self._guard():
            rows = self._read(sql.USER, {"login": login})
        if not rows:
            return None
        row = rows[0]
        return User(
            login=row[0],
            name=row[1],
            user_class=UserClass(row[2]),
            password_hash=row[3],
            serial=row[4],
            start_date=self._date(row[5]),
            revoked=bool(row[6]),
            suspended=bool(row[7]),
            password_failures=row[8],
            activation_failures=row[9],
        )

    def token(self, serial: str) -> TokenRecord | None:
        """A token row, its secret still sealed, or None."""
        if not sql.storable(serial):
            return None
        with self._guard():
            return self._token(serial)

    def some_seed(self) -> tuple[str, bytes] | None:
        """Any one token's serial and sealed seed, or None when there are no tokens."""
        with self._guard():
            rows = self._read(sql.SOME_SEED, {})
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    def _token(self, serial: str) -> TokenRecord | None:
        rows = self._read(sql.TOKEN, {"serial": serial})
        if not rows:
            return None
        row = rows[0]
        return TokenRecord(
            serial=row[0],
            kind=TokenKind(row[1]),
            algorithm=Algorithm(row[2]),
            digits=row[3],
            period=row[4],
            sealed_secret=bytes(row[5]),
            expires=self._instant(row[6]) if row[6] is not None else None,
            last_step=row[7],
            drift=row[8],
            last_request=bytes(row[9]) if row[9] is not None else None,
            fail_count=row[10],
            suspended=bool(row[11]),
            disabled=bool(row[12]),
        )

    def _instant(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def _date(self, value: Any) -> date | None:
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(str(value))

    def stored_instant(self, value: datetime) -> Any:
        """An instant in the form this database stores it."""
        # SQLAlchemy keeps SQLite instants as naive UTC text; store the same form here.
        if self.sqlite:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    # Writes: one transaction, many requests (group commit)

    @contextmanager
    def transaction(self) -> Iterator[HotWriter]:
        """One write transaction; committed when the block ends, rolled back if it raises."""
        turn = self._turnstile.turn() if self._turnstile is not None else contextlib.nullcontext()
        with turn, self._guard():
            connection = self._begin()
            cursor = connection.cursor()
            self._local.pinned = connection
            try:
                yield HotWriter(self)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                self._local.pinned = None
            cursor.execute("COMMIT")

    def _begin(self) -> Any:
        """This thread's connection, a write transaction begun on it.

        A BEGIN that finds the connection broken (see ``_read``) is sent once more on a fresh
        connection: nothing was written on the dead one.
        """
        connection = self._connection()
        if self.sqlite and self._wal_pages > self.wal_restart_pages:
            self._restart_wal(connection)
        try:
            connection.cursor().execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
        except Exception as exc:
            if not self._may_retry(exc):
                raise
            self._reconnect()
            connection = self._connection()
            connection.cursor().execute("BEGIN")
        return connection

    def _restart_wal(self, connection: Any) -> None:
        # SQLite starts the WAL over only when a commit finds it wholly copied back; a writer
        # that never pauses (a login storm) keeps a PASSIVE checkpoint one batch behind, and
        # the file would grow for as long as the storm lasts. RESTART copies the rest and
        # makes the next commit write from the start of the file again. It waits for readers
        # briefly at most: if one is still busy, the next probe finds the WAL large again.
        self._wal_pages = 0
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={WAL_RESTART_WAIT_MS}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except Exception as exc:
            # Housekeeping must not fail the batch that follows; the probe tries again.
            if not is_driver_error(exc):
                raise
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
