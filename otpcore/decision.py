"""The authentication decision of SPEC §3, as a pure function of its inputs.

``decide()`` reads nothing but its arguments and returns a ``Decision``: the result, the
reason, and the effects a service must write in one transaction. The one effect that can
lose a race, ``ConsumeStep``, comes with the effects to apply instead when it does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime

from otpcore.codes import is_code, read_code
from otpcore.model import (
    InputMode,
    OtpState,
    Reason,
    Result,
    Stage,
    Token,
    User,
    service_start,
    user_state,
)
from otpcore.policy import Policy, UnregisteredPolicy
from otpcore.ports import PasswordVerifier
from otpcore.totp import match_step, time_step


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request offers: User-Password's text, how to read it, and which stage it answers."""

    text: str = field(repr=False)
    mode: InputMode = InputMode.AUTO
    stage: Stage = Stage.LOGIN
    request_id: bytes | None = None  # the RADIUS Request Authenticator, to know a retransmission


# Effects: what the service writes after a decision, in one transaction.


@dataclass(frozen=True, slots=True)
class ConsumeStep:
    """Record ``step`` as the token's last used step, only if it is later than the stored one
    and the token still has the period the step was counted in."""

    serial: str
    step: int
    period: int  # a step of one period is no step of another (an import may change it)


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind the user to the token (activation); clears the revoked mark and activation count."""

    serial: str


@dataclass(frozen=True, slots=True)
class CountTokenFailure:
    """Add one to the token's consecutive failures; suspend it at the threshold."""

    serial: str


@dataclass(frozen=True, slots=True)
class CountPasswordFailure:
    """Add one to the user's consecutive password failures; suspend at the threshold."""


@dataclass(frozen=True, slots=True)
class CountActivationFailure:
    """Add one to the user's consecutive activation failures; suspend at the threshold."""


@dataclass(frozen=True, slots=True)
class ResetPasswordFailures:
    """The password was right: the user's consecutive password failures restart from zero."""


Effect = (
    ConsumeStep
    | Bind
    | CountTokenFailure
    | CountPasswordFailure
    | CountActivationFailure
    | ResetPasswordFailures
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request and what must be written for it."""

    result: Result
    reason: Reason
    serial: str | None = None
    next_stage: Stage | None = None
    effects: tuple[Effect, ...] = ()
    replay_reason: Reason = Reason.REPLAY
    on_replay: tuple[Effect, ...] = ()
    password: str | None = field(default=None, repr=False)  # verified here, for a rehash
    # Answered as a request already answered: the same one, resent to another node or from
    # another port after its reply was lost. The log tells it from a new login.
    resent: bool = False

    def lost_race(self) -> Decision:
        """The decision to stand when the ``ConsumeStep`` effect found its step already used."""
        return Decision(Result.REJECT, self.replay_reason, self.serial, effects=self.on_replay)


def reject(reason: Reason, serial: str | None = None, *effects: Effect) -> Decision:
    """A Reject for ``reason``, with the effects it writes (none unless given)."""
    return Decision(Result.REJECT, reason, serial, effects=effects)


def decide(
    user: User | None,
    token: Token | None,
    credentials: Credentials,
    now: datetime,
    policy: Policy,
    verify: PasswordVerifier,
) -> Decision:
    """Decide one request (SPEC §3).

    ``token`` is the token the request concerns: the user's bound token, or during activation
    the token named by the serial (None if there is no such token).
    """
    if user is None:
        return reject(Reason.UNKNOWN_USER)
    if user.suspended:
        return reject(Reason.USER_SUSPENDED, user.serial)
    stage = credentials.stage
    if stage is Stage.ACTIVATION_SERIAL:
        return _activation_serial(user, token, now)
    if stage is Stage.ACTIVATION_OTP:
        code = credentials.text.strip()
        return _activation_otp(user, token, code, now, policy, credentials.request_id)

    bound = token if user.serial is not None else None
    state = user_state(user, bound, now)
    if stage is Stage.OTP:
        if state is OtpState.EXPIRED:
            return reject(Reason.TOKEN_EXPIRED, user.serial)
        if state is OtpState.REVOKED:
            # Revoked between the challenge and its answer (a token reported lost meanwhile):
            # the State is sound, the user's token is what went.
            return reject(Reason.TOKEN_REVOKED)
        if state is not OtpState.ACTIVE or bound is None:
            return reject(Reason.BAD_STATE, user.serial)
        # The token may have been suspended or disabled since the challenge was sent.
        if bound.disabled:
            return reject(Reason.TOKEN_DISABLED, bound.serial)
        if bound.suspended:
            return reject(Reason.TOKEN_SUSPENDED, bound.serial)
        return _check_otp(
            bound, credentials.text.strip(), now, policy, True, credentials.request_id
        )
    return _login(user, bound, state, credentials, now, policy, verify)


def _password(user: User, offered: str, verify: PasswordVerifier) -> bool:
    return user.password_hash is not None and verify(user.password_hash, offered)


def _login(
    user: User,
    token: Token | None,
    state: OtpState,
    credentials: Credentials,
    now: datetime,
    policy: Policy,
    verify: PasswordVerifier,
) -> Decision:
    text = credentials.text
    trusted = credentials.mode is InputMode.OTP  # the portal checked the password itself
    if state is OtpState.EXPIRED:
        return reject(Reason.TOKEN_EXPIRED, user.serial)
    if state is OtpState.ACTIVE:
        assert token is not None  # noqa: S101 - ACTIVE implies a bound, loaded token
        if token.disabled:
            return reject(Reason.TOKEN_DISABLED, token.serial)
        if token.suspended:
            return reject(Reason.TOKEN_SUSPENDED, token.serial)
        return _login_active(user, token, credentials, now, policy, verify)

    if not trusted and not _password(user, text, verify):
        return reject(Reason.BAD_PASSWORD, user.serial, CountPasswordFailure())
    reset: tuple[Effect, ...] = () if trusted else (ResetPasswordFailures(),)
    verified = None if trusted else text
    if state is OtpState.UNREGISTERED:
        if policy.unregistered is UnregisteredPolicy.REJECT:
            return Decision(Result.REJECT, Reason.UNREGISTERED_REJECTED, effects=reset)
        return Decision(Result.ACCEPT, Reason.PASSWORD_ONLY, effects=reset, password=verified)
    if state is OtpState.ISSUED and not _service_started(user, now):
        return Decision(Result.ACCEPT, Reason.PASSWORD_ONLY, effects=reset, password=verified)
    # Issued with the start date reached, or revoked: activation begins.
    return Decision(
        Result.CHALLENGE,
        Reason.SERIAL_CHALLENGE,
        next_stage=Stage.ACTIVATION_SERIAL,
        effects=reset,
        password=verified,
    )


def _login_active(
    user: User,
    token: Token,
    credentials: Credentials,
    now: datetime,
    policy: Policy,
    verify: PasswordVerifier,
) -> Decision:
    text, mode, digits = credentials.text, credentials.mode, token.digits
    if mode is InputMode.OTP:
        # The whole text is the code, as in a challenge answer: spaces around it are not part
        # of it (a portal that pads the field must not count a failure per login).
        return _check_otp(token, text.strip(), now, policy, False, credentials.request_id)
    if mode is InputMode.SPLIT:
        if len(text) > digits and _password(user, text[:-digits], verify):
            otp = _check_otp(token, text[-digits:], now, policy, True, credentials.request_id)
            return replace(otp, password=text[:-digits])
        return reject(Reason.BAD_PASSWORD, token.serial, CountPasswordFailure())
    if mode is InputMode.AUTO:
        tail = text[-digits:]
        if len(text) > digits and is_code(tail) and _password(user, text[:-digits], verify):
            otp = _check_otp(token, tail, now, policy, True, credentials.request_id)
            return replace(otp, password=text[:-digits])
    if _password(user, text, verify):
        return Decision(
            Result.CHALLENGE,
            Reason.OTP_CHALLENGE,
            token.serial,
            next_stage=Stage.OTP,
            effects=(ResetPasswordFailures(),),
            password=text,
        )
    return reject(Reason.BAD_PASSWORD, token.serial, CountPasswordFailure())


def _check_otp(
    token: Token,
    code: str,
    now: datetime,
    policy: Policy,
    password_checked: bool,
    request_id: bytes | None = None,
) -> Decision:
    reset: tuple[Effect, ...] = (ResetPasswordFailures(),) if password_checked else ()
    failure = (*reset, CountTokenFailure(token.serial))
    ascii_code = read_code(code)  # typed full-width, or in another script: the same code
    if ascii_code is None or len(ascii_code) != token.digits:
        return reject(Reason.MALFORMED_OTP, token.serial, *failure)
    step = time_step(now, token.period)
    matched = match_step(
        token.secret,
        ascii_code,
        step=step,
        window=policy.otp_window,
        digits=token.digits,
        algorithm=token.algorithm,
        last_step=token.last_step,
    )
    if matched is None:
        return reject(Reason.BAD_OTP, token.serial, *failure)
    if matched <= token.last_step:
        if _retransmission(token, matched, request_id):
            # The same request, resent to another node after the first consumed the step:
            # it is answered as it was, and nothing is written again.
            return Decision(Result.ACCEPT, Reason.OK, token.serial, resent=True)
        return reject(Reason.REPLAY, token.serial, *failure)
    return Decision(
        Result.ACCEPT,
        Reason.OK,
        token.serial,
        # The token's clock offset is not learned from the code: re-centring the window on
        # each accepted step would carry it away from now (SPEC §3), one late or early code
        # at a time, until codes seen minutes ago were accepted.
        effects=(*reset, ConsumeStep(token.serial, matched, token.period)),
        on_replay=failure,
    )


def _retransmission(token: Token, matched: int, request_id: bytes | None) -> bool:
    return matched == token.last_step and same_request(token.last_request, request_id)


def same_request(recorded: bytes | None, offered: bytes | None) -> bool:
    """True when ``offered`` is the Request Authenticator recorded with a step or a State."""
    return recorded is not None and offered is not None and hmac.compare_digest(recorded, offered)


def _awaiting_activation(user: User, now: datetime) -> bool:
    if user.serial is not None:
        return False
    if user.revoked:
        return True
    return _service_started(user, now)


def _service_started(user: User, now: datetime) -> bool:
    """True once the user's start date has begun (``service_start``: 00:00 UTC of that day,
    whatever offset ``now`` has); False with no start date."""
    return user.start_date is not None and now >= service_start(user.start_date)


def _refused_for_activation(token: Token | None, now: datetime) -> Decision | None:
    """The Reject of an activation onto ``token`` (None: an unknown serial), else None."""
    if token is None or token.disabled or token.expired_at(now):
        return reject(Reason.BAD_SERIAL, None, CountActivationFailure())
    if token.suspended:
        # SPEC §2: while a token is suspended nothing is counted; §3.5 counts an unknown,
        # disabled or expired serial. Counting this one would suspend a user for asking to
        # join a token whose sharers are waiting for an unlock.
        return reject(Reason.TOKEN_SUSPENDED, token.serial)
    return None


def _activation_serial(user: User, token: Token | None, now: datetime) -> Decision:
    if not _awaiting_activation(user, now):
        return reject(Reason.NOT_AWAITING_ACTIVATION, user.serial)
    refused = _refused_for_activation(token, now)
    if refused is not None:
        return refused
    assert token is not None  # noqa: S101 - refused above when it is None
    return Decision(
        Result.CHALLENGE,
        Reason.ACTIVATION_OTP_CHALLENGE,
        token.serial,
        next_stage=Stage.ACTIVATION_OTP,
    )


def _activation_otp(
    user: User,
    token: Token | None,
    code: str,
    now: datetime,
    policy: Policy,
    request_id: bytes | None = None,
) -> Decision:
    """Verify the OTP of the token being activated; failures count on the user, not the token."""
    if (
        token is not None
        and user.serial == token.serial
        and request_id is not None
        and _refused_for_activation(token, now) is None
    ):
        # Bound already: by this very answer if it is resent to another node after the first
        # node's Accept was lost (its step is recorded with its Request Authenticator). Not
        # once the token is disabled, expired or suspended: a resent OTP answer is not either.
        again = _check_otp(token, code, now, policy, False, request_id)
        if again.result is Result.ACCEPT and not again.effects:
            return Decision(Result.ACCEPT, Reason.ACTIVATED, token.serial)
    if not _awaiting_activation(user, now):
        return reject(Reason.NOT_AWAITING_ACTIVATION, user.serial)
    refused = _refused_for_activation(token, now)
    if refused is not None:
        return refused
    assert token is not None  # noqa: S101 - refused above when it is None
    otp = _check_otp(token, code, now, policy, False)
    if otp.result is not Result.ACCEPT:
        return reject(otp.reason, token.serial, CountActivationFailure())
    return Decision(
        Result.ACCEPT,
        Reason.ACTIVATED,
        token.serial,
        effects=(*otp.effects, Bind(token.serial)),
        on_replay=(CountActivationFailure(),),
    )
