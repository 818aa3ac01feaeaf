"""SPEC §3 through the Authenticator on a real SQLite file, with a frozen clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpcore.app import App
from otpcore.attempts import AuthOutcome, AuthRequest, challenge_key
from otpcore.model import InputMode, OtpState, Reason, Result, Stage
from otpcore.passwords import HashingParams, PasswordHashing
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec
from otpcore.totp import time_step
from tests.conftest import BOTH_BACKENDS
from tests.integration.lifecycle import (
    ADMIN,
    CONFIRMATION,
    PASSWORD,
    SECRET,
    SERIAL,
    activated,
    add_admin,
    add_user,
    code,
    import_token,
    just_before,
    login,
    next_step,
    token,
    user,
    wrong_code,
)

pytestmark = BOTH_BACKENDS


def expect(outcome: AuthOutcome, result: Result, reason: Reason) -> AuthOutcome:
    assert (outcome.result, outcome.reason) == (result, reason)
    return outcome


@pytest.fixture
def shared(app: App, clock: FrozenClock) -> App:
    """taro and hanako both active on the one token 23456789."""
    import_token(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    activated(app, clock, "taro")
    activated(app, clock, "hanako")
    return app


# 1.-3. Unknown, unregistered


def test_unknown_user_is_rejected(app: App) -> None:
    expect(login(app, "nobody", PASSWORD), Result.REJECT, Reason.UNKNOWN_USER)
    assert app.admin().users() == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=12))
def test_any_user_name_is_decided_never_a_database_failure(app: App, name: str) -> None:
    # PostgreSQL refuses a NUL in text: "ta\0ro" raised DataError, taken for the database
    # being down (request dropped, worker unhealthy). No login can hold one: it is unknown.
    if app.admin().users() == []:
        add_user(app, "taro")
    for login_name in (name, "ta\x00ro", name + "\x00"):
        if login_name != "taro":
            expect(login(app, login_name, PASSWORD), Result.REJECT, Reason.UNKNOWN_USER)


def test_unregistered_password_alone(app: App) -> None:
    add_user(app, "kojima")
    expect(login(app, "kojima", PASSWORD), Result.ACCEPT, Reason.PASSWORD_ONLY)
    expect(login(app, "kojima", PASSWORD + "x"), Result.REJECT, Reason.BAD_PASSWORD)
    assert user(app, "kojima").state is OtpState.UNREGISTERED


def test_unregistered_rejected_by_policy(make_app: Callable[..., App]) -> None:
    app = make_app(policy={"unregistered": "reject"})
    add_user(app, "kojima")
    expect(login(app, "kojima", PASSWORD), Result.REJECT, Reason.UNREGISTERED_REJECTED)


# 2. Password failures suspend the user at the threshold


def test_password_failures_suspend_the_user_at_exactly_ten(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    for _ in range(9):
        expect(login(app, "taro", "bad" + code(clock)), Result.REJECT, Reason.BAD_PASSWORD)
    assert not user(app, "taro").suspended
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    # The success reset the count: ten more are needed.
    for _ in range(9):
        login(app, "taro", "bad")
    assert not user(app, "taro").suspended
    expect(login(app, "taro", "bad"), Result.REJECT, Reason.BAD_PASSWORD)
    assert user(app, "taro").suspended
    next_step(clock)
    expect(login(app, "taro", PASSWORD + code(clock)), Result.REJECT, Reason.USER_SUSPENDED)
    # The token was never counted: the password was wrong each time.
    assert token(app).fail_count == 0
    assert not token(app).suspended


def test_a_success_committed_after_a_concurrent_wrong_password_restarts_the_count(
    app: App, clock: FrozenClock
) -> None:
    # Read before a wrong password committed (another request of the batch, another node):
    # the success must restart the count all the same, or fewer than ten wrong passwords
    # after it would suspend the user.
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    authenticator = app.authenticator()
    right = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT))
    expect(login(app, "taro", "bad"), Result.REJECT, Reason.BAD_PASSWORD)  # commits in between
    (accepted,) = authenticator.commit([right])
    assert (accepted.result, accepted.reason) == (Result.ACCEPT, Reason.OK)
    assert _password_failures(app, "taro") == 0
    for _ in range(9):
        login(app, "taro", "bad")
    assert not user(app, "taro").suspended


def test_a_wrong_and_a_right_password_in_one_batch_leave_no_failure(app: App) -> None:
    add_user(app, "kojima")  # unregistered: the password alone lets in
    authenticator = app.authenticator()
    wrong = authenticator.prepare(AuthRequest("kojima", "not the password"))
    right = authenticator.prepare(AuthRequest("kojima", PASSWORD))
    outcomes = authenticator.commit([wrong, right])
    assert [o.reason for o in outcomes] == [Reason.BAD_PASSWORD, Reason.PASSWORD_ONLY]
    assert _password_failures(app, "kojima") == 0


def _password_failures(app: App, login_name: str) -> int:
    stored = app.hot.user(login_name)
    assert stored is not None
    return stored.password_failures


# 4./5. Issued, start date, activation by challenge


def test_issued_before_and_on_the_start_date(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    app.admin().issue("taro", date(2026, 12, 2))
    clock.now = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    expect(login(app, "taro", PASSWORD), Result.ACCEPT, Reason.PASSWORD_ONLY)
    assert user(app, "taro").state is OtpState.ISSUED
    clock.now = datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC)
    first = expect(
        login(app, "taro", PASSWORD, InputMode.CHALLENGE),
        Result.CHALLENGE,
        Reason.SERIAL_CHALLENGE,
    )
    assert first.prompt is Stage.ACTIVATION_SERIAL
    assert first.state is not None
    assert len(first.state) >= 16
    second = expect(
        login(app, "taro", SERIAL, state=first.state),
        Result.CHALLENGE,
        Reason.ACTIVATION_OTP_CHALLENGE,
    )
    assert second.serial == SERIAL
    assert second.state is not None
    expect(login(app, "taro", code(clock), state=second.state), Result.ACCEPT, Reason.ACTIVATED)
    view = user(app, "taro")
    assert (view.state, view.serial) == (OtpState.ACTIVE, SERIAL)
    # The activation used the step: the same code cannot log in.
    expect(login(app, "taro", PASSWORD + code(clock)), Result.REJECT, Reason.REPLAY)
    next_step(clock)
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


def _serial_prompt(app: App, name: str) -> bytes:
    outcome = login(app, name, PASSWORD, InputMode.CHALLENGE)
    assert outcome.reason is Reason.SERIAL_CHALLENGE
    assert outcome.state is not None
    return outcome.state


@pytest.mark.parametrize("problem", ["unknown", "disabled", "expired"])
def test_activation_bad_serial_is_counted_on_the_user(
    app: App, clock: FrozenClock, problem: str
) -> None:
    import_token(app, "OTHER", expires=clock() if problem == "expired" else None)
    import_token(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    if problem == "disabled":
        app.admin().set_disabled("OTHER", True)
    app.admin().issue("taro", clock().date())
    serial = "NOSUCH" if problem == "unknown" else "OTHER"
    for attempt in range(1, 6):
        state = _serial_prompt(app, "taro")
        expect(login(app, "taro", serial, state=state), Result.REJECT, Reason.BAD_SERIAL)
        assert user(app, "taro").suspended is (attempt == 5)
    expect(login(app, "taro", PASSWORD), Result.REJECT, Reason.USER_SUSPENDED)
    assert token(app, "OTHER").fail_count == 0


def test_asking_to_join_a_suspended_shared_token_counts_nothing(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    add_admin(app)
    add_user(app, "hanako")
    add_user(app, "taro")
    activated(app, clock, "hanako")
    for _ in range(5):
        login(app, "hanako", PASSWORD + wrong_code(clock))
    assert token(app).suspended
    app.admin().issue("taro", clock().date())
    for _ in range(6):
        state = _serial_prompt(app, "taro")
        expect(login(app, "taro", SERIAL, state=state), Result.REJECT, Reason.TOKEN_SUSPENDED)
        outcome = app.authenticator().activate("taro", SERIAL, code(clock))
        assert outcome.reason is Reason.TOKEN_SUSPENDED
    assert not user(app, "taro").suspended
    assert token(app).fail_count == 5
    # Once the sharers are unlocked the same user joins.
    app.admin().unlock(ADMIN, CONFIRMATION, ["hanako"])
    next_step(clock)
    assert app.authenticator().activate("taro", SERIAL, code(clock)).reason is Reason.ACTIVATED


def test_activation_serial_with_a_nul_is_an_unknown_serial(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())
    state = _serial_prompt(app, "taro")
    expect(login(app, "taro", "2345\x006789", state=state), Result.REJECT, Reason.BAD_SERIAL)
    outcome = app.authenticator().activate("taro", SERIAL + "\x00", code(clock))
    expect(outcome, Result.REJECT, Reason.BAD_SERIAL)
    assert app.authenticator().activate("taro", SERIAL, code(clock)).reason is Reason.ACTIVATED


def full_width(text: str) -> str:
    """``text`` as a Japanese keyboard types it with the IME on."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def test_activation_typed_full_width_binds_the_token(app: App, clock: FrozenClock) -> None:
    import_token(app, "TK-7a01")
    add_user(app, "taro")
    add_user(app, "hanako")
    app.admin().issue("taro", clock().date())
    app.admin().issue("hanako", clock().date())
    state = _serial_prompt(app, "taro")
    prompt = expect(
        login(app, "taro", full_width("TK-7a01") + "\u3000", state=state),
        Result.CHALLENGE,
        Reason.ACTIVATION_OTP_CHALLENGE,
    )
    assert prompt.serial == "TK-7a01"
    answer = login(app, "taro", full_width(code(clock)), state=prompt.state)
    expect(answer, Result.ACCEPT, Reason.ACTIVATED)
    assert user(app, "taro").serial == "TK-7a01"
    # A portal passing on what its user typed: the same, and the used step stays used.
    outcome = app.authenticator().activate("hanako", full_width("TK-7a01"), code(clock))
    expect(outcome, Result.REJECT, Reason.REPLAY)
    next_step(clock)
    outcome = app.authenticator().activate("hanako", full_width("TK-7a01"), full_width(code(clock)))
    expect(outcome, Result.ACCEPT, Reason.ACTIVATED)
    assert not user(app, "taro").suspended
    assert not user(app, "hanako").suspended
    assert token(app, "TK-7a01").fail_count == 0


def test_activation_wrong_otp_counts_on_the_user_not_the_token(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    add_user(app, "taro")
    add_user(app, "mallory")
    activated(app, clock, "taro")
    app.admin().issue("mallory", clock().date())
    # mallory knows her own password and taro's serial: she must not lock taro's token.
    for attempt in range(1, 6):
        outcome = app.authenticator().activate("mallory", SERIAL, wrong_code(clock))
        expect(outcome, Result.REJECT, Reason.BAD_OTP)
        assert user(app, "mallory").suspended is (attempt == 5)
        assert token(app).fail_count == 0
    assert not token(app).suspended
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    # Through the challenge too: a wrong OTP after the serial counts on the user.
    add_user(app, "eve")
    app.admin().issue("eve", clock().date())
    state = _serial_prompt(app, "eve")
    otp_prompt = login(app, "eve", SERIAL, state=state)
    expect(
        login(app, "eve", wrong_code(clock), state=otp_prompt.state),
        Result.REJECT,
        Reason.BAD_OTP,
    )
    assert token(app).fail_count == 0


def test_activation_replay_of_a_used_step_is_rejected(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    activated(app, clock, "taro")
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    app.admin().issue("hanako", clock().date())
    outcome = app.authenticator().activate("hanako", SERIAL, code(clock))
    expect(outcome, Result.REJECT, Reason.REPLAY)
    assert user(app, "hanako").state is OtpState.ISSUED
    next_step(clock)
    expect(
        app.authenticator().activate("hanako", SERIAL, code(clock)), Result.ACCEPT, Reason.ACTIVATED
    )


def _otp_question(app: App, clock: FrozenClock) -> bytes:
    """taro, issued today, has given the serial: the State of the question for the OTP."""
    import_token(app)
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())
    otp_prompt = login(app, "taro", SERIAL, state=_serial_prompt(app, "taro"))
    assert otp_prompt.reason is Reason.ACTIVATION_OTP_CHALLENGE
    assert otp_prompt.state is not None
    return otp_prompt.state


def test_an_activation_answer_resent_elsewhere_is_accepted_again(
    app: App, clock: FrozenClock
) -> None:
    question = _otp_question(app, clock)
    answer = bytes(range(16))
    first = login(app, "taro", code(clock), state=question, request_id=answer)
    expect(first, Result.ACCEPT, Reason.ACTIVATED)
    again = login(app, "taro", code(clock), state=question, request_id=answer)
    expect(again, Result.ACCEPT, Reason.ACTIVATED)
    assert user(app, "taro").state is OtpState.ACTIVE
    assert not user(app, "taro").suspended
    other = login(app, "taro", code(clock), state=question, request_id=bytes(16))
    expect(other, Result.REJECT, Reason.BAD_STATE)


def _serial_question(app: App, clock: FrozenClock) -> bytes:
    """taro, issued today, has given the password: the State of the question for the serial."""
    import_token(app)
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())
    return _serial_prompt(app, "taro")


def test_a_serial_resent_elsewhere_is_asked_for_the_code_again(
    app: App, clock: FrozenClock
) -> None:
    # The first node's question for the code was lost, and the NAS sent the serial again, to
    # another node: it was refused as a used State, and the user had to start over.
    question = _serial_question(app, clock)
    answer = bytes(range(16))
    first = login(app, "taro", SERIAL, state=question, request_id=answer)
    again = login(app, "taro", SERIAL, state=question, request_id=answer)
    for outcome in (first, again):
        expect(outcome, Result.CHALLENGE, Reason.ACTIVATION_OTP_CHALLENGE)
    assert again.state is not None
    assert again.state != first.state
    other = login(app, "taro", SERIAL, state=question, request_id=bytes(16))
    expect(other, Result.REJECT, Reason.BAD_STATE)
    activated = login(app, "taro", code(clock), state=again.state, request_id=bytes(range(1, 17)))
    expect(activated, Result.ACCEPT, Reason.ACTIVATED)
    assert user(app, "taro").state is OtpState.ACTIVE


def test_a_wrong_serial_resent_elsewhere_is_counted_once(app: App, clock: FrozenClock) -> None:
    question = _serial_question(app, clock)
    answer = bytes(range(16))
    first = login(app, "taro", "99999999", state=question, request_id=answer)
    expect(first, Result.REJECT, Reason.BAD_SERIAL)
    again = login(app, "taro", "99999999", state=question, request_id=answer)
    expect(again, Result.REJECT, Reason.BAD_STATE)
    stored = app.hot.user("taro")
    assert stored is not None
    assert stored.activation_failures == 1


@pytest.mark.parametrize("change", ["disabled", "expired", "suspended"])
def test_an_activation_answer_resent_after_its_token_is_blocked_is_refused(
    app: App, clock: FrozenClock, change: str
) -> None:
    """As a resent OTP answer is: a token disabled (stolen), expired or suspended since the
    first answer bound it lets nobody in, resend or not (SPEC §3.6, §3.7)."""
    question = _otp_question(app, clock)
    answer = bytes(range(16))
    first = login(app, "taro", code(clock), state=question, request_id=answer)
    expect(first, Result.ACCEPT, Reason.ACTIVATED)
    if change == "disabled":
        app.admin().set_disabled(SERIAL, True)
    elif change == "expired":
        spec = TokenSpec(SERIAL, None, expires=clock(), given=frozenset({"expires"}))
        app.admin().import_tokens([spec], update_existing=True)
    else:
        for _ in range(5):
            login(app, "taro", PASSWORD + wrong_code(clock))
        assert token(app).suspended
    again = login(app, "taro", code(clock), state=question, request_id=answer)
    expect(again, Result.REJECT, Reason.BAD_STATE)


# A NAS resends to another node while the first node's commit is still under way (a slow
# database): the copy was read before that commit and is committed after it. SPEC §4: "a
# retransmission of the request that consumed a step (same Request Authenticator, recorded
# with the step) is answered Accept again rather than treated as a replay."

RESENT = bytes(range(16))


def _both_nodes(app: App, request: AuthRequest) -> tuple[AuthOutcome, AuthOutcome]:
    """Decide ``request`` on node B before node A commits it; A's outcome, then B's."""
    node_a, node_b = app.authenticator(), app.authenticator()
    on_b = node_b.prepare(request)
    (first,) = node_a.commit([node_a.prepare(request)])
    (again,) = node_b.commit([on_b])
    return first, again


def test_a_serial_resent_while_another_node_commits_it_is_asked_for_the_code_too(
    app: App, clock: FrozenClock
) -> None:
    question = _serial_question(app, clock)
    request = AuthRequest("taro", SERIAL, InputMode.CHALLENGE, question, RESENT)
    first, again = _both_nodes(app, request)
    for outcome in (first, again):
        expect(outcome, Result.CHALLENGE, Reason.ACTIVATION_OTP_CHALLENGE)
    assert again.state is not None
    activated = login(app, "taro", code(clock), state=again.state, request_id=bytes(16))
    expect(activated, Result.ACCEPT, Reason.ACTIVATED)


@pytest.fixture
def taro(app: App, clock: FrozenClock) -> App:
    """taro, active on the token 23456789."""
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    return app


def test_a_login_resent_while_another_node_commits_it_is_accepted_again(
    taro: App, clock: FrozenClock
) -> None:
    request = AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT, request_id=RESENT)
    first, again = _both_nodes(taro, request)
    expect(first, Result.ACCEPT, Reason.OK)
    expect(again, Result.ACCEPT, Reason.OK)
    assert token(taro).fail_count == 0
    # Another request with the same code is still a replay, and counted.
    other = AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT, request_id=bytes(16))
    expect(taro.authenticator().authenticate(other), Result.REJECT, Reason.REPLAY)
    assert token(taro).fail_count == 1


@pytest.mark.parametrize(
    ("right", "first_reason", "again_reason", "failures"),
    [
        (True, Reason.OK, Reason.OK, 0),  # accepted again
        (False, Reason.BAD_OTP, Reason.BAD_STATE, 1),  # a wrong code counted once, not twice
    ],
)
def test_a_challenge_answer_resent_while_another_node_commits_it(
    taro: App, clock: FrozenClock, right: bool, first_reason: Reason, again_reason: Reason,
    failures: int,
) -> None:  # fmt: skip
    prompt = login(taro, "taro", PASSWORD, InputMode.CHALLENGE)
    text = code(clock) if right else wrong_code(clock)
    answer = AuthRequest("taro", text, InputMode.CHALLENGE, prompt.state, RESENT)
    first, again = _both_nodes(taro, answer)
    assert (first.reason, again.reason) == (first_reason, again_reason)
    assert token(taro).fail_count == failures


def test_an_activation_answer_resent_while_another_node_commits_it_is_accepted_again(
    app: App, clock: FrozenClock
) -> None:
    question = _otp_question(app, clock)
    answer = AuthRequest("taro", code(clock), InputMode.SPLIT, question, RESENT)
    first, again = _both_nodes(app, answer)
    expect(first, Result.ACCEPT, Reason.ACTIVATED)
    expect(again, Result.ACCEPT, Reason.ACTIVATED)
    assert user(app, "taro").state is OtpState.ACTIVE
    assert not user(app, "taro").suspended
    activations = [e for e in app.admin().audit() if e.action == "activate"]
    assert len(activations) == 1  # answered again, not bound (nor audited) again


def test_activation_of_a_user_not_awaiting_it_is_refused(app: App, clock: FrozenClock) -> None:
    import_token(app)
    import_token(app, "OTHER")
    add_user(app, "taro")
    outcome = app.authenticator().activate("taro", SERIAL, code(clock))
    expect(outcome, Result.REJECT, Reason.NOT_AWAITING_ACTIVATION)
    activated(app, clock, "taro")
    outcome = app.authenticator().activate("taro", "OTHER", code(clock))
    expect(outcome, Result.REJECT, Reason.NOT_AWAITING_ACTIVATION)
    assert user(app, "taro").serial == SERIAL


# Sharing, replay by the same user and by a sharer


def test_sharing_binds_one_token_to_two_users(shared: App) -> None:
    assert token(shared).users == ("hanako", "taro")
    for name in ("taro", "hanako"):
        view = user(shared, name)
        assert (view.serial, view.state) == (SERIAL, OtpState.ACTIVE)


def test_replay_by_the_same_user_and_by_a_sharer(shared: App, clock: FrozenClock) -> None:
    now_code = code(clock)
    expect(login(shared, "taro", PASSWORD + now_code), Result.ACCEPT, Reason.OK)
    expect(login(shared, "taro", PASSWORD + now_code), Result.REJECT, Reason.REPLAY)
    expect(login(shared, "hanako", PASSWORD + now_code), Result.REJECT, Reason.REPLAY)
    # The previous step's code is inside the window but older than the used step.
    expect(login(shared, "hanako", PASSWORD + code(clock, offset=-1)), Result.REJECT, Reason.REPLAY)
    assert token(shared).fail_count == 3
    next_step(clock)
    expect(login(shared, "hanako", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    assert token(shared).fail_count == 0


# Window edges and declared drift


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(-2, Reason.BAD_OTP), (-1, Reason.OK), (0, Reason.OK), (1, Reason.OK), (2, Reason.BAD_OTP)],
)
def test_window_edges(app: App, clock: FrozenClock, offset: int, reason: Reason) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    clock.advance(3600)
    assert login(app, "taro", PASSWORD + code(clock, offset=offset)).reason is reason


def test_the_window_stays_around_now_after_codes_from_its_edges(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    for offset in (1, -1, -1):
        clock.advance(600)
        expect(login(app, "taro", PASSWORD + code(clock, offset=offset)), Result.ACCEPT,
               Reason.OK)  # fmt: skip
    # Two steps either side of now stay outside otp_window = 1 (SPEC §3), however the
    # codes before were typed.
    for offset in (2, -2):
        clock.advance(600)
        outcome = login(app, "taro", PASSWORD + code(clock, offset=offset))
        expect(outcome, Result.REJECT, Reason.BAD_OTP)


@pytest.mark.parametrize("drift", [5, -5])
def test_a_declared_drift_is_recorded_and_the_window_stays_around_now(
    app: App, clock: FrozenClock, drift: int
) -> None:
    # A PSKC file's TimeDrift is kept with the token but does not move the window (SPEC §3):
    # the current code activates and logs in, the code `drift` steps away is a wrong OTP.
    app.admin().import_tokens([TokenSpec(SERIAL, SECRET, drift=drift)])
    add_user(app, "taro")
    activated(app, clock, "taro")
    clock.advance(3600)
    expect(login(app, "taro", PASSWORD + code(clock, offset=drift)), Result.REJECT, Reason.BAD_OTP)
    assert token(app).fail_count == 1
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    record = app.hot.token(SERIAL)
    assert record is not None
    assert (record.drift, record.last_step) == (drift, time_step(clock(), 60))


def test_suspension_lines_quote_the_logins_they_name(
    app: App, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A login may hold '=' and '"' (no space or comma): unquoted, "user=a=b" and a quote
    # would let the name pass for other fields of the line to whoever parses the log.
    import_token(app)
    for name in ('o"neil', "root=x"):
        add_user(app, name)
        activated(app, clock, name)
    with caplog.at_level("WARNING"):
        for _ in range(10):
            login(app, "root=x", "bad")
        for _ in range(5):
            login(app, 'o"neil', PASSWORD + wrong_code(clock))
    lines = [r.getMessage() for r in caplog.records if "suspended" in r.getMessage()]
    assert lines == [
        'user suspended user="root=x" cause=password',
        f'token suspended serial={SERIAL} users="o\\"neil","root=x"',
    ]


# Suspension at exactly the threshold, on every sharer; unlock; counting only with the password


def test_suspension_at_exactly_five_shows_on_every_sharer(shared: App, clock: FrozenClock) -> None:
    for failures in range(1, 5):
        expect(login(shared, "taro", PASSWORD + wrong_code(clock)), Result.REJECT, Reason.BAD_OTP)
        assert token(shared).fail_count == failures
        assert not token(shared).suspended
    assert not user(shared, "hanako").suspended
    expect(login(shared, "hanako", PASSWORD + wrong_code(clock)), Result.REJECT, Reason.BAD_OTP)
    assert token(shared).suspended
    assert token(shared).fail_count == 5
    assert user(shared, "taro").suspended
    assert user(shared, "hanako").suspended
    # While suspended nothing is checked or counted, not even the right code.
    for name in ("taro", "hanako"):
        outcome = login(shared, name, PASSWORD + code(clock))
        expect(outcome, Result.REJECT, Reason.TOKEN_SUSPENDED)
    assert token(shared).fail_count == 5
    suspend_events = [e for e in shared.admin().audit() if e.action == "suspend"]
    assert [e.targets for e in suspend_events] == [("hanako", "taro")]


def test_a_success_restarts_the_count(shared: App, clock: FrozenClock) -> None:
    for _ in range(4):
        login(shared, "taro", PASSWORD + wrong_code(clock))
    expect(login(shared, "hanako", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    assert token(shared).fail_count == 0
    for _ in range(4):
        login(shared, "taro", PASSWORD + wrong_code(clock))
    assert not token(shared).suspended


def test_wrong_password_never_counts_on_the_token(shared: App, clock: FrozenClock) -> None:
    for _ in range(7):
        expect(login(shared, "taro", "bad" + wrong_code(clock)), Result.REJECT, Reason.BAD_PASSWORD)
    assert token(shared).fail_count == 0
    expect(login(shared, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


def test_unlock_lifts_every_sharer(shared: App, clock: FrozenClock) -> None:
    add_admin(shared)
    for _ in range(5):
        login(shared, "taro", PASSWORD + wrong_code(clock))
    lifted = shared.admin().unlock("chiroadm", CONFIRMATION, ["taro"])
    assert [(v.login, v.suspended, v.serial) for v in lifted] == [
        ("hanako", False, SERIAL),
        ("taro", False, SERIAL),
    ]
    assert not token(shared).suspended
    assert token(shared).fail_count == 0
    expect(login(shared, "hanako", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


def test_challenge_answered_after_a_sharer_suspended_the_token(
    shared: App, clock: FrozenClock
) -> None:
    prompt = expect(
        login(shared, "taro", PASSWORD, InputMode.CHALLENGE),
        Result.CHALLENGE,
        Reason.OTP_CHALLENGE,
    )
    for _ in range(5):
        login(shared, "hanako", PASSWORD + wrong_code(clock))
    outcome = login(shared, "taro", code(clock), state=prompt.state)
    expect(outcome, Result.REJECT, Reason.TOKEN_SUSPENDED)
    assert token(shared).fail_count == 5


# Modes


def test_split_mode(shared: App, clock: FrozenClock) -> None:
    expect(login(shared, "taro", PASSWORD), Result.REJECT, Reason.BAD_PASSWORD)
    expect(login(shared, "taro", PASSWORD + "12ab56"), Result.REJECT, Reason.MALFORMED_OTP)
    assert token(shared).fail_count == 1
    expect(login(shared, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


def test_challenge_mode(shared: App, clock: FrozenClock) -> None:
    prompt = expect(
        login(shared, "taro", PASSWORD, InputMode.CHALLENGE),
        Result.CHALLENGE,
        Reason.OTP_CHALLENGE,
    )
    assert prompt.prompt is Stage.OTP
    assert prompt.state is not None
    expect(login(shared, "taro", code(clock), state=prompt.state), Result.ACCEPT, Reason.OK)
    # Single use: the same State again is refused, whatever it carries.
    next_step(clock)
    expect(login(shared, "taro", code(clock), state=prompt.state), Result.REJECT, Reason.BAD_STATE)
    expect(
        login(shared, "taro", PASSWORD + code(clock), InputMode.CHALLENGE),
        Result.REJECT,
        Reason.BAD_PASSWORD,
    )


def test_states_are_random_through_and_through(shared: App) -> None:
    # Whoever guesses a State answers another user's OTP challenge after that user typed
    # the password: 160 random bits each (SPEC: at least 128), so no two share a run of four
    # bytes at one place, nor does one repeat a run of its own (a counter, a clock or a short
    # random value spread out would).
    states = [login(shared, "taro", PASSWORD, InputMode.CHALLENGE).state for _ in range(40)]
    runs: set[tuple[int, bytes]] = set()
    for state in states:
        assert state is not None
        assert len(state) >= 16
        own = [state[at : at + 4] for at in range(len(state) - 3)]
        assert len(set(own)) == len(own), state.hex()
        for at, run in enumerate(own):
            assert (at, run) not in runs, state.hex()
            runs.add((at, run))


def test_challenge_expires_after_the_timeout(shared: App, clock: FrozenClock) -> None:
    early = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    late = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    clock.advance(119)
    expect(login(shared, "taro", code(clock), state=early.state), Result.ACCEPT, Reason.OK)
    clock.advance(2)  # 121 s after the challenge
    outcome = login(shared, "taro", code(clock, offset=1), state=late.state)
    expect(outcome, Result.REJECT, Reason.BAD_STATE)
    assert token(shared).fail_count == 0


def test_challenge_timeout_follows_the_policy(
    make_app: Callable[..., App], clock: FrozenClock
) -> None:
    app = make_app(policy={"challenge_timeout": 10})
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    prompt = login(app, "taro", PASSWORD, InputMode.CHALLENGE)
    clock.advance(11)
    expect(login(app, "taro", code(clock), state=prompt.state), Result.REJECT, Reason.BAD_STATE)


def test_a_state_for_another_login_is_rejected_and_used_up(shared: App, clock: FrozenClock) -> None:
    prompt = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    expect(
        login(shared, "hanako", code(clock), state=prompt.state), Result.REJECT, Reason.BAD_STATE
    )
    expect(login(shared, "taro", code(clock), state=prompt.state), Result.REJECT, Reason.BAD_STATE)
    assert token(shared).fail_count == 0


def test_a_challenge_answer_resent_elsewhere_is_accepted_again_and_no_other(
    shared: App, clock: FrozenClock
) -> None:
    prompt = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    answer = bytes(range(16))
    first = login(shared, "taro", code(clock), state=prompt.state, request_id=answer)
    expect(first, Result.ACCEPT, Reason.OK)
    # The same answer again (its reply was lost; the NAS asks another node): accepted again,
    # nothing counted.
    again = login(shared, "taro", code(clock), state=prompt.state, request_id=answer)
    expect(again, Result.ACCEPT, Reason.OK)
    assert token(shared).fail_count == 0
    # Any other answer to the used State is refused as before.
    other = login(shared, "taro", code(clock), state=prompt.state, request_id=bytes(16))
    expect(other, Result.REJECT, Reason.BAD_STATE)
    later = login(shared, "taro", code(clock), state=prompt.state)
    expect(later, Result.REJECT, Reason.BAD_STATE)
    assert token(shared).fail_count == 0


def test_a_wrong_answer_resent_is_refused_and_counted_once(shared: App, clock: FrozenClock) -> None:
    prompt = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    answer = bytes(range(16))
    first = login(shared, "taro", wrong_code(clock), state=prompt.state, request_id=answer)
    expect(first, Result.REJECT, Reason.BAD_OTP)
    # Copies of that packet (a replay, or a resend to another node) would otherwise each count
    # a failure: five of them suspend the token for every sharer without knowing a password.
    for _ in range(5):
        again = login(shared, "taro", wrong_code(clock), state=prompt.state, request_id=answer)
        expect(again, Result.REJECT, Reason.BAD_STATE)
    assert token(shared).fail_count == 1
    assert user(shared, "hanako").state is OtpState.ACTIVE


def test_a_used_state_with_its_answers_authenticator_takes_no_other_code(
    shared: App, clock: FrozenClock
) -> None:
    """The State and the Request Authenticator travel in clear: together they prove nothing."""
    prompt = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    answer = bytes(range(16))
    expect(login(shared, "taro", code(clock), state=prompt.state, request_id=answer),
           Result.ACCEPT, Reason.OK)  # fmt: skip
    # A minute later, the next code without the password: a new login, not a resend.
    next_step(clock)
    later = login(shared, "taro", code(clock), state=prompt.state, request_id=answer)
    expect(later, Result.REJECT, Reason.BAD_STATE)
    # Nor can wrong codes under them lock the token for its sharers.
    for _ in range(5):
        wrong = login(shared, "taro", wrong_code(clock), state=prompt.state, request_id=answer)
        expect(wrong, Result.REJECT, Reason.BAD_STATE)
    assert token(shared).fail_count == 0
    assert not user(shared, "hanako").suspended
    # The next code still works for a real login.
    expect(login(shared, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


def test_expired_challenges_are_purged_in_slices(shared: App, clock: FrozenClock) -> None:
    used = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    expect(login(shared, "taro", code(clock), state=used.state), Result.ACCEPT, Reason.OK)
    pending = [login(shared, "hanako", PASSWORD, InputMode.CHALLENGE).state for _ in range(2)]
    clock.advance(shared.settings.policy.challenge_timeout - 1)
    live = login(shared, "hanako", PASSWORD, InputMode.CHALLENGE)
    clock.advance(1)  # the first three have expired, the last has not
    with shared.hot.transaction() as writer:
        assert writer.purge_challenges(clock(), limit=2) == 2
    with shared.hot.transaction() as writer:
        assert writer.purge_challenges(clock(), limit=2) == 1
    for state in (used.state, *pending):
        assert state is not None
        assert shared.hot.challenge(challenge_key("", state)) is None
    assert live.state is not None
    assert shared.hot.challenge(challenge_key("", live.state)) is not None


def test_a_state_used_without_an_authenticator_is_used_up(shared: App, clock: FrozenClock) -> None:
    prompt = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    expect(login(shared, "taro", code(clock), state=prompt.state), Result.ACCEPT, Reason.OK)
    next_step(clock)
    expect(login(shared, "taro", code(clock), state=prompt.state), Result.REJECT, Reason.BAD_STATE)


def test_an_unknown_state_is_rejected(shared: App, clock: FrozenClock) -> None:
    outcome = login(shared, "taro", code(clock), state=b"\x00" * 20)
    expect(outcome, Result.REJECT, Reason.BAD_STATE)


def test_auto_mode_with_a_password_that_ends_in_digits(app: App, clock: FrozenClock) -> None:
    digits_password = "tanuki314159"
    import_token(app)
    add_user(app, "taro", password=digits_password)
    activated(app, clock, "taro")
    prompt = login(app, "taro", digits_password, InputMode.AUTO)
    expect(prompt, Result.CHALLENGE, Reason.OTP_CHALLENGE)
    expect(login(app, "taro", code(clock), state=prompt.state), Result.ACCEPT, Reason.OK)
    next_step(clock)
    expect(
        login(app, "taro", digits_password + code(clock), InputMode.AUTO), Result.ACCEPT, Reason.OK
    )
    assert token(app).fail_count == 0


def test_otp_mode(shared: App, clock: FrozenClock) -> None:
    add_user(shared, "kojima")
    expect(login(shared, "kojima", "", InputMode.OTP), Result.ACCEPT, Reason.PASSWORD_ONLY)
    expect(login(shared, "taro", wrong_code(clock), InputMode.OTP), Result.REJECT, Reason.BAD_OTP)
    assert token(shared).fail_count == 1
    expect(login(shared, "taro", code(clock), InputMode.OTP), Result.ACCEPT, Reason.OK)
    assert token(shared).fail_count == 0


# Revoke, re-registration, expiry, disabled


def test_revoke_leaves_the_token_and_sharers_alone(shared: App, clock: FrozenClock) -> None:
    add_admin(shared)
    login(shared, "hanako", PASSWORD + wrong_code(clock))
    revoked = shared.admin().revoke("chiroadm", CONFIRMATION, ["taro"])
    assert [(v.login, v.serial, v.state) for v in revoked] == [("taro", SERIAL, OtpState.REVOKED)]
    assert user(shared, "taro").state is OtpState.REVOKED
    assert user(shared, "taro").serial is None
    assert token(shared).users == ("hanako",)
    assert token(shared).fail_count == 1
    expect(login(shared, "hanako", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    # The revoked user is asked to activate again, and may take the same token.
    state = _serial_prompt(shared, "taro")
    otp_prompt = login(shared, "taro", SERIAL, state=state)
    next_step(clock)
    expect(
        login(shared, "taro", code(clock), state=otp_prompt.state), Result.ACCEPT, Reason.ACTIVATED
    )
    assert user(shared, "taro").state is OtpState.ACTIVE
    assert token(shared).users == ("hanako", "taro")


def test_expiry_at_the_instant(app: App, clock: FrozenClock) -> None:
    expires = clock() + timedelta(days=10)
    import_token(app, expires=expires)
    add_user(app, "taro")
    activated(app, clock, "taro")
    clock.now = just_before(expires)
    expect(login(app, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)
    assert user(app, "taro").state is OtpState.ACTIVE
    clock.now = expires
    next_code = code(clock, offset=1)
    expect(login(app, "taro", PASSWORD + next_code), Result.REJECT, Reason.TOKEN_EXPIRED)
    expect(login(app, "taro", "wrong"), Result.REJECT, Reason.TOKEN_EXPIRED)
    assert user(app, "taro").state is OtpState.EXPIRED
    assert user(app, "taro").token_expires == expires
    assert token(app).fail_count == 0
    assert not user(app, "taro").suspended


# The instant a request is judged at: when it was received, however long it then waited


def test_a_code_received_in_its_step_is_judged_there_when_decided_two_steps_later(
    shared: App, clock: FrozenClock
) -> None:
    # Requests waiting behind a batch's commit, or for a hash thread: decided at the clock of
    # the moment the worker got to them, a code typed in step N was checked against N+2,
    # outside the window, and rejected as wrong (and counted).
    received = clock()
    step = time_step(received, 60)
    typed = PASSWORD + code(clock)
    clock.advance(120)
    assert time_step(clock(), 60) == step + 2
    request = AuthRequest("taro", typed, InputMode.SPLIT, received=received)
    expect(shared.authenticator().authenticate(request), Result.ACCEPT, Reason.OK)
    assert shared.hot.token(SERIAL).last_step == step  # type: ignore[union-attr]
    assert token(shared).fail_count == 0
    # Judged when decided, a code of step N is outside the window of N+2.
    typed = PASSWORD + code(clock, offset=-2)
    expect(login(shared, "hanako", typed), Result.REJECT, Reason.BAD_OTP)


def test_an_expiry_passed_while_a_request_waited_does_not_decide_it(
    app: App, clock: FrozenClock
) -> None:
    expires = clock() + timedelta(days=10)
    import_token(app, expires=expires)
    add_user(app, "taro")
    activated(app, clock, "taro")
    clock.now = just_before(expires)
    received = clock()
    request = AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT, received=received)
    clock.now = expires + timedelta(seconds=1)  # before it is decided
    prepared = app.authenticator().prepare(request)
    clock.now = expires + timedelta(seconds=2)  # and before its batch commits
    (outcome,) = app.authenticator().commit([prepared])
    expect(outcome, Result.ACCEPT, Reason.OK)
    # A request received after the expiry is refused, however early it is decided.
    late = AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT, received=expires)
    clock.now = just_before(expires)
    expect(app.authenticator().authenticate(late), Result.REJECT, Reason.TOKEN_EXPIRED)


def test_a_start_date_reached_while_a_request_waited_does_not_decide_it(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    add_user(app, "taro")
    app.admin().issue("taro", date(2026, 12, 2))
    start = datetime(2026, 12, 2, tzinfo=UTC)
    request = AuthRequest("taro", PASSWORD, InputMode.CHALLENGE, received=just_before(start))
    clock.now = start + timedelta(seconds=1)
    expect(app.authenticator().authenticate(request), Result.ACCEPT, Reason.PASSWORD_ONLY)
    request = AuthRequest("taro", PASSWORD, InputMode.CHALLENGE, received=start)
    expect(app.authenticator().authenticate(request), Result.CHALLENGE, Reason.SERIAL_CHALLENGE)


def test_a_challenge_answered_in_time_is_not_expired_by_the_wait(
    shared: App, clock: FrozenClock
) -> None:
    asked = login(shared, "taro", PASSWORD, InputMode.CHALLENGE)
    clock.advance(119)
    received = clock()
    answer = code(clock)
    clock.advance(2)  # 121 s after the challenge
    request = AuthRequest("taro", answer, InputMode.CHALLENGE, asked.state, received=received)
    expect(shared.authenticator().authenticate(request), Result.ACCEPT, Reason.OK)


def test_disabled_token(shared: App, clock: FrozenClock) -> None:
    shared.admin().set_disabled(SERIAL, True)
    expect(login(shared, "taro", PASSWORD + code(clock)), Result.REJECT, Reason.TOKEN_DISABLED)
    expect(
        login(shared, "taro", PASSWORD + wrong_code(clock)), Result.REJECT, Reason.TOKEN_DISABLED
    )
    assert token(shared).fail_count == 0
    shared.admin().set_disabled(SERIAL, False)
    expect(login(shared, "taro", PASSWORD + code(clock)), Result.ACCEPT, Reason.OK)


# Retransmission of the request that used a step


def test_retransmission_is_accepted_again_only_for_the_same_step(
    shared: App, clock: FrozenClock
) -> None:
    request = bytes(range(16))
    text = PASSWORD + code(clock)
    expect(login(shared, "taro", text, request_id=request), Result.ACCEPT, Reason.OK)
    expect(login(shared, "taro", text, request_id=request), Result.ACCEPT, Reason.OK)
    expect(login(shared, "taro", text, request_id=bytes(16)), Result.REJECT, Reason.REPLAY)
    assert token(shared).fail_count == 1
    next_step(clock)
    expect(
        login(shared, "hanako", PASSWORD + code(clock), request_id=bytes(16)),
        Result.ACCEPT,
        Reason.OK,
    )
    expect(login(shared, "taro", text, request_id=request), Result.REJECT, Reason.REPLAY)


def test_password_is_verified_for_an_admin_too(app: App) -> None:
    add_admin(app)
    expect(login(app, "chiroadm", PASSWORD), Result.ACCEPT, Reason.PASSWORD_ONLY)
    # The confirmation password is not a login password.
    expect(login(app, "chiroadm", CONFIRMATION), Result.REJECT, Reason.BAD_PASSWORD)


# SPEC §3.1: a Reject costs the same hashing whoever sent it


class CountingHashing(PasswordHashing):
    """The configured hashing, counting every verification (a burn is one too)."""

    def __init__(self, params: HashingParams) -> None:
        super().__init__(params)
        self.verifications = 0

    def verify(self, stored: str, offered: str) -> bool:
        self.verifications += 1
        return super().verify(stored, offered)


@pytest.fixture
def everyone(shared: App, clock: FrozenClock) -> tuple[App, CountingHashing]:
    """Logins whose Rejects come from every branch of SPEC §3, and a counting hashing."""
    add_user(shared, "kojima")  # unregistered
    import_token(shared, "34567890")
    add_user(shared, "jiro")
    activated(shared, clock, "jiro", "34567890")
    for _ in range(5):
        login(shared, "jiro", PASSWORD + wrong_code(clock))
    add_user(shared, "saburo")
    for _ in range(10):
        login(shared, "saburo", "wrong password")
    import_token(shared, "45678901", digits=8)
    add_user(shared, "hachi")
    activated(shared, clock, "hachi", "45678901", digits=8)
    assert token(shared, "34567890").suspended
    assert user(shared, "saburo").suspended
    counting = CountingHashing(shared.settings.hashing)
    return replace(shared, hashing=counting), counting


@pytest.mark.parametrize(
    ("mode", "text", "budget"),
    [
        (InputMode.AUTO, "guess 123456", 2),  # as password + OTP, then as the password
        (InputMode.AUTO, "guess", 1),
        (InputMode.AUTO, "guess １２３４５６", 2),  # digits typed full-width split too
        (InputMode.AUTO, "guess ١٢٣٤٥٦", 2),  # and Arabic-Indic ones
        (InputMode.SPLIT, "guess 123456", 1),
        (InputMode.SPLIT, "12345", 1),  # too short to split: one all the same
        (InputMode.OTP, "", 0),  # no password is checked: none, not even for "nobody"
    ],
)
def test_every_reject_costs_the_same_hashing(
    everyone: tuple[App, CountingHashing],
    clock: FrozenClock,
    mode: InputMode,
    text: str,
    budget: int,
) -> None:
    app, counting = everyone
    offered = text or wrong_code(clock)
    cases = [
        ("nobody", offered),  # unknown
        ("taro", offered),  # active, wrong password (wrong code in OTP mode)
        ("jiro", offered),  # its token suspended
        ("saburo", offered),  # suspended by wrong passwords
        ("hachi", offered),  # an 8-digit token: a 6-digit tail does not split for it
    ]
    if mode is not InputMode.OTP:  # where the portal vouches for it, no password is wrong
        cases.append(("kojima", offered))  # unregistered, wrong password
    if len(text) > 6:  # the right password and a wrong code is a Reject too
        cases.append(("hanako", PASSWORD + wrong_code(clock)))
    for name, password in cases:
        before = counting.verifications
        outcome = login(app, name, password, mode)
        assert outcome.result is Result.REJECT, (name, outcome.reason)
        assert counting.verifications - before == budget, (name, outcome.reason)
