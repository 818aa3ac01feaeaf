"""Rows to domain values: the one place a stored row becomes a ``User`` or ``Token``."""

from __future__ import annotations

from typing import Any

from otpcore.crypto import Keyring
from otpcore.model import Algorithm, Token, TokenKind, User, UserClass
from otpcore.store.hot import TokenRecord
from otpcore.store.models import TokenRow, UserRow


def to_user(row: UserRow) -> User:
    """The domain user of a row."""
    return User(
        login=row.login,
        name=row.name,
        user_class=UserClass(row.user_class),
        password_hash=row.password_hash,
        serial=row.serial,
        start_date=row.start_date,
        revoked=row.revoked,
        suspended=row.suspended,
        password_failures=row.password_failures,
        activation_failures=row.activation_failures,
    )


def token_of(source: TokenRow | TokenRecord, secret: bytes) -> Token:
    """The domain token of a stored token (an ORM row or a hot-path record) and its secret."""
    return Token(
        serial=source.serial,
        kind=TokenKind(source.kind),
        algorithm=Algorithm(source.algorithm),
        digits=source.digits,
        period=source.period,
        secret=secret,
        expires=source.expires,
        last_step=source.last_step,
        drift=source.drift,
        fail_count=source.fail_count,
        suspended=source.suspended,
        disabled=source.disabled,
        last_request=source.last_request,
    )


def to_token(row: TokenRow, keyring: Keyring) -> Token:
    """The domain token of a row, its secret unsealed."""
    return token_of(row, keyring.unseal(row.serial, row.sealed_secret))


def token_view(row: TokenRow) -> Token:
    """The domain token of a row without its secret, for listings and state."""
    return token_of(row, b"")


def listed(row: Any) -> tuple[User, Token | None]:
    """The user and bound token (its secret left out) of a row of ``Repo.users_page``."""
    user = User(
        login=row.login,
        name=row.name,
        user_class=UserClass(row.user_class),
        serial=row.serial,
        start_date=row.start_date,
        revoked=row.revoked,
        suspended=row.suspended,
        password_failures=row.password_failures,
        activation_failures=row.activation_failures,
    )
    if row.token_serial is None:
        return user, None
    token = Token(
        serial=row.token_serial,
        kind=TokenKind(row.kind),
        algorithm=Algorithm(row.algorithm),
        digits=row.digits,
        period=row.period,
        secret=b"",
        expires=row.expires,
        last_step=row.last_step,
        drift=row.drift,
        fail_count=row.fail_count,
        suspended=row.token_suspended,
        disabled=row.disabled,
    )
    return user, token
