"""Rows to domain values: the one place a stored row becomes a ``User`` or ``Token``."""

from __future__ import annotations

from typing import Any

from otpcore.crypto import Keyring
from otpcore.model import Algorithm, Token, TokenKind, User, UserClass
from otpcore.store.hot import TokenRecord
from otpcore.store.models import TokenRow, UserRow


def to_user(row: UserRow) -> User:
    """The domain user of a row."""
    return _user(row, row.password_hash)


def user_of(source: Any) -> User:
    """The domain user of a row of ``LISTED_USER``'s user columns (no password hash)."""
    return _user(source, None)


def _user(source: Any, password_hash: str | None) -> User:
    return User(
        login=source.login,
        name=source.name,
        user_class=UserClass(source.user_class),
        password_hash=password_hash,
        serial=source.serial,
        start_date=source.start_date,
        revoked=source.revoked,
        suspended=source.suspended,
        password_failures=source.password_failures,
        activation_failures=source.activation_failures,
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
    token = token_of(row.token, b"") if row.token.serial is not None else None
    return user_of(row.user), token
