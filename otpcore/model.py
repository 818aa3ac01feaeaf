"""The domain model: users, tokens, their states and the outcomes of a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum


class UserClass(StrEnum):
    """Who a user is to the bank: master and admin users may unlock and revoke."""

    MASTER = "master"
    ADMIN = "admin"
    GENERAL = "general"


class OtpState(StrEnum):
    """A user's one-time-password state (SPEC §2)."""

    UNREGISTERED = "unregistered"
    ISSUED = "issued"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class TokenKind(StrEnum):
    """Hardware keychain device or software authenticator app."""

    HARDWARE = "hardware"
    SOFTWARE = "software"


class Algorithm(StrEnum):
    """HMAC hash of a TOTP token."""

    SHA1 = "SHA1"
    SHA256 = "SHA256"
    SHA512 = "SHA512"


class Result(StrEnum):
    """What the RADIUS client is told."""

    ACCEPT = "accept"
    REJECT = "reject"
    CHALLENGE = "challenge"


class Reason(StrEnum):
    """Why a decision came out as it did; the fixed list logged as ``reason=`` (SPEC §9)."""

    OK = "ok"  # password and OTP verified
    PASSWORD_ONLY = "password_only"  # no token yet (unregistered, or start date ahead)
    ACTIVATED = "activated"  # activation completed, token bound
    OTP_CHALLENGE = "otp_challenge"  # password verified, OTP asked for
    SERIAL_CHALLENGE = "serial_challenge"  # activation begun: serial asked for
    ACTIVATION_OTP_CHALLENGE = "activation_otp_challenge"  # serial known: OTP asked for
    UNKNOWN_USER = "unknown_user"
    BAD_PASSWORD = "bad_password"
    USER_SUSPENDED = "user_suspended"
    UNREGISTERED_REJECTED = "unregistered_rejected"
    TOKEN_SUSPENDED = "token_suspended"
    TOKEN_DISABLED = "token_disabled"
    TOKEN_EXPIRED = "token_expired"
    BAD_OTP = "bad_otp"
    REPLAY = "replay"
    MALFORMED_OTP = "malformed_otp"
    BAD_SERIAL = "bad_serial"
    BAD_STATE = "bad_state"  # unknown, used, expired or foreign challenge State
    NOT_AWAITING_ACTIVATION = "not_awaiting_activation"
    TOKEN_REVOKED = "token_revoked"  # revoked from the token while the request was decided
    PERIOD_CHANGED = "period_changed"  # the token's period changed while it was decided
    SEED_CHANGED = "seed_changed"  # the token's seed was replaced while it was decided
    USER_CHANGED = "user_changed"  # the user's token or start date changed while decided
    PAP_REQUIRED = "pap_required"
    INVALID_REQUEST = "invalid_request"


REASON_DESCRIPTIONS: dict[Reason, str] = {
    Reason.OK: "password and one-time password verified",
    Reason.PASSWORD_ONLY: "password verified; the user has no active token yet",
    Reason.ACTIVATED: "activation completed: the token is now bound to the user",
    Reason.OTP_CHALLENGE: "password verified; the one-time password was asked for",
    Reason.SERIAL_CHALLENGE: "password verified; activation asks for the token's serial number",
    Reason.ACTIVATION_OTP_CHALLENGE: "serial accepted; activation asks for the token's OTP",
    Reason.UNKNOWN_USER: "no such login",
    Reason.BAD_PASSWORD: "wrong login password (counted on the user)",
    Reason.USER_SUSPENDED: "the user is suspended (password or activation failures)",
    Reason.UNREGISTERED_REJECTED: "no token issued and policy.unregistered is 'reject'",
    Reason.TOKEN_SUSPENDED: "the token is suspended after repeated wrong OTPs",
    Reason.TOKEN_DISABLED: "the token is disabled in the inventory",
    Reason.TOKEN_EXPIRED: "the token's expiry has passed",
    Reason.BAD_OTP: "wrong one-time password (counted)",
    Reason.REPLAY: "one-time password of an already used time step (counted)",
    Reason.MALFORMED_OTP: "the OTP part is not the token's number of digits (counted)",
    Reason.BAD_SERIAL: "activation named an unknown, disabled or expired serial",
    Reason.BAD_STATE: "the challenge State is unknown, used, expired or for another user",
    Reason.NOT_AWAITING_ACTIVATION: (
        "activation asked for a user not awaiting it: no token issued, the service start date "
        "still to come, or a token bound already"
    ),
    Reason.TOKEN_REVOKED: "the user was revoked from the token while the request was decided",
    Reason.PERIOD_CHANGED: (
        "an import changed the token's period while the request was decided (not counted)"
    ),
    Reason.SEED_CHANGED: (
        "an import replaced the token's seed while the request was decided (not counted)"
    ),
    Reason.USER_CHANGED: (
        "the user was bound to a token, issued one or revoked while the request was decided "
        "(not counted)"
    ),
    Reason.PAP_REQUIRED: "the request used CHAP or MS-CHAP; only PAP is supported",
    Reason.INVALID_REQUEST: "the request lacks User-Name or User-Password",
}


class InputMode(StrEnum):
    """How a client carries the OTP in User-Password (per client, SPEC §3.7)."""

    SPLIT = "split"
    CHALLENGE = "challenge"
    AUTO = "auto"
    OTP = "otp"


class Stage(StrEnum):
    """Which answer a request carries: a first login or the reply to a challenge."""

    LOGIN = "login"
    OTP = "otp"  # reply to an OTP challenge
    ACTIVATION_SERIAL = "activation_serial"  # reply to the serial challenge
    ACTIVATION_OTP = "activation_otp"  # reply to the activation OTP challenge


@dataclass(frozen=True, slots=True)
class Token:
    """A token of the inventory, with its unsealed secret."""

    serial: str
    kind: TokenKind
    algorithm: Algorithm
    digits: int
    period: int
    secret: bytes = field(repr=False)
    expires: datetime | None = None
    last_step: int = -1
    drift: int = 0  # declared by its import (PSKC TimeDrift): recorded, not applied
    fail_count: int = 0
    suspended: bool = False
    disabled: bool = False
    last_request: bytes | None = field(default=None, repr=False)

    def expired_at(self, now: datetime) -> bool:
        """True when the token's expiry instant has been reached."""
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class User:
    """A login of the bank's portal or VPN, with what the decision needs."""

    login: str
    name: str
    user_class: UserClass
    password_hash: str | None = field(default=None, repr=False)
    serial: str | None = None
    start_date: date | None = None
    revoked: bool = False
    suspended: bool = False
    password_failures: int = 0
    activation_failures: int = 0


def service_start(start_date: date) -> datetime:
    """The instant a service start date (利用開始日) begins: 00:00 UTC of that day.

    The one reading of a start date: the decision opens activation at this instant and
    ``otpctl`` names it (in the host's zone) when it refuses an activation before it. A date
    alone, as in the bank's letter, is a UTC day, the same on every node whatever its time
    zone (09:00 in Japan).
    """
    return datetime.combine(start_date, time(0), UTC)


def user_state(user: User, token: Token | None, now: datetime) -> OtpState:
    """The user's OTP state, derived from the binding, the start date and the token's expiry."""
    if user.serial is not None:
        if token is not None and token.expired_at(now):
            return OtpState.EXPIRED
        return OtpState.ACTIVE
    if user.revoked:
        return OtpState.REVOKED
    if user.start_date is not None:
        return OtpState.ISSUED
    return OtpState.UNREGISTERED


def shows_suspended(user: User, token: Token | None) -> bool:
    """True when OTP authentication shows 停止中 for the user (user or its token suspended)."""
    return user.suspended or (token is not None and token.suspended)
