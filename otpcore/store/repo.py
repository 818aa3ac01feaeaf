"""Queries and atomic writes over one session; the only place SQL is written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Engine, case, delete, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from otpcore.errors import Unavailable
from otpcore.store.models import AuditRow, ChallengeRow, TokenRow, UserRow


class Repo:
    """Reads and atomic conditional writes within one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # Reads

    def user(self, login: str) -> UserRow | None:
        """The user with this login, or None."""
        return self.session.scalars(select(UserRow).where(UserRow.login == login)).first()

    def token(self, serial: str) -> TokenRow | None:
        """The token with this serial, or None."""
        return self.session.get(TokenRow, serial)

    def users(self, logins: Sequence[str] | None = None) -> list[UserRow]:
        """Users by login (all when None), ordered by login."""
        query = select(UserRow).order_by(UserRow.login)
        if logins is not None:
            query = query.where(UserRow.login.in_(list(logins)))
        return list(self.session.scalars(query))

    def tokens(self, serials: Sequence[str] | None = None) -> list[TokenRow]:
        """Tokens by serial (all when None), ordered by serial."""
        query = select(TokenRow).order_by(TokenRow.serial)
        if serials is not None:
            query = query.where(TokenRow.serial.in_(list(serials)))
        return list(self.session.scalars(query))

    def sharers(self, serials: Sequence[str]) -> list[UserRow]:
        """Every user bound to one of these serials."""
        if not serials:
            return []
        query = select(UserRow).where(UserRow.serial.in_(list(serials))).order_by(UserRow.login)
        return list(self.session.scalars(query))

    def bindings(self) -> dict[str, list[str]]:
        """serial -> logins bound to it."""
        rows = self.session.execute(
            select(UserRow.serial, UserRow.login)
            .where(UserRow.serial.is_not(None))
            .order_by(UserRow.login)
        )
        result: dict[str, list[str]] = {}
        for serial, login in rows:
            if serial is not None:
                result.setdefault(serial, []).append(login)
        return result

    def existing_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of these serials are already in the inventory."""
        found: set[str] = set()
        chunk = 500
        for i in range(0, len(serials), chunk):
            part = list(serials[i : i + chunk])
            found.update(
                self.session.scalars(select(TokenRow.serial).where(TokenRow.serial.in_(part)))
            )
        return found

    def existing_logins(self, logins: Sequence[str]) -> set[str]:
        """Which of these logins already exist."""
        found: set[str] = set()
        chunk = 500
        for i in range(0, len(logins), chunk):
            part = list(logins[i : i + chunk])
            found.update(self.session.scalars(select(UserRow.login).where(UserRow.login.in_(part))))
        return found

    def audit_events(self, since: datetime | None = None) -> list[AuditRow]:
        """Audit events in time order, optionally from an instant on."""
        query = select(AuditRow).order_by(AuditRow.id)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        return list(self.session.scalars(query))

    # Atomic conditional writes: each is one statement, so it stays right with several
    # processes and nodes on one database; a rowcount of 0 means somebody else won.

    def consume_step(self, serial: str, step: int, drift: int, request_id: bytes | None) -> bool:
        """Record ``step`` as used if it is later than the stored one; resets the fail count."""
        result = self._execute(
            update(TokenRow)
            .where(
                TokenRow.serial == serial,
                TokenRow.last_step < step,
                TokenRow.suspended.is_(False),
                TokenRow.disabled.is_(False),
            )
            .values(last_step=step, drift=drift, fail_count=0, last_request=request_id)
        )
        return result.rowcount == 1

    def count_token_failure(self, serial: str, threshold: int) -> bool:
        """Add one failure to a token that is not suspended; True if that suspended it."""
        row = self.session.execute(
            update(TokenRow)
            .where(TokenRow.serial == serial, TokenRow.suspended.is_(False))
            .values(
                fail_count=TokenRow.fail_count + 1,
                suspended=case((TokenRow.fail_count + 1 >= threshold, True), else_=False),
            )
            .returning(TokenRow.suspended)
        ).first()
        return bool(row is not None and row[0])

    def count_password_failure(self, user_id: int, threshold: int) -> bool:
        """Add one password failure to a user who is not suspended; True if that suspended it."""
        row = self.session.execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.suspended.is_(False))
            .values(
                password_failures=UserRow.password_failures + 1,
                suspended=case((UserRow.password_failures + 1 >= threshold, True), else_=False),
            )
            .returning(UserRow.suspended)
        ).first()
        return bool(row is not None and row[0])

    def count_activation_failure(self, user_id: int, threshold: int) -> bool:
        """Add one activation failure to a user who is not suspended; True if that suspended it."""
        row = self.session.execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.suspended.is_(False))
            .values(
                activation_failures=UserRow.activation_failures + 1,
                suspended=case((UserRow.activation_failures + 1 >= threshold, True), else_=False),
            )
            .returning(UserRow.suspended)
        ).first()
        return bool(row is not None and row[0])

    def reset_password_failures(self, user_id: int) -> None:
        """Restart the user's consecutive password failures from zero."""
        self._execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.password_failures != 0)
            .values(password_failures=0)
        )

    def bind(self, user_id: int, serial: str) -> bool:
        """Bind an unbound user to a token; True if it was unbound."""
        result = self._execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.serial.is_(None))
            .values(serial=serial, revoked=False, activation_failures=0)
        )
        return result.rowcount == 1

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Store a new login password hash."""
        self._execute(
            update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash)
        )

    def add_challenge(
        self, challenge_id: bytes, login: str, stage: str, serial: str | None, expires: datetime
    ) -> None:
        """Store a pending challenge."""
        self.session.execute(
            insert(ChallengeRow).values(
                id=challenge_id, login=login, stage=stage, serial=serial, expires_at=expires
            )
        )

    def take_challenge(self, challenge_id: bytes, now: datetime) -> ChallengeRow | None:
        """Consume a challenge atomically; None if unknown, already used or expired."""
        row = self.session.execute(
            delete(ChallengeRow)
            .where(ChallengeRow.id == challenge_id)
            .returning(
                ChallengeRow.login, ChallengeRow.stage, ChallengeRow.serial, ChallengeRow.expires_at
            )
        ).first()
        if row is None or row.expires_at <= now:
            return None
        return ChallengeRow(
            id=challenge_id,
            login=row.login,
            stage=row.stage,
            serial=row.serial,
            expires_at=row.expires_at,
        )

    def purge_challenges(self, now: datetime) -> int:
        """Delete expired challenges; returns how many."""
        return self._execute(delete(ChallengeRow).where(ChallengeRow.expires_at <= now)).rowcount

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
                actor=actor,
                action=action,
                targets=",".join(targets),
                outcome=outcome,
                detail=detail,
            )
        )

    def _execute(self, statement: Any) -> CursorResult[Any]:
        result: CursorResult[Any] = self.session.execute(statement)  # type: ignore[assignment]
        return result


class Store:
    """The database: hands out one transaction at a time as a ``Repo``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[Repo]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield Repo(session)
        except (OperationalError, PoolTimeout) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise Unavailable(f"database unavailable: {type(cause).__name__}") from None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
