"""The write of one decided request inside a batch's transaction, and the decision that stands.

``Authenticator.commit`` opens the transaction and locks the batch's rows; ``EffectWriter``
then writes each request's effects there, each a single conditional statement, and returns
the decision that stands once the races it may have lost since it was decided are known
(``races.py`` tells them apart). Suspensions and activations are audited and logged here.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime

from otpcore.attempts import Prepared, challenge_key
from otpcore.crypto import Keyring
from otpcore.decision import (
    Bind,
    ConsumeStep,
    CountActivationFailure,
    CountPasswordFailure,
    CountTokenFailure,
    Decision,
    ResetPasswordFailures,
    reject,
)
from otpcore.errors import KeyFileError
from otpcore.logfields import field as log_value
from otpcore.model import Reason, Result, User
from otpcore.policy import Policy
from otpcore.races import changed_since, resent_meanwhile, used_by_this_request
from otpcore.store.hot_writer import HotWriter, Standing

log = logging.getLogger(__name__)


class EffectWriter:
    """Writes a prepared request's effects with a batch's ``HotWriter``."""

    def __init__(self, keyring: Keyring, policy: Policy, actor: str) -> None:
        self.keyring = keyring
        self.policy = policy
        self.actor = actor

    def _consume(
        self,
        writer: HotWriter,
        login: str,
        item: Prepared,
        effect: ConsumeStep,
        now: datetime,
        *,
        binding: bool,
    ) -> tuple[bool, Standing | None]:
        """Use the step of ``effect`` while the token still has the seed it was matched with;
        when refused, also the standing that tells why (None: the user is gone).

        A ``token import --update`` that replaced the seed (a leaked one, say) since the
        request was decided refuses it: the code was the old seed's. A key rotation re-seals
        the same seed, which is no reason to refuse: the step is then used under the seed as
        sealed now.
        """
        sealed = item.sealed
        standing = None
        for _ in range(2):  # the rows are locked now: nobody re-seals them a second time
            if sealed is not None and writer.consume_step(
                login,
                effect.serial,
                effect.step,
                effect.period,
                item.request.request_id,
                sealed,
                now=now,
                binding=binding,
                revoked=item.user is not None and item.user.revoked,
            ):
                return True, None
            standing = writer.standing(login, effect.serial, now)
            now_sealed = standing.sealed_secret if standing is not None else None
            if sealed is None or now_sealed == sealed:
                break
            if not self._same_seed(effect.serial, sealed, now_sealed):
                break
            sealed = now_sealed
        return False, standing

    def _same_seed(self, serial: str, sealed: bytes | None, other: bytes | None) -> bool:
        """True when two sealed seeds of a token hold the same seed."""
        if sealed is None or other is None:
            return False
        if sealed == other:
            return True
        try:
            first = self.keyring.unseal(serial, sealed)
            second = self.keyring.unseal(serial, other)
        except KeyFileError:
            return False
        return hmac.compare_digest(first, second)

    def apply(
        self, writer: HotWriter, item: Prepared, now: datetime, written: datetime
    ) -> Decision:
        """Write one request's effects; returns the decision that stands after any lost race.

        ``now`` is the instant the request was judged at, which the conditional writes check
        expiries against; ``written`` is the commit's, for the audit.
        """
        decision = item.decision
        key = item.request.challenge_key
        if item.consume_state and key is not None:
            # A request without an authenticator (otpctl check) is never resent: a random
            # stand-in consumes the State all the same.
            answer = item.request.request_id or secrets.token_bytes(16)
            if not writer.take_challenge(key, answer) and not resent_meanwhile(writer, item, key):
                return bad_state()  # another request (or node) used this State first
        user = item.user
        if user is None:
            return decision
        if item.rechecks_user:
            current = writer.user(user.login)
            if current is None:
                return reject(Reason.UNKNOWN_USER, decision.serial)  # deleted meanwhile
            if current.suspended:
                return reject(Reason.USER_SUSPENDED, decision.serial)
            if _otp_state_changed(user, current):
                # Bound to a token or issued one meanwhile (an import, otpctl user issue):
                # what the password alone opened, or asked for next, is no longer so.
                return reject(Reason.USER_CHANGED, decision.serial)
        binding = any(isinstance(effect, Bind) for effect in decision.effects)
        for effect in decision.effects:
            if not isinstance(effect, ConsumeStep):
                continue
            used, standing = self._consume(writer, user.login, item, effect, now, binding=binding)
            if used:
                continue
            if used_by_this_request(standing, effect, item.request):
                # This very request, resent to this node while another node committed
                # it (SPEC §4): answered as it was there, and nothing is written again.
                return Decision(decision.result, decision.reason, decision.serial, resent=True)
            changed = changed_since(standing, effect.serial, binding, effect.period)
            if changed is None and standing is not None:
                sealed = standing.sealed_secret
                if not self._same_seed(effect.serial, item.sealed, sealed):
                    changed = Reason.SEED_CHANGED  # not a replay: nothing to count
                elif binding and standing.user_revoked and not user.revoked:
                    changed = Reason.TOKEN_REVOKED  # revoked as its activation was decided
            if changed is not None:
                return reject(changed, effect.serial)
            decision = decision.lost_race()
            break
        for effect in decision.effects:
            if isinstance(effect, CountTokenFailure):
                threshold = self.policy.lockout_threshold
                counted = writer.count_token_failure(user.login, effect.serial, threshold, now)
                if counted is None:
                    # Nothing counted: the token was suspended by other requests since this
                    # one was read (SPEC §2), or the user was revoked from it or deleted and
                    # is no longer one of its users. That is the reason to give.
                    standing = writer.standing(user.login, effect.serial, now)
                    changed = changed_since(standing, effect.serial, False)
                    return reject(changed or Reason.TOKEN_SUSPENDED, effect.serial)
                if counted:
                    sharers = writer.sharers(effect.serial)
                    detail = (
                        f"token {effect.serial} after {self.policy.lockout_threshold} "
                        "consecutive wrong OTPs"
                    )
                    writer.audit(written, self.actor, "suspend", sharers, "ok", detail)
                    log.warning("token suspended serial=%s users=%s", log_value(effect.serial),
                                ",".join(log_value(login) for login in sharers))  # fmt: skip
            elif isinstance(effect, CountPasswordFailure):
                threshold = self.policy.password_lockout_threshold
                if writer.count_password_failure(user.login, threshold):
                    detail = f"{threshold} consecutive wrong passwords"
                    writer.audit(written, self.actor, "suspend", [user.login], "ok", detail)
                    log.warning("user suspended user=%s cause=password", log_value(user.login))
            elif isinstance(effect, CountActivationFailure):
                threshold = self.policy.lockout_threshold
                if writer.count_activation_failure(user.login, threshold):
                    detail = f"{threshold} consecutive failed activations"
                    writer.audit(written, self.actor, "suspend", [user.login], "ok", detail)
                    log.warning("user suspended user=%s cause=activation", log_value(user.login))
            elif isinstance(effect, ResetPasswordFailures):
                # Not only when the user was read with failures: a wrong password may have
                # committed since (earlier in this batch, on another node). The statement
                # writes nothing when there is nothing to clear.
                writer.reset_password_failures(user.login)
            elif isinstance(effect, Bind):
                if not writer.bind(user.login, effect.serial):
                    return reject(Reason.NOT_AWAITING_ACTIVATION, effect.serial)
                detail = f"serial {effect.serial}"
                writer.audit(written, self.actor, "activate", [user.login], "ok", detail)
        verified = user.password_hash
        if item.new_hash is not None and verified and decision.result is not Result.REJECT:
            writer.set_password_hash(user.login, item.new_hash, verified)
        if item.new_challenge is not None and decision.next_stage is not None:
            expires = item.expires or now
            stored = challenge_key(item.request.client, item.new_challenge)
            writer.add_challenge(
                stored, user.login, decision.next_stage.value, decision.serial, expires
            )
        return decision


def _otp_state_changed(decided: User, now: User) -> bool:
    """True when what decides the user's OTP state changed since the request was decided."""
    before = (decided.serial, decided.start_date, decided.revoked)
    return before != (now.serial, now.start_date, now.revoked)


def bad_state() -> Decision:
    """The Reject of an answer whose challenge State is unknown, used, expired or another's."""
    return reject(Reason.BAD_STATE)
