"""Queries and atomic writes over one session (``Repo``); ``sessions.py`` hands out the sessions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    String,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Bundle, InstrumentedAttribute, Session

from otpcore.store.models import (
    ACTOR_MAX,
    AuditRow,
    ChallengeRow,
    TokenRow,
    UserRow,
    UtcDateTime,
)

# PostgreSQL advisory lock taken by every transaction that seals seeds (any fixed number
# the deployment uses for nothing else).
SEALING_LOCK_KEY = 0x6F7470_7365616C  # "otp" "seal"


# An import names its logins or serials in its audit event up to this many rows; a larger one
# says how many in its detail (a million names in one event would help nobody read it).
AUDIT_IMPORT_TARGETS_MAX = 100
IMPORT_SCAN_ROWS = 5000  # rows fetched at a time when an import reads the whole inventory


# What a listing of users reads of each user and its token: plain rows in two bundles (as a
# million ORM objects cost four times the reading), without the password hash a listing never
# shows or the seed.
LISTED_USER: tuple[Bundle[Any], Bundle[Any]] = (
    Bundle(
        "user",
        UserRow.login,
        UserRow.name,
        UserRow.user_class,
        UserRow.serial,
        UserRow.start_date,
        UserRow.revoked,
        UserRow.suspended,
        UserRow.password_failures,
        UserRow.activation_failures,
    ),
    Bundle(
        "token",
        TokenRow.serial,
        TokenRow.kind,
        TokenRow.algorithm,
        TokenRow.digits,
        TokenRow.period,
        TokenRow.expires,
        TokenRow.last_step,
        TokenRow.drift,
        TokenRow.last_request,
        TokenRow.fail_count,
        TokenRow.suspended,
        TokenRow.disabled,
    ),
)


class Repo:
    """Reads and atomic conditional writes within one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # Reads

    def user(self, login: str, *, lock: bool = False) -> UserRow | None:
        """The user with this login, or None; ``lock``: for update.

        A row read to be written back must be locked (see ``tokens``): on PostgreSQL another
        admin command, or a login, writing it between the read and the write would otherwise
        be overwritten, or decided on from what it no longer holds. SQLite's write lock,
        taken when the transaction begins, keeps every other writer out already.
        """
        query = select(UserRow).where(UserRow.login == login)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def token(self, serial: str, *, lock: bool = False) -> TokenRow | None:
        """The token with this serial, or None; ``lock``: for update (see ``user``)."""
        if lock:
            return self.session.get(TokenRow, serial, with_for_update=True, populate_existing=True)
        return self.session.get(TokenRow, serial)

    def users(self, logins: Sequence[str] | None = None) -> list[UserRow]:
        """Users by login (all when None), ordered by login."""
        query = select(UserRow).order_by(UserRow.login)
        if logins is not None:
            query = query.where(self._among(UserRow.login, logins))
        return list(self.session.scalars(query))

    def user_states(
        self,
        logins: Sequence[str] | None = None,
        *,
        serials: Sequence[str] | None = None,
        lock: bool = False,
    ) -> list[Any]:
        """The listed columns of users (``LISTED_USER``'s first bundle) by login: these
        logins, or every user bound to one of ``serials``; ``lock``: for update, in one
        statement and in login order.

        Plain rows, for operations over many users (an unlock of tens of thousands): ORM
        objects cost several times the reading, in a transaction every login waits behind.
        """
        query = select(LISTED_USER[0]).order_by(UserRow.login)
        if logins is not None:
            query = query.where(self._among(UserRow.login, logins))
        if serials is not None:
            query = query.where(self._among(UserRow.serial, serials))
        if lock:
            query = query.with_for_update()
        return list(self.session.scalars(query))

    def token_states(self, serials: Sequence[str], *, lock: bool = False) -> list[Any]:
        """The listed columns of these tokens (``LISTED_USER``'s second bundle), by serial;
        ``lock``: for update (see ``tokens``)."""
        query = (
            select(LISTED_USER[1])
            .where(self._among(TokenRow.serial, serials))
            .order_by(TokenRow.serial)
        )
        if lock:
            query = query.with_for_update()
        return list(self.session.scalars(query))

    def users_page(self, after: str | None, limit: int) -> list[Row[Any]]:
        """Up to ``limit`` users whose login sorts after ``after`` (from the first when None),
        by login, each with the token bound to it: the columns of ``LISTED_USER``."""
        query = (
            select(*LISTED_USER)
            .outerjoin(TokenRow, TokenRow.serial == UserRow.serial)
            .order_by(UserRow.login)
            .limit(limit)
        )
        if after is not None:
            query = query.where(UserRow.login > after)
        return list(self.session.execute(query))

    def some_token(self) -> TokenRow | None:
        """Any one token, or None when there are none."""
        return self.session.scalars(select(TokenRow).limit(1)).first()

    def tokens(self, serials: Sequence[str] | None = None, *, lock: bool = False) -> list[TokenRow]:
        """Tokens by serial (all when None), ordered by serial; ``lock``: for update.

        A row read to be written back must be locked: on PostgreSQL a failure counted by the
        authentication path between the read and the write would otherwise be lost, or kept
        half (a suspended token with a count of zero).
        """
        query = select(TokenRow).order_by(TokenRow.serial)
        if serials is not None:
            query = query.where(self._among(TokenRow.serial, serials))
        if lock:
            query = query.with_for_update()
        return list(self.session.scalars(query))

    def tokens_page(
        self,
        after: tuple[datetime | None, str] | None,
        limit: int,
        horizon: datetime | None,
        since: datetime | None = None,
    ) -> list[TokenRow]:
        """Up to ``limit`` tokens after ``after`` (their expiry and serial; from the first
        when None): by serial, or with ``horizon`` only those expiring by then (and after
        ``since`` if given), soonest first."""
        query = select(TokenRow).limit(limit)
        if horizon is None:
            query = query.order_by(TokenRow.serial)
            if after is not None:
                query = query.where(TokenRow.serial > after[1])
            return list(self.session.scalars(query))
        query = query.where(TokenRow.expires.is_not(None), TokenRow.expires <= horizon)
        if since is not None:
            query = query.where(TokenRow.expires > since)
        query = query.order_by(TokenRow.expires, TokenRow.serial)
        if after is not None:
            # As a row value: the index on the expiry (which holds the serial too) is then
            # entered where the last slice ended. Spelled out with OR, every slice scanned it
            # from its start, and a million tokens of one lot took minutes.
            query = query.where(
                tuple_(TokenRow.expires, TokenRow.serial)
                > tuple_(literal(after[0], UtcDateTime()), literal(after[1], String()))
            )
        return list(self.session.scalars(query))

    def count_expiring(self, since: datetime, horizon: datetime) -> int:
        """How many tokens expire after ``since`` and by ``horizon``."""
        window = TokenRow.expires > since, TokenRow.expires <= horizon
        return self.session.scalar(select(func.count()).select_from(TokenRow).where(*window)) or 0

    def sharers(self, serials: Sequence[str]) -> list[UserRow]:
        """Every user bound to one of these serials."""
        if not serials:
            return []
        query = select(UserRow).where(self._among(UserRow.serial, serials)).order_by(UserRow.login)
        return list(self.session.scalars(query))

    def bindings(self, serials: Sequence[str] | None = None) -> dict[str, list[str]]:
        """serial -> logins bound to it, for these serials (all when None)."""
        query = select(UserRow.serial, UserRow.login).order_by(UserRow.login)
        if serials is None:
            query = query.where(UserRow.serial.is_not(None))
        else:
            query = query.where(self._among(UserRow.serial, serials))
        result: dict[str, list[str]] = {}
        for serial, login in self.session.execute(query):
            if serial is not None:
                result.setdefault(serial, []).append(login)
        return result

    def lock_inventory(self) -> None:
        """Keep other sealing transactions (key rotation, imports) out until this one ends.

        On SQLite, taking the connection begins the transaction, and every ORM transaction
        begins IMMEDIATE: one writer at a time. PostgreSQL lets writers interleave, and a
        rotation would not see the rows of an import that commits after the rotation read
        the table; an advisory lock orders the two without blocking the authentication
        path's writes.
        """
        connection = self.session.connection()  # BEGIN now, not at the first statement
        if connection.dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALING_LOCK_KEY}
            )

    def sealed_seeds(self) -> Iterator[tuple[str, str, bytes]]:
        """Every token's serial, algorithm and sealed seed, streamed in serial order."""
        rows = select(TokenRow.serial, TokenRow.algorithm, TokenRow.sealed_secret)
        result = self.session.execute(
            rows.order_by(TokenRow.serial).execution_options(yield_per=IMPORT_SCAN_ROWS)
        )
        yield from result

    def existing_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of these serials are already in the inventory."""
        return self._existing(TokenRow.serial, serials)

    def lock_keys(self, logins: Sequence[str] = (), serials: Sequence[str] = ()) -> None:
        """Lock users and then tokens by key, each in key order, as the authentication path
        does (``HotWriter.lock``): a transaction that then writes them in another order
        (a file's) cannot deadlock with a batch of logins on PostgreSQL. SQLite's write lock
        admits one writer at a time already."""
        if self.session.get_bind().dialect.name == "sqlite":
            return
        column: InstrumentedAttribute[str]
        for column, keys in ((UserRow.login, logins), (TokenRow.serial, serials)):
            if not keys:
                continue
            # One statement, in the database's order as the batch's: chunks sorted here
            # would follow code points, which a locale's collation does not (en_US puts "a1"
            # before "Z1"), and a batch could hold a row of a later chunk while waiting for
            # one of an earlier chunk.
            query = select(column).where(self._among(column, set(keys))).order_by(column)
            self.session.execute(query.with_for_update()).all()

    def used_steps(self, serials: Sequence[str]) -> dict[str, tuple[int, int]]:
        """serial -> (period, last used step) of these tokens."""
        query = select(TokenRow.serial, TokenRow.period, TokenRow.last_step).where(
            self._among(TokenRow.serial, serials)
        )
        return {serial: (period, last) for serial, period, last in self.session.execute(query)}

    def existing_logins(self, logins: Sequence[str]) -> set[str]:
        """Which of these logins already exist."""
        return self._existing(UserRow.login, logins)

    def bound_logins(self, logins: Sequence[str]) -> dict[str, str]:
        """Which of these logins are bound to a token, and to which."""
        return self._set_values(UserRow.serial, logins)

    def confirmation_hashes(self, logins: Sequence[str]) -> dict[str, str]:
        """The stored confirmation hash of each of these logins that has one."""
        return self._set_values(UserRow.confirmation_hash, logins)

    def _set_values(
        self, column: InstrumentedAttribute[str | None], logins: Sequence[str]
    ) -> dict[str, str]:
        """login -> ``column`` for each of these logins where it is set."""
        query = select(UserRow.login, column).where(
            self._among(UserRow.login, logins), column.is_not(None)
        )
        return {login: value for login, value in self.session.execute(query) if value}

    def _existing(self, column: InstrumentedAttribute[str], values: Sequence[str]) -> set[str]:
        return set(self.session.scalars(select(column).where(self._among(column, values))))

    def last_audit_id(self, action: str) -> int:
        """The id of the latest audit event of ``action``; 0 if there is none."""
        latest = select(AuditRow.id).where(AuditRow.action == action)
        found = self.session.scalar(latest.order_by(AuditRow.id.desc()).limit(1))
        return found or 0

    def audit_events(
        self, since: datetime | None = None, after: int | None = None, limit: int | None = None
    ) -> list[AuditRow]:
        """Audit events in the order written, optionally from an instant on, after the event
        numbered ``after``, at most ``limit`` of them."""
        query = select(AuditRow).order_by(AuditRow.id).limit(limit)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        if after is not None:
            query = query.where(AuditRow.id > after)
        return list(self.session.scalars(query))

    # Writes (the authentication path's atomic statements live in ``hot_sql.py``)

    def clear_user_failures(self, logins: Sequence[str]) -> None:
        """Lift these users' own suspension and reset their password and activation counts."""
        self._set(UserRow.login, logins, suspended=False, password_failures=0,
                  activation_failures=0)  # fmt: skip

    def revoke_users(self, logins: Sequence[str]) -> None:
        """Unbind these users from their tokens (state revoked) and reset their activation
        count."""
        self._set(UserRow.login, logins, serial=None, revoked=True, activation_failures=0)

    def clear_token_failures(self, serials: Sequence[str]) -> None:
        """Lift these tokens' suspension and reset their count of wrong codes."""
        self._set(TokenRow.serial, serials, suspended=False, fail_count=0)

    def _set(self, key: InstrumentedAttribute[str], keys: Sequence[str], **values: Any) -> None:
        """Set ``values`` in one UPDATE on the rows whose ``key`` is one of ``keys``."""
        if keys:
            self._execute(
                update(key.class_)
                .where(self._among(key, keys))
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def delete_users(self, logins: Sequence[str]) -> None:
        """Delete users and the challenges pending for them."""
        self._delete(ChallengeRow.login, logins)
        self._delete(UserRow.login, logins)

    def delete_tokens(self, serials: Sequence[str]) -> None:
        """Delete tokens (bound to no user) and the activations pending on them."""
        self._delete(ChallengeRow.serial, serials)
        self._delete(TokenRow.serial, serials)

    def _delete(self, key: InstrumentedAttribute[Any], keys: Sequence[str]) -> None:
        """Delete the rows whose ``key`` is one of ``keys``, in one statement.

        Not matched against the objects the session holds: a token delete has loaded the
        tokens it deletes, and matching each of them against the list of keys took 44 s for
        70,000 tokens, in a transaction every login waits behind.
        """
        statement = delete(key.class_).where(self._among(key, keys))
        self._execute(statement.execution_options(synchronize_session=False))

    def _among(
        self, column: InstrumentedAttribute[Any], keys: Iterable[str]
    ) -> ColumnElement[bool]:
        """``column`` is one of ``keys``, bound as one value however many keys there are.

        With a parameter for each key (``IN (?, ?, …)``) a statement fails past the driver's
        limit: 65,535 parameters on PostgreSQL (an unlock of 70,000 users failed), 32,766 in
        SQLite's default build. PostgreSQL takes an array and SQLite a JSON list; both still
        look each key up through the table's index.
        """
        values = list(keys)
        if self.session.get_bind().dialect.name == "postgresql":
            return column == any_(bindparam(None, values, type_=ARRAY(String)))
        listed = func.json_each(bindparam(None, json.dumps(values))).table_valued("value")
        return column.in_(select(listed.c.value))

    def purge_challenges(self, now: datetime) -> int:
        """Delete expired challenges; returns how many."""
        return self._execute(delete(ChallengeRow).where(ChallengeRow.expires_at <= now)).rowcount

    def take_confirmation_attempt(self, login: str, limit: int) -> int | None:
        """Count one confirmation attempt before it is checked: the attempts counted with it,
        or None once ``limit`` are counted."""
        # The limit is tested in the statement that counts: runs in parallel cannot each read
        # a count below the limit and then all check their password.
        statement = (
            update(UserRow)
            .where(UserRow.login == login, UserRow.confirmation_failures < limit)
            .values(confirmation_failures=UserRow.confirmation_failures + 1)
            .returning(UserRow.confirmation_failures)
            .execution_options(synchronize_session=False)
        )
        return self._execute(statement).scalar_one_or_none()

    def clear_confirmation_attempts(self, login: str) -> None:
        """Forget the counted confirmation attempts after a right one."""
        self._execute(
            update(UserRow)
            .where(UserRow.login == login, UserRow.confirmation_failures != 0)
            .values(confirmation_failures=0)
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def import_targets(names: Sequence[str]) -> list[str]:
        """What an import's audit event names: every row's key, for an import this small."""
        return list(names) if len(names) <= AUDIT_IMPORT_TARGETS_MAX else []

    def audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        targets: Sequence[str],
        outcome: str,
        detail: str = "",
    ) -> None:
        """Append an audit event."""
        self.session.add(
            AuditRow(
                at=at,
                # The column's length: a denied unlock names the --admin given, however long,
                # and PostgreSQL would refuse the event that records the denial.
                actor=actor[:ACTOR_MAX],
                action=action,
                targets=",".join(targets),
                outcome=outcome,
                detail=detail,
            )
        )

    def _execute(self, statement: Any) -> CursorResult[Any]:
        result: CursorResult[Any] = self.session.execute(statement)  # type: ignore[assignment]
        return result
