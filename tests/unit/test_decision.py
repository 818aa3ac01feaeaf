"""SPEC §3 as a pure function: every row, for every state of SPEC §2, with an injected clock.

``decide()`` reads only its arguments, so these tests build users and tokens as values and use a
trivial password verifier. What a decision *counts* is read from its effects; the integration
tests show the same effects landing in SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpcore.codes import read_code
from otpcore.decision import (
    Bind,
    ConsumeStep,
    CountActivationFailure,
    CountPasswordFailure,
    CountTokenFailure,
    Credentials,
    Decision,
    ResetPasswordFailures,
    decide,
)
from otpcore.model import (
    Algorithm,
    InputMode,
    OtpState,
    Reason,
    Result,
    Stage,
    Token,
    TokenKind,
    User,
    UserClass,
    service_start,
    user_state,
)
from otpcore.policy import Policy, UnregisteredPolicy
from otpcore.totp import hotp, time_step

NOW = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC)
PASSWORD = "s3cret-pass"
SERIAL = "23456789"
POLICY = Policy()
JST = timezone(timedelta(hours=9))


def verify(stored: str, offered: str) -> bool:
    return stored == "h:" + offered


def make_user(**fields: object) -> User:
    values: dict[str, object] = {
        "login": "chiro",
        "name": "Chiro",
        "user_class": UserClass.GENERAL,
        "password_hash": "h:" + PASSWORD,
    }
    values.update(fields)
    return User(**values)  # type: ignore[arg-type]


def make_token(**fields: object) -> Token:
    values: dict[str, object] = {
        "serial": SERIAL,
        "kind": TokenKind.HARDWARE,
        "algorithm": Algorithm.SHA1,
        "digits": 6,
        "period": 60,
        "secret": b"12345678901234567890",
    }
    values.update(fields)
    return Token(**values)  # type: ignore[arg-type]


def active_user(**fields: object) -> User:
    return make_user(serial=SERIAL, **fields)


def code(token: Token, now: datetime = NOW, offset: int = 0) -> str:
    """The code the token shows ``offset`` steps from the nominal step at ``now``."""
    return hotp(token.secret, time_step(now, token.period) + offset, token.digits, token.algorithm)


def step(token: Token, now: datetime = NOW) -> int:
    return time_step(now, token.period)


def run(
    user: User | None,
    token: Token | None,
    text: str,
    mode: InputMode = InputMode.SPLIT,
    stage: Stage = Stage.LOGIN,
    now: datetime = NOW,
    policy: Policy = POLICY,
    request_id: bytes | None = None,
) -> Decision:
    return decide(user, token, Credentials(text, mode, stage, request_id), now, policy, verify)


def as_ascii(text: str) -> str:
    """``text`` with every decimal digit, in whatever script, as its ASCII digit."""
    return "".join(read_code(char) or char for char in text)


def counts_token(decision: Decision) -> bool:
    return any(isinstance(effect, CountTokenFailure) for effect in decision.effects)


def counts_user(decision: Decision) -> bool:
    return any(
        isinstance(effect, CountActivationFailure | CountPasswordFailure)
        for effect in decision.effects
    )


def consumed(decision: Decision) -> ConsumeStep:
    (effect,) = [e for e in decision.effects if isinstance(e, ConsumeStep)]
    return effect


def record(token: Token, decision: Decision) -> Token:
    """What the store does with an accepted step (the fake of ``Repo.consume_step``)."""
    effect = consumed(decision)
    assert effect.step > token.last_step
    return replace(token, last_step=effect.step, fail_count=0)


TOKEN = make_token()
START = date(2026, 12, 1)

# One user per state of SPEC §2 (the token argument is what the service would load).
STATES: dict[OtpState, tuple[User, Token | None]] = {
    OtpState.UNREGISTERED: (make_user(), None),
    OtpState.ISSUED: (make_user(start_date=START), None),
    OtpState.ACTIVE: (active_user(start_date=START), TOKEN),
    OtpState.EXPIRED: (active_user(start_date=START), make_token(expires=NOW)),
    OtpState.REVOKED: (make_user(start_date=START, revoked=True), None),
}


def test_the_state_table_builds_every_state() -> None:
    for state, (user, token) in STATES.items():
        assert user_state(user, token, NOW) is state


# 1. Unknown user


@pytest.mark.parametrize("mode", list(InputMode))
def test_unknown_user_is_rejected_and_nothing_is_counted(mode: InputMode) -> None:
    decision = run(None, None, PASSWORD + code(TOKEN), mode)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.UNKNOWN_USER)
    assert decision.effects == ()


# 2. User suspended by password (or activation) failures


@pytest.mark.parametrize("state", list(OtpState))
@pytest.mark.parametrize("mode", list(InputMode))
def test_suspended_user_is_rejected_in_every_state(state: OtpState, mode: InputMode) -> None:
    user, token = STATES[state]
    user = replace(user, suspended=True)
    for text in (PASSWORD, PASSWORD + code(TOKEN), "wrong"):
        decision = run(user, token, text, mode)
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.USER_SUSPENDED)
        assert decision.effects == ()


@pytest.mark.parametrize("stage", [Stage.OTP, Stage.ACTIVATION_SERIAL, Stage.ACTIVATION_OTP])
def test_suspended_user_is_rejected_at_every_stage(stage: Stage) -> None:
    decision = run(make_user(revoked=True, suspended=True), TOKEN, code(TOKEN), stage=stage)
    assert decision.reason is Reason.USER_SUSPENDED
    assert decision.effects == ()


# 3. Unregistered


@pytest.mark.parametrize("mode", [InputMode.SPLIT, InputMode.CHALLENGE, InputMode.AUTO])
def test_unregistered_password_alone_is_accepted_by_default(mode: InputMode) -> None:
    decision = run(make_user(), None, PASSWORD, mode)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.PASSWORD_ONLY)
    assert decision.effects == (ResetPasswordFailures(),)


@pytest.mark.parametrize("mode", [InputMode.SPLIT, InputMode.CHALLENGE, InputMode.AUTO])
def test_unregistered_wrong_password_is_counted_on_the_user(mode: InputMode) -> None:
    decision = run(make_user(), None, PASSWORD + "x", mode)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_PASSWORD)
    assert decision.effects == (CountPasswordFailure(),)


def test_unregistered_is_rejected_under_policy_reject() -> None:
    policy = Policy(unregistered=UnregisteredPolicy.REJECT)
    decision = run(make_user(), None, PASSWORD, policy=policy)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.UNREGISTERED_REJECTED)
    assert not counts_user(decision)
    assert run(make_user(), None, "nope", policy=policy).reason is Reason.BAD_PASSWORD


# 4./5. Issued: the start date, in UTC, to the second


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (datetime(2026, 11, 30, 0, 0, 0, tzinfo=UTC), Reason.PASSWORD_ONLY),
        (datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC), Reason.PASSWORD_ONLY),
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), Reason.SERIAL_CHALLENGE),
        (datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC), Reason.SERIAL_CHALLENGE),
        # The same instants written in JST: the boundary is the UTC day, not the offset's.
        (datetime(2026, 12, 1, 8, 59, 59, tzinfo=JST), Reason.PASSWORD_ONLY),
        (datetime(2026, 12, 1, 9, 0, 0, tzinfo=JST), Reason.SERIAL_CHALLENGE),
    ],
)
def test_issued_start_date_boundary(now: datetime, reason: Reason) -> None:
    user = make_user(start_date=START)
    decision = run(user, None, PASSWORD, now=now)
    assert decision.reason is reason
    if reason is Reason.PASSWORD_ONLY:
        assert decision.result is Result.ACCEPT
    else:
        assert decision.result is Result.CHALLENGE
        assert decision.next_stage is Stage.ACTIVATION_SERIAL
    assert decision.effects == (ResetPasswordFailures(),)


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), Reason.NOT_AWAITING_ACTIVATION),
        (datetime(2026, 12, 1, 8, 59, 59, tzinfo=JST), Reason.NOT_AWAITING_ACTIVATION),
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), Reason.ACTIVATION_OTP_CHALLENGE),
    ],
)
def test_activation_opens_at_the_utc_start_date(now: datetime, reason: Reason) -> None:
    user = make_user(start_date=START)
    assert run(user, TOKEN, SERIAL, stage=Stage.ACTIVATION_SERIAL, now=now).reason is reason


def test_the_service_starts_at_00_00_utc_of_the_start_date() -> None:
    assert service_start(START) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert service_start(START) == datetime(2026, 12, 1, 9, 0, tzinfo=JST)
    assert service_start(date(9999, 12, 31)).tzinfo is UTC


@given(st.datetimes(timezones=st.just(UTC)), st.dates())
def test_activation_opens_exactly_at_the_service_start(now: datetime, start: date) -> None:
    # otpctl names service_start() when it refuses: the decision must open at that instant.
    user = make_user(start_date=start)
    started = now >= service_start(start)
    login = run(user, None, PASSWORD, now=now).reason
    assert login is (Reason.SERIAL_CHALLENGE if started else Reason.PASSWORD_ONLY)
    serial = run(user, TOKEN, SERIAL, stage=Stage.ACTIVATION_SERIAL, now=now).reason
    assert (serial is Reason.NOT_AWAITING_ACTIVATION) is not started


@pytest.mark.parametrize("state", [OtpState.ISSUED, OtpState.REVOKED])
def test_issued_or_revoked_wrong_password_is_counted_and_no_activation(state: OtpState) -> None:
    user, _ = STATES[state]
    decision = run(user, None, "wrong", InputMode.CHALLENGE)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_PASSWORD)
    assert decision.effects == (CountPasswordFailure(),)
    assert decision.next_stage is None


@pytest.mark.parametrize("state", [OtpState.ISSUED, OtpState.REVOKED])
def test_issued_or_revoked_password_starts_activation(state: OtpState) -> None:
    user, _ = STATES[state]
    decision = run(user, None, PASSWORD, InputMode.AUTO)
    assert (decision.result, decision.reason) == (Result.CHALLENGE, Reason.SERIAL_CHALLENGE)
    assert decision.next_stage is Stage.ACTIVATION_SERIAL


# 5. Activation stages


def _serial(user: User, token: Token | None, now: datetime = NOW) -> Decision:
    return run(user, token, SERIAL, stage=Stage.ACTIVATION_SERIAL, now=now)


def _activation_otp(user: User, token: Token | None, text: str) -> Decision:
    return run(user, token, text, stage=Stage.ACTIVATION_OTP)


ISSUED = make_user(start_date=START)

UNUSABLE = {
    "unknown": None,
    "disabled": make_token(disabled=True),
    "expired-at-the-instant": make_token(expires=NOW),
    "expired-before": make_token(expires=NOW - timedelta(days=1)),
}


@pytest.mark.parametrize("which", list(UNUSABLE))
def test_activation_with_an_unusable_serial_is_bad_serial_counted_on_the_user(which: str) -> None:
    for decision in (
        _serial(ISSUED, UNUSABLE[which]),
        _activation_otp(ISSUED, UNUSABLE[which], "1"),
    ):
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_SERIAL)
        assert decision.effects == (CountActivationFailure(),)


def test_activation_onto_a_suspended_token_is_refused_and_counts_nothing() -> None:
    # SPEC §2: while a token is suspended nothing is counted, on it or on whoever asks.
    suspended = make_token(suspended=True, fail_count=5)
    for decision in (_serial(ISSUED, suspended), _activation_otp(ISSUED, suspended, "1")):
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.TOKEN_SUSPENDED)
        assert decision.effects == ()


def test_activation_serial_just_before_expiry_is_usable() -> None:
    token = make_token(expires=NOW + timedelta(microseconds=1))
    decision = _serial(ISSUED, token)
    assert (decision.result, decision.reason) == (
        Result.CHALLENGE,
        Reason.ACTIVATION_OTP_CHALLENGE,
    )
    assert decision.serial == SERIAL
    assert decision.next_stage is Stage.ACTIVATION_OTP
    assert decision.effects == ()


def test_activation_with_the_right_otp_binds_and_uses_the_step() -> None:
    decision = _activation_otp(ISSUED, TOKEN, code(TOKEN))
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.ACTIVATED)
    assert decision.effects == (ConsumeStep(SERIAL, step(TOKEN), TOKEN.period), Bind(SERIAL))
    lost = decision.lost_race()
    assert (lost.result, lost.reason) == (Result.REJECT, Reason.REPLAY)
    assert lost.effects == (CountActivationFailure(),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("000000", Reason.BAD_OTP),
        ("12ab56", Reason.MALFORMED_OTP),
        ("1234567", Reason.MALFORMED_OTP),
    ],
)
def test_activation_wrong_otp_counts_on_the_user_not_the_token(text: str, reason: Reason) -> None:
    if text == code(TOKEN):  # pragma: no cover - the fixed instant's code is not 000000
        pytest.skip("collision")
    decision = _activation_otp(ISSUED, TOKEN, text)
    assert (decision.result, decision.reason) == (Result.REJECT, reason)
    assert decision.effects == (CountActivationFailure(),)
    assert not counts_token(decision)


def test_activation_replay_of_a_used_step_counts_on_the_user() -> None:
    used = make_token(last_step=step(TOKEN))
    decision = _activation_otp(ISSUED, used, code(TOKEN))
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.REPLAY)
    assert decision.effects == (CountActivationFailure(),)


def test_an_activation_answer_resent_after_it_bound_the_user_is_accepted_again() -> None:
    answer = bytes(range(16))
    first = run(ISSUED, TOKEN, code(TOKEN), stage=Stage.ACTIVATION_OTP, request_id=answer)
    assert first.reason is Reason.ACTIVATED
    assert Bind(SERIAL) in first.effects
    # What the first node wrote: the step with this answer's authenticator, and the binding.
    token = replace(record(TOKEN, first), last_request=answer)
    bound = replace(ISSUED, serial=SERIAL)
    again = run(bound, token, code(TOKEN), stage=Stage.ACTIVATION_OTP, request_id=answer)
    assert (again.result, again.reason, again.effects) == (Result.ACCEPT, Reason.ACTIVATED, ())
    # Another answer, or a fresh code, finds the user no longer awaiting activation.
    other = run(bound, token, code(TOKEN), stage=Stage.ACTIVATION_OTP, request_id=bytes(16))
    assert other.reason is Reason.NOT_AWAITING_ACTIVATION
    later = NOW + timedelta(seconds=60)
    fresh = run(bound, token, code(TOKEN, later), stage=Stage.ACTIVATION_OTP, now=later,
                request_id=answer)  # fmt: skip
    assert fresh.reason is Reason.NOT_AWAITING_ACTIVATION


def test_sharing_activates_a_serial_another_user_holds() -> None:
    # Another user used the token one step ago; this user activates it with the current code.
    shared = make_token(last_step=step(TOKEN) - 1, drift=0)
    decision = _activation_otp(make_user(login="kojima", revoked=True), shared, code(TOKEN))
    assert decision.reason is Reason.ACTIVATED
    assert Bind(SERIAL) in decision.effects
    # The code the other user already used is a replay for the newcomer too.
    replay = _activation_otp(ISSUED, shared, code(TOKEN, offset=-1))
    assert replay.reason is Reason.REPLAY


@pytest.mark.parametrize(
    "user",
    [
        active_user(),
        make_user(),  # unregistered
        make_user(start_date=date(2026, 12, 2)),  # issued, start ahead
    ],
    ids=["active", "unregistered", "issued-before-start"],
)
def test_activation_is_refused_to_users_not_awaiting_it(user: User) -> None:
    for decision in (_serial(user, TOKEN), _activation_otp(user, TOKEN, code(TOKEN))):
        assert (decision.result, decision.reason) == (
            Result.REJECT,
            Reason.NOT_AWAITING_ACTIVATION,
        )
        assert decision.effects == ()


def test_re_registration_of_the_revoked_token() -> None:
    # Revoked from this very token earlier; it was used at some step before.
    revoked = make_user(revoked=True)
    token = make_token(last_step=step(TOKEN) - 100, drift=1)
    assert _serial(revoked, token).reason is Reason.ACTIVATION_OTP_CHALLENGE
    decision = _activation_otp(revoked, token, code(TOKEN, offset=1))
    assert decision.reason is Reason.ACTIVATED
    assert decision.effects == (ConsumeStep(SERIAL, step(TOKEN) + 1, TOKEN.period), Bind(SERIAL))


# 6. Expired


@pytest.mark.parametrize("mode", list(InputMode))
def test_expired_at_the_instant_is_rejected_and_nothing_counted(mode: InputMode) -> None:
    token = make_token(expires=NOW)
    for text in (PASSWORD + code(token), PASSWORD, "wrong", code(token)):
        decision = run(active_user(), token, text, mode)
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.TOKEN_EXPIRED)
        assert decision.effects == ()


def test_one_microsecond_before_expiry_the_token_still_works() -> None:
    token = make_token(expires=NOW + timedelta(microseconds=1))
    decision = run(active_user(), token, PASSWORD + code(token))
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)


# 7. Active: suspended or disabled token


@pytest.mark.parametrize("mode", list(InputMode))
@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_token(suspended=True, fail_count=5), Reason.TOKEN_SUSPENDED),
        (make_token(disabled=True), Reason.TOKEN_DISABLED),
    ],
    ids=["suspended", "disabled"],
)
def test_suspended_or_disabled_token_nothing_checked_or_counted(
    mode: InputMode, token: Token, reason: Reason
) -> None:
    for text in (PASSWORD + code(token), PASSWORD, "wrong" + code(token), "000000"):
        decision = run(active_user(), token, text, mode)
        assert (decision.result, decision.reason) == (Result.REJECT, reason)
        assert decision.effects == ()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_token(suspended=True, fail_count=5), Reason.TOKEN_SUSPENDED),
        (make_token(disabled=True), Reason.TOKEN_DISABLED),
        (make_token(expires=NOW), Reason.TOKEN_EXPIRED),
    ],
    ids=["suspended", "disabled", "expired"],
)
def test_challenge_answer_to_a_token_suspended_meanwhile_is_not_checked(
    token: Token, reason: Reason
) -> None:
    # The password was verified and the OTP asked for; a sharer's failures suspended the
    # token (or it was disabled, or it expired) before the answer came.
    for text in (code(token), "000000"):
        decision = run(active_user(), token, text, stage=Stage.OTP)
        assert (decision.result, decision.reason) == (Result.REJECT, reason)
        assert decision.effects == ()


def test_challenge_answer_for_a_user_revoked_meanwhile_is_token_revoked() -> None:
    # The operator's log says why the dialogue failed: the token was revoked during it.
    decision = run(make_user(revoked=True), None, code(TOKEN), stage=Stage.OTP)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.TOKEN_REVOKED)
    assert decision.effects == ()


def test_challenge_answer_for_a_user_no_longer_active_is_bad_state() -> None:
    # Deleted and added again under the same login: the dialogue is not this user's.
    decision = run(make_user(), None, code(TOKEN), stage=Stage.OTP)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_STATE)
    assert decision.effects == ()


# 7. Active: split


def test_split_password_and_otp_accepted() -> None:
    decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN))
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)
    assert decision.effects == (
        ResetPasswordFailures(),
        ConsumeStep(SERIAL, step(TOKEN), TOKEN.period),
    )
    assert decision.serial == SERIAL


def test_split_wrong_otp_with_the_right_password_counts_on_the_token() -> None:
    wrong = "000000" if code(TOKEN) != "000000" else "111111"
    decision = run(active_user(), TOKEN, PASSWORD + wrong)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_OTP)
    assert decision.effects == (ResetPasswordFailures(), CountTokenFailure(SERIAL))


@pytest.mark.parametrize("mode", [InputMode.SPLIT, InputMode.AUTO, InputMode.CHALLENGE])
def test_wrong_password_counts_on_the_user_never_on_the_token(mode: InputMode) -> None:
    for text in ("wrong" + code(TOKEN), "wrong" + "000000", "wrong", code(TOKEN), ""):
        decision = run(active_user(), TOKEN, text, mode)
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_PASSWORD)
        assert decision.effects == (CountPasswordFailure(),)


@pytest.mark.parametrize("otp", ["12345a", "abcdef", "12 456", "１２３４５a", "①２３４５６"])
def test_split_malformed_otp_with_the_right_password_counts_on_the_token(otp: str) -> None:
    decision = run(active_user(), TOKEN, PASSWORD + otp)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.MALFORMED_OTP)
    assert counts_token(decision)


def full_width(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


def arabic_indic(text: str) -> str:
    return "".join(chr(0x0660 + int(char)) for char in text)


@pytest.mark.parametrize("typed", [full_width, arabic_indic, lambda c: full_width(c[:3]) + c[3:]])
@pytest.mark.parametrize(
    ("mode", "stage", "before"),
    [
        (InputMode.SPLIT, Stage.LOGIN, PASSWORD),
        (InputMode.AUTO, Stage.LOGIN, PASSWORD),
        (InputMode.OTP, Stage.LOGIN, ""),
        (InputMode.CHALLENGE, Stage.OTP, ""),
    ],
)
def test_a_code_typed_full_width_or_in_another_script_is_the_same_code(
    typed: Callable[[str], str], mode: InputMode, stage: Stage, before: str
) -> None:
    # A Japanese keyboard with its IME on types full-width digits: refusing them as malformed
    # would count a failure on a token its sharers depend on, for the right code.
    decision = run(active_user(), TOKEN, before + typed(code(TOKEN)), mode, stage)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)
    assert consumed(decision) == ConsumeStep(SERIAL, step(TOKEN), TOKEN.period)
    used = record(TOKEN, decision)
    again = run(active_user(), used, before + code(TOKEN), mode, stage)
    assert again.reason is Reason.REPLAY  # the same step, however it was typed


def test_a_wrong_code_typed_full_width_is_a_wrong_code() -> None:
    wrong = "000000" if code(TOKEN) != "000000" else "111111"
    decision = run(active_user(), TOKEN, PASSWORD + full_width(wrong))
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_OTP)
    assert decision.effects == (ResetPasswordFailures(), CountTokenFailure(SERIAL))


def test_split_password_alone_is_a_wrong_password() -> None:
    # In split mode the last six characters are the OTP, so they are not part of the password.
    decision = run(active_user(), TOKEN, PASSWORD)
    assert decision.reason is Reason.BAD_PASSWORD


def test_eight_digit_sha512_token_in_split_mode() -> None:
    token = make_token(digits=8, algorithm=Algorithm.SHA512, secret=b"k" * 64, period=30)
    decision = run(active_user(), token, PASSWORD + code(token))
    assert decision.reason is Reason.OK
    assert run(active_user(), token, PASSWORD + code(token)[2:]).reason is Reason.BAD_PASSWORD


# 7. Active: challenge


def test_challenge_mode_asks_for_the_otp_then_accepts_it() -> None:
    first = run(active_user(), TOKEN, PASSWORD, InputMode.CHALLENGE)
    assert (first.result, first.reason) == (Result.CHALLENGE, Reason.OTP_CHALLENGE)
    assert first.next_stage is Stage.OTP
    assert first.effects == (ResetPasswordFailures(),)
    answer = run(active_user(), TOKEN, code(TOKEN), InputMode.CHALLENGE, Stage.OTP)
    assert (answer.result, answer.reason) == (Result.ACCEPT, Reason.OK)
    assert consumed(answer) == ConsumeStep(SERIAL, step(TOKEN), TOKEN.period)


def test_challenge_mode_password_with_otp_appended_is_a_wrong_password() -> None:
    decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN), InputMode.CHALLENGE)
    assert decision.reason is Reason.BAD_PASSWORD


def test_challenge_answer_wrong_or_malformed_counts_on_the_token() -> None:
    wrong = "000000" if code(TOKEN) != "000000" else "111111"
    bad = run(active_user(), TOKEN, wrong, stage=Stage.OTP)
    assert (bad.result, bad.reason) == (Result.REJECT, Reason.BAD_OTP)
    assert counts_token(bad)
    malformed = run(active_user(), TOKEN, "12345", stage=Stage.OTP)
    assert (malformed.result, malformed.reason) == (Result.REJECT, Reason.MALFORMED_OTP)
    assert counts_token(malformed)


# 7. Active: auto


def test_auto_with_otp_appended_is_split() -> None:
    decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN), InputMode.AUTO)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)


def test_auto_with_password_alone_is_challenge() -> None:
    decision = run(active_user(), TOKEN, PASSWORD, InputMode.AUTO)
    assert (decision.result, decision.reason) == (Result.CHALLENGE, Reason.OTP_CHALLENGE)


def test_auto_with_a_password_that_ends_in_digits() -> None:
    digits_password = "tanuki123456"
    user = active_user(password_hash="h:" + digits_password)
    alone = run(user, TOKEN, digits_password, InputMode.AUTO)
    assert (alone.result, alone.reason) == (Result.CHALLENGE, Reason.OTP_CHALLENGE)
    both = run(user, TOKEN, digits_password + code(TOKEN), InputMode.AUTO)
    assert (both.result, both.reason) == (Result.ACCEPT, Reason.OK)
    wrong_otp = run(user, TOKEN, digits_password + "000000", InputMode.AUTO)
    if code(TOKEN) != "000000":
        assert wrong_otp.reason is Reason.BAD_OTP
        assert counts_token(wrong_otp)
    wrong_password = run(user, TOKEN, "tanuki12345" + code(TOKEN), InputMode.AUTO)
    assert wrong_password.reason is Reason.BAD_PASSWORD
    assert not counts_token(wrong_password)


@given(password=st.text(min_size=1, max_size=24))
def test_auto_any_password_alone_challenges_and_with_the_otp_accepts(password: str) -> None:
    user = active_user(password_hash="h:" + password)
    alone = run(user, TOKEN, password, InputMode.AUTO)
    assert (alone.result, alone.reason) == (Result.CHALLENGE, Reason.OTP_CHALLENGE)
    both = run(user, TOKEN, password + code(TOKEN), InputMode.AUTO)
    assert (both.result, both.reason) == (Result.ACCEPT, Reason.OK)


@given(text=st.text(max_size=30), mode=st.sampled_from(list(InputMode)))
def test_only_the_right_password_lets_a_wrong_otp_count_on_the_token(
    text: str, mode: InputMode
) -> None:
    decision = run(active_user(), TOKEN, text, mode)
    if decision.result is Result.ACCEPT:
        assert as_ascii(text).strip().endswith(code(TOKEN))
    if counts_token(decision) and mode is not InputMode.OTP:
        assert text[: -TOKEN.digits] == PASSWORD
    if mode is InputMode.OTP:
        assert not any(isinstance(e, CountPasswordFailure) for e in decision.effects)


# 7. Active: otp mode (the portal checked the password)


def test_otp_mode_accepts_the_otp_alone_without_touching_password_counters() -> None:
    decision = run(active_user(), TOKEN, code(TOKEN), InputMode.OTP)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)
    assert decision.effects == (ConsumeStep(SERIAL, step(TOKEN), TOKEN.period),)
    wrong = run(active_user(), TOKEN, PASSWORD + code(TOKEN), InputMode.OTP)
    assert (wrong.result, wrong.reason) == (Result.REJECT, Reason.MALFORMED_OTP)
    assert wrong.effects == (CountTokenFailure(SERIAL),)


@pytest.mark.parametrize("padded", [" {}", "{} ", "{}\n", "\t{} "])
def test_otp_mode_takes_the_code_without_the_spaces_around_it(padded: str) -> None:
    # As in a challenge answer: a portal that pads its field must not cost a failure a login.
    decision = run(active_user(), TOKEN, padded.format(code(TOKEN)), InputMode.OTP)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.OK)
    inner = run(active_user(), TOKEN, code(TOKEN)[:3] + " " + code(TOKEN)[3:], InputMode.OTP)
    assert inner.reason is Reason.MALFORMED_OTP


@pytest.mark.parametrize(
    ("state", "result", "reason"),
    [
        (OtpState.UNREGISTERED, Result.ACCEPT, Reason.PASSWORD_ONLY),
        (OtpState.ISSUED, Result.CHALLENGE, Reason.SERIAL_CHALLENGE),
        (OtpState.REVOKED, Result.CHALLENGE, Reason.SERIAL_CHALLENGE),
        (OtpState.EXPIRED, Result.REJECT, Reason.TOKEN_EXPIRED),
    ],
)
def test_otp_mode_runs_every_step_as_if_the_password_were_right(
    state: OtpState, result: Result, reason: Reason
) -> None:
    user, token = STATES[state]
    decision = run(user, token, "", InputMode.OTP)
    assert (decision.result, decision.reason) == (result, reason)
    assert not counts_user(decision)
    assert ResetPasswordFailures() not in decision.effects


def test_otp_mode_issued_before_start_is_accepted() -> None:
    decision = run(make_user(start_date=date(2026, 12, 2)), None, "", InputMode.OTP)
    assert (decision.result, decision.reason) == (Result.ACCEPT, Reason.PASSWORD_ONLY)


# 7. Window edges, replay, declared drift


@pytest.mark.parametrize("window", [0, 1, 2])
def test_window_edges_through_decide(window: int) -> None:
    policy = Policy(otp_window=window)
    for offset in range(-window, window + 1):
        decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN, offset=offset), policy=policy)
        assert decision.reason is Reason.OK, offset
        assert consumed(decision) == ConsumeStep(SERIAL, step(TOKEN) + offset, TOKEN.period)
    for offset in (-window - 1, window + 1):
        decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN, offset=offset), policy=policy)
        assert decision.reason is Reason.BAD_OTP, offset
        assert counts_token(decision)


def test_replay_of_the_used_step_and_of_an_earlier_one_is_counted() -> None:
    first = run(active_user(), TOKEN, PASSWORD + code(TOKEN))
    token = record(TOKEN, first)
    for offset in (0, -1):
        again = run(active_user(), token, PASSWORD + code(token, offset=offset))
        assert (again.result, again.reason) == (Result.REJECT, Reason.REPLAY)
        assert counts_token(again)
    later = NOW + timedelta(seconds=60)
    assert run(active_user(), token, PASSWORD + code(token, later), now=later).reason is Reason.OK


def test_replay_by_a_sharer_is_counted_on_the_shared_token() -> None:
    taro, hanako = active_user(login="taro"), active_user(login="hanako")
    token = record(TOKEN, run(taro, TOKEN, PASSWORD + code(TOKEN)))
    decision = run(hanako, token, PASSWORD + code(token))
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.REPLAY)
    assert decision.effects == (ResetPasswordFailures(), CountTokenFailure(SERIAL))


def test_a_step_ahead_of_the_last_is_fresh_even_inside_the_window() -> None:
    # Used step s-1 one minute ago; now, code s+1 (token slightly fast) is fresh.
    token = make_token(last_step=step(TOKEN) - 1)
    assert run(active_user(), token, PASSWORD + code(token, offset=1)).reason is Reason.OK
    assert run(active_user(), token, PASSWORD + code(token, offset=-1)).reason is Reason.REPLAY


def test_a_code_shared_by_two_steps_leaves_the_next_login_its_own_step() -> None:
    # Steps 59,061,240 and 59,061,241 of this seed (30 s steps) both show 963181.
    token = make_token(period=30)
    first_at = datetime.fromtimestamp(59_061_240 * 30 + 10, UTC)
    first = run(active_user(), token, PASSWORD + "963181", now=first_at)
    assert consumed(first) == ConsumeStep(SERIAL, 59_061_240, 30)
    token = record(token, first)
    next_at = first_at + timedelta(seconds=30)
    second = run(active_user(), token, PASSWORD + "963181", now=next_at)
    assert (second.result, second.reason) == (Result.ACCEPT, Reason.OK)
    assert consumed(second) == ConsumeStep(SERIAL, 59_061_241, 30)


def test_a_code_shared_with_the_step_just_used_stands_for_the_other_step() -> None:
    # Typed twice within one step, the twin code is the next step's code, which is unused.
    token = make_token(period=30)
    at = datetime.fromtimestamp(59_061_240 * 30 + 10, UTC)
    token = record(token, run(active_user(), token, PASSWORD + "963181", now=at))
    again = run(active_user(), token, PASSWORD + "963181", now=at + timedelta(seconds=5))
    assert (again.result, again.reason) == (Result.ACCEPT, Reason.OK)
    assert consumed(again) == ConsumeStep(SERIAL, 59_061_241, 30)


def test_lost_race_turns_an_accept_into_a_counted_replay() -> None:
    decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN))
    lost = decision.lost_race()
    assert (lost.result, lost.reason) == (Result.REJECT, Reason.REPLAY)
    assert CountTokenFailure(SERIAL) in lost.effects
    assert not any(isinstance(e, ConsumeStep) for e in lost.effects)


def test_an_accepted_code_at_the_window_edge_does_not_move_the_window() -> None:
    # SPEC §3: within otp_window of now. A login with the +1 code must not make +2
    # acceptable at the next login, nor a run of late codes make older ones acceptable.
    token = TOKEN
    now = NOW
    for offset in (1, -1, -1):
        now += timedelta(minutes=10)
        decision = run(active_user(), token, PASSWORD + code(token, now, offset), now=now)
        assert decision.reason is Reason.OK, offset
        token = record(token, decision)
        assert token.drift == 0
    for offset in (2, -2):
        later = now + timedelta(minutes=10)
        decision = run(active_user(), token, PASSWORD + code(token, later, offset), now=later)
        assert decision.reason is Reason.BAD_OTP, offset


def test_a_token_declared_fast_is_still_checked_around_now() -> None:
    # A PSKC file's TimeDrift of +5 is recorded, not applied (SPEC §3: within otp_window of
    # now): the current code is accepted, the code five steps ahead is a wrong OTP.
    fast = make_token(drift=5)
    accepted = run(active_user(), fast, PASSWORD + code(fast))
    assert (accepted.result, accepted.reason) == (Result.ACCEPT, Reason.OK)
    assert consumed(accepted) == ConsumeStep(SERIAL, step(fast), fast.period)
    for offset in (5, 4, 2):
        decision = run(active_user(), fast, PASSWORD + code(fast, offset=offset))
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_OTP), offset
        assert counts_token(decision)


def test_a_token_declared_slow_gets_no_older_codes() -> None:
    # A TimeDrift of -5 does not make a code five minutes old acceptable.
    slow = make_token(drift=-5)
    for offset in (-5, -4, -2):
        decision = run(active_user(), slow, PASSWORD + code(slow, offset=offset))
        assert (decision.result, decision.reason) == (Result.REJECT, Reason.BAD_OTP), offset
        assert counts_token(decision)
    for offset in (-1, 0, 1):
        decision = run(active_user(), slow, PASSWORD + code(slow, offset=offset))
        assert consumed(decision) == ConsumeStep(SERIAL, step(slow) + offset, slow.period)


@given(
    drift=st.integers(min_value=-12, max_value=12),
    window=st.integers(min_value=0, max_value=3),
    offset=st.integers(min_value=-20, max_value=20),
)
def test_only_steps_within_the_window_of_now_match_whatever_the_drift(
    drift: int, window: int, offset: int
) -> None:
    token = make_token(drift=drift)
    policy = Policy(otp_window=window)
    decision = run(active_user(), token, PASSWORD + code(token, offset=offset), policy=policy)
    if abs(offset) <= window:
        assert decision.reason is Reason.OK
        assert consumed(decision) == ConsumeStep(SERIAL, step(token) + offset, token.period)
    elif decision.reason is Reason.OK:
        # Another step of the window shares the code (about once in a million): that step
        # is the one taken, never one outside the window.
        assert abs(consumed(decision).step - step(token)) <= window
    else:
        assert decision.reason is Reason.BAD_OTP


# Retransmission: the same request, resent to another node after its step was used


def test_retransmission_is_accepted_again_only_for_the_same_step() -> None:
    request = bytes(range(16))
    first = run(active_user(), TOKEN, PASSWORD + code(TOKEN), request_id=request)
    token = replace(record(TOKEN, first), last_request=request)
    again = run(active_user(), token, PASSWORD + code(TOKEN), request_id=request)
    assert (again.result, again.reason, again.resent) == (Result.ACCEPT, Reason.OK, True)
    assert again.effects == ()
    assert not first.resent
    other = run(active_user(), token, PASSWORD + code(TOKEN), request_id=bytes(16))
    assert other.reason is Reason.REPLAY
    assert run(active_user(), token, PASSWORD + code(TOKEN)).reason is Reason.REPLAY
    # The same request id with the previous step's code is a replay, not a retransmission.
    earlier = run(active_user(), token, PASSWORD + code(TOKEN, offset=-1), request_id=request)
    assert earlier.reason is Reason.REPLAY
    # Once a later step was used (by another request), the old request is a replay.
    moved = replace(token, last_step=token.last_step + 1, last_request=bytes(16))
    late = run(active_user(), moved, PASSWORD + code(TOKEN), request_id=request)
    assert late.reason is Reason.REPLAY


def test_retransmission_needs_the_right_password() -> None:
    request = bytes(range(16))
    token = make_token(last_step=step(TOKEN), last_request=request)
    decision = run(active_user(), token, "wrong" + code(TOKEN), request_id=request)
    assert decision.reason is Reason.BAD_PASSWORD


# What the shells read off a decision besides its result: the serial of the log line (SPEC §9),
# the verified password for a rehash (SPEC §8), and the resets a right password earns.

SUSPENDED_TOKEN = make_token(suspended=True, fail_count=5)
DISABLED_TOKEN = make_token(disabled=True)
EXPIRED_TOKEN = make_token(expires=NOW)
USED_TOKEN = make_token(last_step=step(TOKEN))
WRONG = "000000" if code(TOKEN) != "000000" else "111111"
RESENT = bytes(range(16))  # the Request Authenticator recorded with the used step
RESENT_TOKEN = replace(USED_TOKEN, last_request=RESENT)

SERIAL_CASES: dict[str, tuple[Callable[[], Decision], Result, Reason, str | None]] = {
    "suspended user": (
        lambda: run(active_user(suspended=True), TOKEN, PASSWORD + code(TOKEN)),
        Result.REJECT, Reason.USER_SUSPENDED, SERIAL,
    ),
    "expired at login": (
        lambda: run(active_user(), EXPIRED_TOKEN, PASSWORD + code(TOKEN)),
        Result.REJECT, Reason.TOKEN_EXPIRED, SERIAL,
    ),
    "disabled at login": (
        lambda: run(active_user(), DISABLED_TOKEN, PASSWORD + code(TOKEN)),
        Result.REJECT, Reason.TOKEN_DISABLED, SERIAL,
    ),
    "suspended token at login": (
        lambda: run(active_user(), SUSPENDED_TOKEN, PASSWORD + code(TOKEN)),
        Result.REJECT, Reason.TOKEN_SUSPENDED, SERIAL,
    ),
    "wrong password": (
        lambda: run(active_user(), TOKEN, "wrong" + code(TOKEN)),
        Result.REJECT, Reason.BAD_PASSWORD, SERIAL,
    ),
    "wrong password, challenge mode": (
        lambda: run(active_user(), TOKEN, "wrong", InputMode.CHALLENGE),
        Result.REJECT, Reason.BAD_PASSWORD, SERIAL,
    ),
    "malformed code": (
        lambda: run(active_user(), TOKEN, PASSWORD + "12ab56"),
        Result.REJECT, Reason.MALFORMED_OTP, SERIAL,
    ),
    "wrong code": (
        lambda: run(active_user(), TOKEN, PASSWORD + WRONG),
        Result.REJECT, Reason.BAD_OTP, SERIAL,
    ),
    "replay": (
        lambda: run(active_user(), USED_TOKEN, PASSWORD + code(TOKEN)),
        Result.REJECT, Reason.REPLAY, SERIAL,
    ),
    "accept": (
        lambda: run(active_user(), TOKEN, PASSWORD + code(TOKEN)),
        Result.ACCEPT, Reason.OK, SERIAL,
    ),
    "otp challenge": (
        lambda: run(active_user(), TOKEN, PASSWORD, InputMode.CHALLENGE),
        Result.CHALLENGE, Reason.OTP_CHALLENGE, SERIAL,
    ),
    "answer, expired": (
        lambda: run(active_user(), EXPIRED_TOKEN, code(TOKEN), stage=Stage.OTP),
        Result.REJECT, Reason.TOKEN_EXPIRED, SERIAL,
    ),
    "answer, disabled": (
        lambda: run(active_user(), DISABLED_TOKEN, code(TOKEN), stage=Stage.OTP),
        Result.REJECT, Reason.TOKEN_DISABLED, SERIAL,
    ),
    "answer, suspended token": (
        lambda: run(active_user(), SUSPENDED_TOKEN, code(TOKEN), stage=Stage.OTP),
        Result.REJECT, Reason.TOKEN_SUSPENDED, SERIAL,
    ),
    "answer, token gone from the inventory": (
        lambda: run(active_user(), None, code(TOKEN), stage=Stage.OTP),
        Result.REJECT, Reason.BAD_STATE, SERIAL,
    ),
    "activation onto a suspended token": (
        lambda: _serial(ISSUED, SUSPENDED_TOKEN),
        Result.REJECT, Reason.TOKEN_SUSPENDED, SERIAL,
    ),
    "serial from a user who is bound": (
        lambda: _serial(active_user(), TOKEN),
        Result.REJECT, Reason.NOT_AWAITING_ACTIVATION, SERIAL,
    ),
    "activation answer from a user who is bound": (
        lambda: _activation_otp(active_user(), TOKEN, code(TOKEN)),
        Result.REJECT, Reason.NOT_AWAITING_ACTIVATION, SERIAL,
    ),
    "activation, wrong code": (
        lambda: _activation_otp(ISSUED, TOKEN, WRONG),
        Result.REJECT, Reason.BAD_OTP, SERIAL,
    ),
    "activated": (
        lambda: _activation_otp(ISSUED, TOKEN, code(TOKEN)),
        Result.ACCEPT, Reason.ACTIVATED, SERIAL,
    ),
    "lost race": (
        lambda: run(active_user(), TOKEN, PASSWORD + code(TOKEN)).lost_race(),
        Result.REJECT, Reason.REPLAY, SERIAL,
    ),
    "resent request": (
        lambda: run(active_user(), RESENT_TOKEN, PASSWORD + code(TOKEN), request_id=RESENT),
        Result.ACCEPT, Reason.OK, SERIAL,
    ),
    "resent activation answer": (
        lambda: run(active_user(), RESENT_TOKEN, code(TOKEN), stage=Stage.ACTIVATION_OTP,
                    request_id=RESENT),
        Result.ACCEPT, Reason.ACTIVATED, SERIAL,
    ),
    "unknown serial": (
        lambda: _serial(ISSUED, None),
        Result.REJECT, Reason.BAD_SERIAL, None,
    ),
    "unregistered, wrong password": (
        lambda: run(make_user(), None, "wrong"),
        Result.REJECT, Reason.BAD_PASSWORD, None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SERIAL_CASES))
def test_every_decision_about_a_token_names_its_serial(case: str) -> None:
    # The log line's serial= (SPEC §9) is how an operator finds the token behind a Reject.
    decide_it, result, reason, serial = SERIAL_CASES[case]
    decision = decide_it()
    assert (decision.result, decision.reason, decision.serial) == (result, reason, serial)


PASSWORD_CASES: dict[str, tuple[Callable[[], Decision], Reason, str | None]] = {
    "split": (
        lambda: run(active_user(), TOKEN, PASSWORD + code(TOKEN)),
        Reason.OK, PASSWORD,
    ),
    "split, wrong code": (
        lambda: run(active_user(), TOKEN, PASSWORD + WRONG),
        Reason.BAD_OTP, PASSWORD,
    ),
    "auto with the code": (
        lambda: run(active_user(), TOKEN, PASSWORD + code(TOKEN), InputMode.AUTO),
        Reason.OK, PASSWORD,
    ),
    "auto, password alone": (
        lambda: run(active_user(), TOKEN, PASSWORD, InputMode.AUTO),
        Reason.OTP_CHALLENGE, PASSWORD,
    ),
    "challenge": (
        lambda: run(active_user(), TOKEN, PASSWORD, InputMode.CHALLENGE),
        Reason.OTP_CHALLENGE, PASSWORD,
    ),
    "unregistered": (
        lambda: run(make_user(), None, PASSWORD),
        Reason.PASSWORD_ONLY, PASSWORD,
    ),
    "issued, before the start": (
        lambda: run(make_user(start_date=START + timedelta(days=1)), None, PASSWORD),
        Reason.PASSWORD_ONLY, PASSWORD,
    ),
    "activation begun": (
        lambda: run(ISSUED, None, PASSWORD),
        Reason.SERIAL_CHALLENGE, PASSWORD,
    ),
    "otp mode": (
        lambda: run(active_user(), TOKEN, code(TOKEN), InputMode.OTP),
        Reason.OK, None,
    ),
    "otp mode, unregistered": (
        lambda: run(make_user(), None, code(TOKEN), InputMode.OTP),
        Reason.PASSWORD_ONLY, None,
    ),
    "otp mode, issued before the start": (
        lambda: run(make_user(start_date=START + timedelta(days=1)), None, "x", InputMode.OTP),
        Reason.PASSWORD_ONLY, None,
    ),
    "otp mode, activation begun": (
        lambda: run(ISSUED, None, code(TOKEN), InputMode.OTP),
        Reason.SERIAL_CHALLENGE, None,
    ),
    "wrong password": (
        lambda: run(active_user(), TOKEN, "wrong" + code(TOKEN)),
        Reason.BAD_PASSWORD, None,
    ),
    "challenge answer": (
        lambda: run(active_user(), TOKEN, code(TOKEN), stage=Stage.OTP),
        Reason.OK, None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PASSWORD_CASES))
def test_a_decision_carries_the_password_it_verified_and_no_other(case: str) -> None:
    # The service rehashes this password when the [hashing] cost changed (SPEC §8): the
    # password part of a split text, never the code, and nothing it did not verify itself.
    decide_it, reason, password = PASSWORD_CASES[case]
    decision = decide_it()
    assert decision.reason is reason
    assert decision.password == password


def test_a_challenge_answer_resets_the_password_failures_its_password_earned() -> None:
    # The password was right when the challenge was sent; a wrong one typed meanwhile by
    # someone else must not stay counted once the owner completes the login.
    accepted = run(active_user(password_failures=3), TOKEN, code(TOKEN), stage=Stage.OTP)
    assert accepted.effects == (
        ResetPasswordFailures(),
        ConsumeStep(SERIAL, step(TOKEN), TOKEN.period),
    )
    wrong = run(active_user(), TOKEN, WRONG, stage=Stage.OTP)
    assert wrong.effects == (ResetPasswordFailures(), CountTokenFailure(SERIAL))


def test_otp_mode_touches_no_password_counter() -> None:
    accepted = run(active_user(), TOKEN, code(TOKEN), InputMode.OTP)
    assert accepted.effects == (ConsumeStep(SERIAL, step(TOKEN), TOKEN.period),)
    wrong = run(active_user(), TOKEN, WRONG, InputMode.OTP)
    assert wrong.effects == (CountTokenFailure(SERIAL),)


def test_auto_with_the_code_resets_the_password_failures() -> None:
    decision = run(active_user(), TOKEN, PASSWORD + code(TOKEN), InputMode.AUTO)
    assert decision.effects == (
        ResetPasswordFailures(),
        ConsumeStep(SERIAL, step(TOKEN), TOKEN.period),
    )


def test_unregistered_refused_by_policy_still_resets_a_right_password() -> None:
    policy = Policy(unregistered=UnregisteredPolicy.REJECT)
    decision = run(make_user(), None, PASSWORD, policy=policy)
    assert (decision.reason, decision.effects) == (
        Reason.UNREGISTERED_REJECTED,
        (ResetPasswordFailures(),),
    )


@pytest.mark.parametrize(
    ("mode", "stage", "text"),
    [
        (InputMode.AUTO, Stage.LOGIN, PASSWORD + "{}"),
        (InputMode.OTP, Stage.LOGIN, "{}"),
        (InputMode.CHALLENGE, Stage.OTP, "{}"),
    ],
    ids=["auto", "otp-mode", "challenge-answer"],
)
def test_a_resent_request_is_accepted_again_in_every_mode(
    mode: InputMode, stage: Stage, text: str
) -> None:
    # SPEC §4: resent to another node after the first consumed the step, the same request
    # (same Request Authenticator) is answered Accept again, and nothing is written.
    typed = text.format(code(TOKEN))
    first = run(active_user(), TOKEN, typed, mode, stage, request_id=RESENT)
    token = replace(record(TOKEN, first), last_request=RESENT)
    again = run(active_user(), token, typed, mode, stage, request_id=RESENT)
    assert (again.result, again.reason, again.effects) == (Result.ACCEPT, Reason.OK, ())
    other = run(active_user(), token, typed, mode, stage, request_id=bytes(16))
    assert other.reason is Reason.REPLAY


def test_another_users_answer_with_the_request_id_of_a_used_step_is_a_replay() -> None:
    # The resend path of activation is for the user the step bound. A second user awaiting
    # activation who sends the same code under the same Request Authenticator is refused
    # and counted, not accepted without a binding.
    decision = run(ISSUED, RESENT_TOKEN, code(TOKEN), stage=Stage.ACTIVATION_OTP, request_id=RESENT)
    assert (decision.result, decision.reason) == (Result.REJECT, Reason.REPLAY)
    assert decision.effects == (CountActivationFailure(),)


UNUSABLE_SINCE: dict[str, dict[str, object]] = {
    "expired": {"expires": NOW},
    "disabled": {"disabled": True},
    "suspended": {"suspended": True},
}


@pytest.mark.parametrize("change", list(UNUSABLE_SINCE))
def test_an_activation_answer_resent_after_its_token_went_unusable_is_refused(
    change: str,
) -> None:
    # As a resent OTP answer is: the token's state now decides, not the first Accept.
    token = replace(RESENT_TOKEN, **UNUSABLE_SINCE[change])
    bound = replace(ISSUED, serial=SERIAL)
    again = run(bound, token, code(TOKEN), stage=Stage.ACTIVATION_OTP, request_id=RESENT)
    assert again.result is Result.REJECT
