"""Rows to domain values: the one place a stored row becomes a ``User`` or ``Token``."""

from __future__ import annotations

from otpcore.crypto import Keyring
from otpcore.model import Algorithm, Token, TokenKind, User, UserClass
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


def to_token(row: TokenRow, keyring: Keyring) -> Token:
    """The domain token of a row, its secret unsealed."""
    return Token(
        serial=row.serial,
        kind=TokenKind(row.kind),
        algorithm=Algorithm(row.algorithm),
        digits=row.digits,
        period=row.period,
        secret=keyring.unseal(row.serial, row.sealed_secret),
        expires=row.expires,
        last_step=row.last_step,
        drift=row.drift,
        fail_count=row.fail_count,
        suspended=row.suspended,
        disabled=row.disabled,
        last_request=row.last_request,
    )


def token_view(row: TokenRow) -> Token:
    """The domain token of a row without its secret, for listings and state."""
    return Token(
        serial=row.serial,
        kind=TokenKind(row.kind),
        algorithm=Algorithm(row.algorithm),
        digits=row.digits,
        period=row.period,
        secret=b"",
        expires=row.expires,
        last_step=row.last_step,
        drift=row.drift,
        fail_count=row.fail_count,
        suspended=row.suspended,
        disabled=row.disabled,
    )
