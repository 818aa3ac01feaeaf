"""The authentication hot path's SQL, on plain DBAPI connections.

Building an ORM or Core statement costs several hundred microseconds a request; these few
fixed statements run straight on the driver instead, with one connection per thread. The
tables are the same as in ``models.py`` (Alembic owns them); the statements are the same
single conditional writes as in ``repo.py``, so several processes and nodes stay correct.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine

from otpcore.errors import Unavailable, WriteConflict
from otpcore.model import Algorithm, TokenKind, User, UserClass
from otpcore.store.engine import SQLITE_BUSY_TIMEOUT_S
from otpcore.store.turnstile import writers_turnstile

_USER = """SELECT login, name, user_class, password_hash, serial, start_date, revoked,
    suspended, password_failures, activation_failures FROM users WHERE login = :login"""
_TOKEN = """SELECT serial, kind, algorithm, digits, period, sealed_secret, expires, last_step,
    drift, last_request, fail_count, suspended, disabled FROM tokens WHERE serial = :serial"""
_CHALLENGE = "SELECT login, stage, serial, expires_at, used_by FROM challenges WHERE id = :id"
_TAKE_CHALLENGE = "UPDATE challenges SET used_by = :request WHERE id = :id AND used_by IS NULL"
# Kept until they expire, used or not: a used one still answers its resent answer (SPEC §4).
_PURGE_CHALLENGES = """DELETE FROM challenges WHERE id IN
    (SELECT id FROM challenges WHERE expires_at <= :now LIMIT :limit)"""
# On PostgreSQL workers and nodes purge at once: each takes rows nobody else has locked, so
# two purges never wait for each other in opposite orders (a deadlock).
_PURGE_CHALLENGES_PG = """DELETE FROM challenges WHERE id IN
    (SELECT id FROM challenges WHERE expires_at <= :now LIMIT :limit FOR UPDATE SKIP LOCKED)"""
_ADD_CHALLENGE = """INSERT INTO challenges (id, login, stage, serial, expires_at)
    VALUES (:id, :login, :stage, :serial, :expires)"""
# The user is read again here, as the request was decided without a lock: a login must not
# pass after parallel wrong guesses suspended the user, nor after the user was revoked from
# the token (a lost token); an activation only while the user is still unbound. The period
# too: an import that changed it restated last_step in the new period's steps, and a step
# counted in the old ones would land far from now (every right code a replay, or used ones
# good again).
_CONSUME = """UPDATE tokens SET last_step = :step, fail_count = 0,
    last_request = :request WHERE serial = :serial AND last_step < :step
    AND period = :period AND NOT suspended AND NOT disabled
    AND EXISTS (SELECT 1 FROM users AS u WHERE u.login = :login AND NOT u.suspended
        AND (u.serial = :serial OR (u.serial IS NULL AND :binding)))"""
_STANDING = """SELECT u.suspended, u.serial, t.suspended, t.disabled, t.serial IS NOT NULL,
    t.last_step, t.last_request, t.period
    FROM users AS u LEFT JOIN tokens AS t ON t.serial = :serial WHERE u.login = :login"""
_CHALLENGE_USED_BY = "SELECT used_by FROM challenges WHERE id = :id"
_USER_SUSPENDED = "SELECT suspended FROM users WHERE login = :login"
# Only from one of the token's users (SPEC §2): a wrong code decided as the user was revoked
# from the token, or deleted, must not count against the users who still hold it; nor on a
# token disabled meanwhile, where nothing is checked or counted (SPEC §3).
_TOKEN_FAILURE = """UPDATE tokens SET fail_count = fail_count + 1,
    suspended = (fail_count + 1 >= :threshold) WHERE serial = :serial AND NOT suspended
    AND NOT disabled
    AND EXISTS (SELECT 1 FROM users AS u WHERE u.login = :login AND u.serial = :serial)
    RETURNING suspended"""
_PASSWORD_FAILURE = """UPDATE users SET password_failures = password_failures + 1,
    suspended = (password_failures + 1 >= :threshold) WHERE login = :login AND NOT suspended
    RETURNING suspended"""
_ACTIVATION_FAILURE = """UPDATE users SET activation_failures = activation_failures + 1,
    suspended = (activation_failures + 1 >= :threshold) WHERE login = :login
    AND NOT suspended
    RETURNING suspended"""
_RESET_PASSWORD_FAILURES = """UPDATE users SET password_failures = 0
    WHERE login = :login AND password_failures <> 0"""
_BIND = """UPDATE users SET serial = :serial, revoked = :false, activation_failures = 0
    WHERE login = :login AND serial IS NULL"""
# Only over the hash the login verified: a password set meanwhile (otpctl user passwd, an
# import) must not be replaced by the rehash of the one it replaced.
_SET_HASH = """UPDATE users SET password_hash = :hash WHERE login = :login
    AND password_hash = :verified"""
# PostgreSQL locks rows as the sorted rows come out: every batch takes them in one order.
_LOCK_USERS_PG = """SELECT login FROM users WHERE login = ANY(:logins) ORDER BY login
    FOR UPDATE"""
_LOCK_TOKENS_PG = """SELECT serial FROM tokens WHERE serial = ANY(:serials) ORDER BY serial
    FOR UPDATE"""
_LOCK_CHALLENGES_PG = """SELECT id FROM challenges WHERE id = ANY(:ids) ORDER BY id
    FOR UPDATE"""
_SHARERS = "SELECT login FROM users WHERE serial = :serial ORDER BY login"
_AUDIT = """INSERT INTO audit_events (at, actor, action, targets, outcome, detail)
    VALUES (:at, :actor, :action, :targets, :outcome, :detail)"""
# A server that answers but refuses every write serves no login: a standby the address led to
# after a failover, or a database set read-only. The health probe must not call it reachable.
_WRITABLE_PG = """SELECT NOT pg_is_in_recovery()
    AND current_setting('transaction_read_only') = 'off'"""
_NAMED = re.compile(r":(\w+)")
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


@dataclass(frozen=True, slots=True)
class Standing:
    """What decides whether a user may still use a token's step."""

    user_suspended: bool
    bound_to: str | None
    token_suspended: bool
    token_disabled: bool
    token_exists: bool = True  # False: deleted from the inventory meanwhile
    last_step: int | None = None  # the token's last used step, and the request that used it
    last_request: bytes | None = field(default=None, repr=False)
    period: int | None = None  # the unit of last_step; None when the token is gone


class HotStore:
    """Reads and atomic writes of the authentication path, one DBAPI connection per thread.

    ``turn_wait`` bounds the wait for the writers' turn on SQLite (then Busy): ``otpctl
    check`` must not hang behind a writer that never lets go. The daemon's workers wait as
    long as it takes; the health watch reports a batch stalled that long.
    """

    def __init__(self, engine: Engine, turn_wait: float | None = None) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._sql: dict[str, str] = {}
        # Bumped when a connection fails: every thread then drops its own connection before
        # the next use, so a database restart costs one request rather than one per thread.
        self._generation = 0
        self.wal_restart_pages = WAL_RESTART_PAGES
        self._wal_pages = 0  # as the last checkpoint found it
        self._turnstile = writers_turnstile(engine, turn_wait)
        # The file the SQLite connections open, to notice it deleted or replaced (see ping).
        self._database_path = self._turnstile.database if self._turnstile is not None else None

    # Connections

    def _connection(self) -> Any:
        connection: Any = getattr(self._local, "connection", None)
        if connection is not None and self._local.generation != self._generation:
            self._discard()
            connection = None
        if connection is None:
            try:
                fairy = self.engine.raw_connection()
            except Exception:
                raise Unavailable("database unavailable") from None
            connection = fairy.driver_connection
            if self.sqlite:
                # No checkpoint at commit: copying the WAL back into the database file and
                # syncing it would stall one commit by many milliseconds now and then; the
                # daemon checkpoints from its health probe instead (see ``ping``).
                connection.execute("PRAGMA wal_autocheckpoint=0")
            else:
                connection.autocommit = True  # reads need no transaction; writes BEGIN
            self._local.fairy = fairy
            self._local.connection = connection
            self._local.generation = self._generation
            self._local.file = self._file_identity()
        return connection

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
        opened = getattr(self._local, "file", None)
        return self._database_path is not None and self._file_identity() != opened

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

    def _run(self, statement: str, params: dict[str, Any]) -> Any:
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
            if _is_driver_error(exc) and getattr(exc, "sqlstate", None) in _CONFLICTS:
                # Rolled back, and the connection is sound: not a sign of a database gone.
                raise WriteConflict(f"write conflict: {type(exc).__name__}") from None
            if _is_driver_error(exc):
                self._generation += 1
                self._discard()
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from None
            raise

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
        the database file.

        The checkpoint is PASSIVE: it never waits for, nor blocks, a reader or a writer.
        """
        try:
            with self._guard():
                if not self.sqlite:
                    return bool(self._run(_WRITABLE_PG, {}).fetchall()[0][0])
                # One row: busy flag, pages in the WAL, pages copied into the database.
                rows = self._run("PRAGMA wal_checkpoint(PASSIVE)", {}).fetchall()
                if self._file_replaced():
                    # Connections keep the file they opened: deleted, it takes logins that
                    # no one will see again; replaced (a restore), it hides every change made
                    # in the new one. Every thread opens the path again before its next use.
                    self._generation += 1
                    raise Unavailable("database file deleted or replaced")
                self._wal_pages = max(0, int(rows[0][1])) if rows else 0
        except Exception:
            return False
        return True

    def challenge(self, challenge_id: bytes) -> ChallengeRecord | None:
        """A pending challenge, read but not consumed."""
        with self._guard():
            rows = self._run(_CHALLENGE, {"id": challenge_id}).fetchall()
        if not rows:
            return None
        login, stage, serial, expires_at, used_by = rows[0]
        used = bytes(used_by) if used_by is not None else None
        return ChallengeRecord(login, stage, serial, self._instant(expires_at), used)

    def user(self, login: str) -> User | None:
        """A user, or None."""
        if not _storable(login):
            return None
        with self._guard():
            rows = self._run(_USER, {"login": login}).fetchall()
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
        if not _storable(serial):
            return None
        with self._guard():
            return self._token(serial)

    def _token(self, serial: str) -> TokenRecord | None:
        rows = self._run(_TOKEN, {"serial": serial}).fetchall()
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

    def _stored_instant(self, value: datetime) -> Any:
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
            connection = self._connection()
            if self.sqlite and self._wal_pages > self.wal_restart_pages:
                self._restart_wal(connection)
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
            self._local.pinned = connection
            try:
                yield HotWriter(self)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                self._local.pinned = None
            cursor.execute("COMMIT")

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
            if not _is_driver_error(exc):
                raise
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")


class HotWriter:
    """The atomic statements, inside a ``HotStore.transaction``."""

    def __init__(self, store: HotStore) -> None:
        self._store = store

    def lock(
        self, logins: Sequence[str], serials: Sequence[str], challenges: Sequence[bytes] = ()
    ) -> None:
        """Lock the users', the tokens' and then the challenges' rows a batch is about to
        write, each by key.

        A batch writes its requests' rows in the order the requests came; another node's
        batch may write the same rows in another order, and on PostgreSQL the two would
        wait for each other until the deadlock detector failed one whole batch. Taken here
        first, in one order everywhere (as ``otpctl unlock`` and ``user delete`` do), no cycle
        can form. The challenges count too: anyone with one password can collect States and
        send their answers to two nodes in opposite orders. SQLite needs nothing: its write
        lock already admits one transaction at a time.
        """
        if self._store.sqlite:
            return
        if logins:
            self._store._run(_LOCK_USERS_PG, {"logins": sorted(set(logins))}).fetchall()
        if serials:
            self._store._run(_LOCK_TOKENS_PG, {"serials": sorted(set(serials))}).fetchall()
        if challenges:
            self._store._run(_LOCK_CHALLENGES_PG, {"ids": sorted(set(challenges))}).fetchall()

    def take_challenge(self, challenge_id: bytes, request: bytes) -> bool:
        """Consume a challenge for the answer ``request``; False if another answer already did."""
        params = {"id": challenge_id, "request": request}
        return int(self._store._run(_TAKE_CHALLENGE, params).rowcount) == 1

    def purge_challenges(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` challenges expired at ``now``; returns how many."""
        params = {"now": self._store._stored_instant(now), "limit": limit}
        statement = _PURGE_CHALLENGES if self._store.sqlite else _PURGE_CHALLENGES_PG
        return int(self._store._run(statement, params).rowcount)

    def add_challenge(
        self, challenge_id: bytes, login: str, stage: str, serial: str | None, expires: datetime
    ) -> None:
        """Store a pending challenge."""
        self._store._run(
            _ADD_CHALLENGE,
            {
                "id": challenge_id,
                "login": login,
                "stage": stage,
                "serial": serial,
                "expires": self._store._stored_instant(expires),
            },
        )

    def consume_step(
        self,
        login: str,
        serial: str,
        step: int,
        period: int,
        request: bytes | None,
        *,
        binding: bool = False,
    ) -> bool:
        """Record a used step later than the stored one, for a user still entitled to it.

        ``step`` is counted in ``period`` seconds, which must still be the token's. The user
        must not be suspended and must be bound to the token, or unbound when ``binding`` (an
        activation). False if any of that changed, or somebody else won the step;
        ``standing`` tells which.
        """
        params = {
            "login": login,
            "serial": serial,
            "step": step,
            "period": period,
            "request": request,
            "binding": binding,
        }
        return int(self._store._run(_CONSUME, params).rowcount) == 1

    def standing(self, login: str, serial: str) -> Standing | None:
        """The user's and the token's state as a refused ``consume_step`` found them; None if
        the user is gone."""
        params = {"login": login, "serial": serial}
        rows = self._store._run(_STANDING, params).fetchall()
        if not rows:
            return None
        suspended, bound_to, token_suspended, disabled, exists, last_step, last, period = rows[0]
        return Standing(
            bool(suspended),
            bound_to,
            bool(token_suspended),
            bool(disabled),
            bool(exists),
            last_step,
            bytes(last) if last is not None else None,
            period,
        )

    def challenge_used_by(self, challenge_id: bytes) -> bytes | None:
        """The answer that consumed a challenge, or None (not consumed, or gone)."""
        rows = self._store._run(_CHALLENGE_USED_BY, {"id": challenge_id}).fetchall()
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def user_suspended(self, login: str) -> bool | None:
        """True if the user is suspended now; None if the user is gone (deleted)."""
        rows = self._store._run(_USER_SUSPENDED, {"login": login}).fetchall()
        return bool(rows[0][0]) if rows else None

    def count_token_failure(self, login: str, serial: str, threshold: int) -> bool | None:
        """One more failure on a token that is not suspended, by one of its users; True if
        that suspended it.

        None when nothing was counted: the token was suspended or disabled already, or
        ``login`` is no longer bound to it (revoked, deleted).
        """
        params = {"login": login, "serial": serial, "threshold": threshold}
        rows = self._store._run(_TOKEN_FAILURE, params).fetchall()
        return bool(rows[0][0]) if rows else None

    def count_password_failure(self, login: str, threshold: int) -> bool:
        """One more password failure; True if that suspended the user."""
        params = {"login": login, "threshold": threshold}
        return _returned_true(self._store._run(_PASSWORD_FAILURE, params))

    def count_activation_failure(self, login: str, threshold: int) -> bool:
        """One more activation failure; True if that suspended the user."""
        params = {"login": login, "threshold": threshold}
        return _returned_true(self._store._run(_ACTIVATION_FAILURE, params))

    def reset_password_failures(self, login: str) -> None:
        """The password was right: consecutive failures restart from zero."""
        self._store._run(_RESET_PASSWORD_FAILURES, {"login": login})

    def bind(self, login: str, serial: str) -> bool:
        """Bind an unbound user to a token; False if the user was bound meanwhile."""
        params = {"login": login, "serial": serial, "false": False}
        return int(self._store._run(_BIND, params).rowcount) == 1

    def set_password_hash(self, login: str, password_hash: str, verified: str) -> None:
        """Store a rehashed login password, unless the hash ``verified`` was replaced meanwhile."""
        params = {"login": login, "hash": password_hash, "verified": verified}
        self._store._run(_SET_HASH, params)

    def sharers(self, serial: str) -> list[str]:
        """Logins bound to a token."""
        return [row[0] for row in self._store._run(_SHARERS, {"serial": serial}).fetchall()]

    def audit(
        self, at: datetime, actor: str, action: str, targets: Sequence[str], outcome: str,
        detail: str,
    ) -> None:  # fmt: skip
        """Append an audit event."""
        self._store._run(
            _AUDIT,
            {
                "at": self._store._stored_instant(at),
                "actor": actor,
                "action": action,
                "targets": ",".join(targets),
                "outcome": outcome,
                "detail": detail,
            },
        )


def _storable(key: str) -> bool:
    """False for a login or serial no row can hold: one with a NUL, which PostgreSQL refuses
    in text with an error that would pass for the database being down (and logins and
    serials are printable anyway). Such a key is simply not found."""
    return "\x00" not in key


def _returned_true(cursor: Any) -> bool:
    # fetchall, not fetchone: SQLite cannot commit while a RETURNING statement is unfinished.
    rows = cursor.fetchall()
    return bool(rows and rows[0][0])


# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race and
# was rolled back whole.
_CONFLICTS = frozenset({"40P01", "40001"})


def _is_driver_error(exc: Exception) -> bool:
    """True for the DBAPI's own errors (sqlite3.Error, psycopg.Error): the database failed."""
    module = type(exc).__module__.split(".")[0]
    return module in {"sqlite3", "psycopg", "psycopg2"} or type(exc).__name__ in {
        "OperationalError",
        "InterfaceError",
        "DatabaseError",
    }
