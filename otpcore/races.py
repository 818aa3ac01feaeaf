"""What a batch's write finds changed since its requests were decided: the races it can lose.

Requests are decided without a lock and written later, in one transaction per batch; another
request, worker or node may have written the same rows between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

from otpcore.attempts import AuthRequest, Prepared
from otpcore.decision import ConsumeStep, CountTokenFailure, Decision, same_request
from otpcore.model import Reason, Result
from otpcore.store.hot_writer import HotWriter, Standing


def rows_written(batch: Sequence[Prepared]) -> tuple[list[str], list[str], list[bytes]]:
    """The logins, serials and challenges whose rows a batch may write (if it loses a race
    too) or read again."""
    logins: set[str] = set()
    serials: set[str] = set()
    challenges: set[bytes] = set()
    for item in batch:
        key = item.request.challenge_key
        if item.consume_state and key is not None:
            challenges.add(key)
        decision = item.decision
        effects = (*decision.effects, *decision.on_replay)
        if item.user is not None and (effects or item.new_hash is not None or item.rechecks_user):
            logins.add(item.user.login)
        for effect in effects:
            if isinstance(effect, ConsumeStep | CountTokenFailure):
                serials.add(effect.serial)
    return sorted(logins), sorted(serials), sorted(challenges)


def asks_next(decision: Decision) -> bool:
    """True for the next question after an activation's right serial: it writes nothing,
    so the answer that led to it may be answered again with a question of its own."""
    return decision.result is Result.CHALLENGE and not decision.effects


def resent_meanwhile(writer: HotWriter, item: Prepared, state: bytes) -> bool:
    """True when the State was consumed meanwhile by this same answer, resent to this node
    while another node committed it; only an answer that uses a step may then go on, to
    find that step used by it (a wrong code's failure was counted there already), or a
    right serial, to be asked for the code."""
    request_id = item.request.request_id
    uses_a_step = any(isinstance(effect, ConsumeStep) for effect in item.decision.effects)
    return (
        request_id is not None
        and (uses_a_step or asks_next(item.decision))
        and same_request(writer.challenge_used_by(state), request_id)
    )


def used_by_this_request(
    standing: Standing | None, effect: ConsumeStep, request: AuthRequest
) -> bool:
    """True when the step a refused ``consume_step`` wanted was used by this same request,
    and the user may still use it (nothing changed since but that commit)."""
    return (
        standing is not None
        and standing.last_step == effect.step
        and same_request(standing.last_request, request.request_id)
        and changed_since(standing, effect.serial, False, effect.period) is None
    )


def changed_since(
    standing: Standing | None, serial: str, binding: bool, period: int | None = None
) -> Reason | None:
    """Why a step could not be used, when it is not that another request used it first.

    ``period``: the one the step was counted in, when a step is being used. An import that
    gave the token another period since makes it PERIOD_CHANGED: written, the step would be
    far from the restated last step, and refused, it is no replay of the user's (nothing to
    count).
    """
    if standing is None:
        # The user was deleted meanwhile: not a replay to count on a token others still use.
        return Reason.UNKNOWN_USER
    if standing.user_suspended:
        return Reason.USER_SUSPENDED
    if not standing.token_exists:
        return Reason.BAD_SERIAL  # deleted from the inventory meanwhile (an unbound token)
    if binding and standing.bound_to is not None:
        return Reason.NOT_AWAITING_ACTIVATION  # bound meanwhile (another activation won)
    if not binding and standing.bound_to != serial:
        return Reason.TOKEN_REVOKED
    if standing.token_suspended:
        return Reason.TOKEN_SUSPENDED
    if standing.token_disabled:
        return Reason.TOKEN_DISABLED
    if standing.token_expired:
        return Reason.TOKEN_EXPIRED  # an update moved its expiry into the past meanwhile
    if period is not None and standing.period != period:
        return Reason.PERIOD_CHANGED
    return None
