"""What listings show: users, tokens and audit events as plain values (SPEC §5 JSON keys)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from otpcore.convert import to_user, token_view
from otpcore.model import OtpState, Token, User, UserClass, shows_suspended, user_state
from otpcore.store.models import AuditRow, TokenRow, UserRow


@dataclass(frozen=True, slots=True)
class Imported:
    """What one import wrote: rows new to the database, and present ones it updated."""

    added: int
    updated: int
    # Master and admin users of a user import who have no confirmation password yet: they
    # cannot approve an unlock or revoke until one is set.
    unconfirmed: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Every row the import wrote."""
        return self.added + self.updated


@dataclass(frozen=True, slots=True)
class UserView:
    """A row of ``user list``: the columns of the manual's screens."""

    login: str
    name: str
    user_class: UserClass
    serial: str | None
    state: OtpState
    suspended: bool
    token_expires: datetime | None
    start_date: date | None = None
    token_disabled: bool = False  # the bound token is out of use: every login is refused

    def as_json(self) -> dict[str, Any]:
        """The SPEC §5 JSON object."""
        return {
            "login": self.login,
            "name": self.name,
            "class": self.user_class.value,
            "serial": self.serial,
            "state": self.state.value,
            "suspended": self.suspended,
            "token_expires": _iso(self.token_expires),
        }


@dataclass(frozen=True, slots=True)
class TokenListing:
    """A row of ``token list``."""

    serial: str
    kind: str
    algorithm: str
    digits: int
    period: int
    expires: datetime | None
    users: tuple[str, ...]
    suspended: bool
    disabled: bool
    fail_count: int

    def as_json(self) -> dict[str, Any]:
        """The SPEC §5 JSON object."""
        return {
            "serial": self.serial,
            "kind": self.kind,
            "algorithm": self.algorithm,
            "digits": self.digits,
            "period": self.period,
            "expires": _iso(self.expires),
            "users": list(self.users),
            "suspended": self.suspended,
            "disabled": self.disabled,
            "fail_count": self.fail_count,
        }


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record."""

    at: datetime
    actor: str
    action: str
    targets: tuple[str, ...]
    outcome: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The audit event as JSON."""
        return {
            "at": _iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "targets": list(self.targets),
            "outcome": self.outcome,
            "detail": self.detail,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def user_view(row: UserRow, token: TokenRow | None, now: datetime) -> UserView:
    """The listing row of a user, given the token bound to it (if any)."""
    return view_of(to_user(row), token_view(token) if token is not None else None, now)


def view_of(user: User, bound: Token | None, now: datetime) -> UserView:
    """The listing row of a domain user and the token bound to it (if any)."""
    return UserView(
        login=user.login,
        name=user.name,
        user_class=user.user_class,
        serial=user.serial,
        state=user_state(user, bound, now),
        suspended=shows_suspended(user, bound),
        token_expires=bound.expires if bound is not None else None,
        start_date=user.start_date,
        token_disabled=bound is not None and bound.disabled,
    )


def token_listing(row: TokenRow, users: list[str]) -> TokenListing:
    """The listing row of a token and the logins bound to it."""
    return TokenListing(
        serial=row.serial,
        kind=row.kind,
        algorithm=row.algorithm,
        digits=row.digits,
        period=row.period,
        expires=row.expires,
        users=tuple(users),
        suspended=row.suspended,
        disabled=row.disabled,
        fail_count=row.fail_count,
    )


def audit_event(row: AuditRow) -> AuditEvent:
    """The audit event of a row."""
    return AuditEvent(
        at=row.at,
        actor=row.actor,
        action=row.action,
        targets=tuple(t for t in row.targets.split(",") if t),
        outcome=row.outcome,
        detail=row.detail,
    )
