"""What a batch's write concludes from rows another request changed after it was decided."""

from __future__ import annotations

import pytest

from otpcore.attempts import AuthRequest
from otpcore.decision import ConsumeStep, Decision, ResetPasswordFailures
from otpcore.model import Reason, Result, Stage
from otpcore.races import asks_next, changed_since, used_by_this_request
from otpcore.store.hot_writer import Standing

SERIAL = "23456789"
REQUEST = bytes(range(16))
STEP = 29_500_000


def standing(**fields: object) -> Standing:
    values: dict[str, object] = {
        "user_suspended": False,
        "bound_to": SERIAL,
        "token_suspended": False,
        "token_disabled": False,
        "last_step": STEP,
        "last_request": REQUEST,
        "period": 60,
    }
    values.update(fields)
    return Standing(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (Decision(Result.CHALLENGE, Reason.ACTIVATION_OTP_CHALLENGE, SERIAL,
                  next_stage=Stage.ACTIVATION_OTP), True),
        (Decision(Result.CHALLENGE, Reason.OTP_CHALLENGE, SERIAL, next_stage=Stage.OTP,
                  effects=(ResetPasswordFailures(),)), False),
        (Decision(Result.REJECT, Reason.TOKEN_SUSPENDED, SERIAL), False),
        (Decision(Result.ACCEPT, Reason.OK, SERIAL), False),
    ],
    ids=["serial-asks-for-the-code", "otp-challenge", "reject", "resent-accept"],
)  # fmt: skip
def test_only_a_question_that_writes_nothing_may_be_asked_again(
    decision: Decision, expected: bool
) -> None:
    # A State used up by this same answer on another node lets the answer go on only to
    # the next question (the activation's code) or to find its own step used: a Reject or
    # an Accept that writes nothing must not take a used State as fresh.
    assert asks_next(decision) is expected


def test_a_step_used_by_this_same_request_is_its_own_while_nothing_else_changed() -> None:
    effect = ConsumeStep(SERIAL, STEP, 60)
    request = AuthRequest("taro", "", request_id=REQUEST)
    assert used_by_this_request(standing(), effect, request)
    assert not used_by_this_request(None, effect, request)
    assert not used_by_this_request(standing(last_request=bytes(16)), effect, request)
    assert not used_by_this_request(standing(last_step=STEP + 1), effect, request)
    assert not used_by_this_request(standing(token_suspended=True), effect, request)
    # An import gave the token another period since: the recorded step is no longer this one.
    assert not used_by_this_request(standing(period=30), effect, request)
    assert not used_by_this_request(standing(), effect, AuthRequest("taro", ""))


@pytest.mark.parametrize(
    ("fields", "binding", "reason"),
    [
        ({}, False, None),
        ({"user_suspended": True}, False, Reason.USER_SUSPENDED),
        ({"token_exists": False}, False, Reason.BAD_SERIAL),
        ({"bound_to": None}, False, Reason.TOKEN_REVOKED),
        ({"bound_to": "other"}, False, Reason.TOKEN_REVOKED),
        ({"bound_to": None}, True, None),
        ({}, True, Reason.NOT_AWAITING_ACTIVATION),
        ({"token_suspended": True}, False, Reason.TOKEN_SUSPENDED),
        ({"token_disabled": True}, False, Reason.TOKEN_DISABLED),
        ({"token_expired": True}, False, Reason.TOKEN_EXPIRED),
        ({"period": 30}, False, Reason.PERIOD_CHANGED),
    ],
)
def test_what_changed_since_the_decision_names_the_reason(
    fields: dict[str, object], binding: bool, reason: Reason | None
) -> None:
    assert changed_since(standing(**fields), SERIAL, binding, 60) is reason
    assert changed_since(None, SERIAL, binding, 60) is Reason.UNKNOWN_USER
