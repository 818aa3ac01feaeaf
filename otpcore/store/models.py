"""The tables, as SQLAlchemy 2.0 typed declarative models."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class TokenRow(Base):
    """A token of the inventory; the secret is sealed (see ``otpcore.crypto``)."""

    __tablename__ = "tokens"
    # Clustered on the serial (SQLite): the hot path's read and its conditional write find
    # the row in one B-tree instead of the serial index and then the table, which is one
    # cold page less per request once the tokens no longer fit in memory. The expiry is
    # indexed with the serial, the order expiry listings are read in a slice at a time.
    __table_args__ = (
        Index("ix_tokens_expires_serial", "expires", "serial"),
        {"sqlite_with_rowid": False},
    )

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(8))
    digits: Mapped[int] = mapped_column(Integer)
    period: Mapped[int] = mapped_column(Integer)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    expires: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_step: Mapped[int] = mapped_column(BigInteger, default=-1)
    drift: Mapped[int] = mapped_column(Integer, default=0)
    last_request: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    fail_count: Mapped[int] = mapped_column(Integer, default=0)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UserRow(Base):
    """A login, its class, password hashes, binding and counters."""

    __tablename__ = "users"
    # Keyed and clustered on the login (SQLite), which is how every request finds a user: one
    # B-tree instead of a login index and then the table, one cold page less per request
    # once the users no longer fit in memory.
    __table_args__ = ({"sqlite_with_rowid": False},)

    login: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    user_class: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    confirmation_hash: Mapped[str | None] = mapped_column(String(256))
    serial: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("tokens.serial", ondelete="RESTRICT"), index=True
    )
    start_date: Mapped[date | None] = mapped_column(Date)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    password_failures: Mapped[int] = mapped_column(Integer, default=0)
    activation_failures: Mapped[int] = mapped_column(Integer, default=0)
    confirmation_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChallengeRow(Base):
    """A pending Access-Challenge: single-use, shared by every node through the database."""

    __tablename__ = "challenges"

    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    login: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # The Request Authenticator of the answer that consumed it: that same answer, resent to
    # another node, is decided again instead of refused as a used State.
    used_by: Mapped[bytes | None] = mapped_column(LargeBinary(16))


ACTOR_MAX = 128  # AuditRow.actor's length


class AuditRow(Base):
    """An admin operation or state change."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    action: Mapped[str] = mapped_column(String(32))
    targets: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
