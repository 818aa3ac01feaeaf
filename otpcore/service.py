"""Authentication as a use case: read, decide, then write atomically — many requests at once.

``prepare`` reads without holding any lock and decides (it may hash a password); ``commit``
writes the effects of many prepared requests in one transaction (group commit), each as a
single conditional statement, so the outcome stays right with several processes and nodes
and one fsync serves a whole batch. Nothing is answered before its commit returns. The
transaction, its row locks and its retries are here; what each request writes in it is
``EffectWriter``'s (``effects.py``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from otpcore.attempts import (
    NOT_WRITTEN,
    AuthOutcome,
    AuthRequest,
    NotWritten,
    Prepared,
    hash_budget,
)
from otpcore.codes import read_serial
from otpcore.convert import token_of
from otpcore.crypto import Keyring
from otpcore.decision import Credentials, Decision, decide, reject, same_request
from otpcore.effects import EffectWriter, bad_state
from otpcore.errors import RowsHeld, WriteConflict
from otpcore.logfields import field as log_value
from otpcore.model import InputMode, Reason, Result, Stage, Token, User
from otpcore.passwords import PasswordHashing
from otpcore.policy import Policy
from otpcore.ports import Clock
from otpcore.races import asks_next, rows_written
from otpcore.store.hot import HotStore, TokenRecord
from otpcore.store.hot_connections import LOCK_WAIT_MS
from otpcore.store.hot_writer import HeldRows

log = logging.getLogger(__name__)

CHALLENGE_ID_BYTES = 20  # 160 random bits in every State
# A batch failed as a lock cycle with another transaction (an admin command taking rows in
# its own order, say) is written again, its writes being conditional: the first tries see
# the other transaction gone.
WRITE_ATTEMPTS = 3


class _CountingVerifier:
    """The configured verification, counted."""

    def __init__(self, hashing: PasswordHashing) -> None:
        self.hashing = hashing
        self.calls = 0

    def __call__(self, stored: str, offered: str) -> bool:
        self.calls += 1
        return self.hashing.verify(stored, offered)


class Authenticator:
    """Runs SPEC §3 against the store; shared by the RADIUS daemon and ``otpctl check``."""

    def __init__(
        self,
        hot: HotStore,
        keyring: Keyring,
        hashing: PasswordHashing,
        policy: Policy,
        clock: Clock,
        actor: str = "radius",
    ) -> None:
        self.hot = hot
        self.keyring = keyring
        self.hashing = hashing
        self.policy = policy
        self.clock = clock
        self.actor = actor
        self._effects = EffectWriter(keyring, policy, actor)

    def authenticate(self, request: AuthRequest) -> AuthOutcome:
        """Decide one request and commit what it changes before returning."""
        return _written(self.commit([self.prepare(request)])[0])

    def activate(self, login: str, serial: str, otp: str) -> AuthOutcome:
        """Activation by serial and OTP in one step (SPEC §3.5), for portals without challenges."""
        request = AuthRequest(login, otp, InputMode.OTP)
        return _written(self.commit([self.prepare(request, activation_serial=serial)])[0])

    def activation_refusal(self, login: str, serial: str) -> AuthOutcome | None:
        """The Reject an activation of ``serial`` for ``login`` meets whatever its OTP, when that
        Reject counts nothing (not awaiting activation, a suspension, an unknown user); None
        when the OTP is what decides. Nothing is written."""
        item = self.prepare(AuthRequest(login, "", InputMode.OTP), activation_serial=serial)
        decision = item.decision
        if decision.result is Result.REJECT and not decision.effects:
            return _outcome(item, decision)
        return None

    def prepare(self, request: AuthRequest, *, activation_serial: str | None = None) -> Prepared:
        """Read what the request concerns and decide it, at the instant it was received;
        nothing is written."""
        now = request.received if request.received is not None else self.clock()
        stage, serial = Stage.LOGIN, None
        if activation_serial is not None:
            stage, serial = Stage.ACTIVATION_OTP, read_serial(activation_serial)
        consume_state = request.state is not None
        resent = False
        if request.challenge_key is not None:
            challenge = self.hot.challenge(request.challenge_key)
            if challenge is None:
                return Prepared(request, bad_state())
            if challenge.used_by is not None:
                # Used already: only the answer that used it, resent to this node after the
                # first node's reply was lost, may be decided again (SPEC §4).
                if not same_request(challenge.used_by, request.request_id):
                    return Prepared(request, bad_state())
                consume_state, resent = False, True
            if challenge.login != request.login or challenge.expires_at <= now:
                return Prepared(request, bad_state(), consume_state=consume_state)
            stage, serial = Stage(challenge.stage), challenge.serial
        user = self.hot.user(request.login)
        if user is None:
            self._burn(request, hash_budget(request))
            return Prepared(request, reject(Reason.UNKNOWN_USER))
        if stage is Stage.ACTIVATION_SERIAL:
            serial = read_serial(request.password)
        elif stage is not Stage.ACTIVATION_OTP:
            serial = user.serial
        record = self.hot.token(serial) if serial else None
        asked_serial = stage is Stage.ACTIVATION_SERIAL
        if (
            resent
            and not asked_serial
            and (record is None or not same_request(record.last_request, request.request_id))
        ):
            # The first answer did not use a step (a wrong code): deciding it again would
            # count its failure again, once per copy an attacker chose to send.
            return Prepared(request, bad_state())
        token = self._unseal(record) if record is not None else None
        credentials = Credentials(request.password, request.mode, stage, request.request_id)
        verify = _CountingVerifier(self.hashing)
        decision = decide(user, token, credentials, now, self.policy, verify)
        again = (
            asks_next(decision)
            if asked_serial
            else (decision.result is Result.ACCEPT and not decision.effects)
        )
        if resent and not again:
            # A copy of the answer that used this State is the same code for the same step
            # and changes nothing, or the same right serial, whose next question counts
            # nothing (the first node's reply was lost; the copy is asked for the code on a
            # State of its own). Anything else under a used State (a later code, a wrong one,
            # a wrong serial, counted once already) is a new answer to a challenge that is
            # gone, not a resend (SPEC §4).
            return Prepared(request, bad_state())
        if resent:
            decision = replace(decision, resent=True)
        if decision.result is Result.REJECT:
            self._burn(request, hash_budget(request) - verify.calls)
        new_challenge = (
            secrets.token_bytes(CHALLENGE_ID_BYTES) if decision.next_stage is not None else None
        )
        return Prepared(
            request,
            decision,
            user,
            consume_state=consume_state,
            new_hash=self._rehash(user, decision),
            new_challenge=new_challenge,
            expires=now + timedelta(seconds=self.policy.challenge_timeout),
            sealed=record.sealed_secret if record is not None else None,
            judged_at=now,
        )

    def commit(self, batch: Sequence[Prepared]) -> list[AuthOutcome | NotWritten]:
        """Write the effects of every prepared request in one transaction; their outcomes, or
        NotWritten for a request whose rows another transaction kept locked."""
        if not any(item.writes for item in batch):
            return [_outcome(item, item.decision) for item in batch]
        now = self.clock()
        attempt = 1
        skip_held = False
        while True:
            try:
                with self.hot.transaction() as writer:
                    held = HeldRows()
                    if not self.hot.sqlite:  # SQLite's one writer at a time forms no cycle
                        held = writer.lock(*rows_written(batch), skip_held=skip_held)
                    if held:
                        _log_held(held)
                    return [
                        NOT_WRITTEN if held and held.touches(*rows_written([item]))
                        else _outcome(item, self._effects.apply(writer, item,
                                                                item.judged_at or now, now))
                        for item in batch
                    ]  # fmt: skip
            except RowsHeld:
                if skip_held:
                    raise
                # Written again without the requests whose rows are held: the others must
                # not wait for an import or a forgotten session to end.
                skip_held = True
            except WriteConflict:
                if attempt == WRITE_ATTEMPTS:
                    raise
                attempt += 1
                log.warning("write conflict, batch written again attempt=%d", attempt)

    def _burn(self, request: AuthRequest, verifications: int) -> None:
        for _ in range(verifications):
            self.hashing.burn(request.password)

    def _unseal(self, record: TokenRecord) -> Token:
        return token_of(record, self.keyring.unseal(record.serial, record.sealed_secret))

    def _rehash(self, user: User, decision: Decision) -> str | None:
        """A new hash when the password was verified under other ``[hashing]`` parameters."""
        if user.password_hash is None or decision.password is None:
            return None
        if decision.result is Result.REJECT or not self.hashing.needs_rehash(user.password_hash):
            return None
        return self.hashing.hash(decision.password)


def _written(outcome: AuthOutcome | NotWritten) -> AuthOutcome:
    """The outcome of a request committed alone, or RowsHeld when it could not be."""
    if isinstance(outcome, NotWritten):
        raise RowsHeld(
            "the user's or token's row is locked by another transaction (an import, another "
            f"session) and stayed so for over {LOCK_WAIT_MS / 1000:g} s: nothing was changed; "
            "try again"
        )
    return outcome


def _log_held(held: HeldRows) -> None:
    """Name the rows held, so that whoever holds them can be found."""
    shown = [f"user={log_value(login)}" for login in sorted(held.logins)[:5]]
    shown += [f"serial={log_value(serial)}" for serial in sorted(held.serials)[:5]]
    more = len(held.logins) + len(held.serials) - len(shown)
    log.warning("rows locked by another transaction for over %g s, their requests not "
                "written: %s%s%s", LOCK_WAIT_MS / 1000, " ".join(shown),
                f" and {more} more" if more > 0 else "",
                f" challenges={len(held.challenges)}" if held.challenges else "")  # fmt: skip


def _outcome(item: Prepared, decision: Decision) -> AuthOutcome:
    challenge = item.new_challenge if decision.result is Result.CHALLENGE else None
    return AuthOutcome(
        decision.result,
        decision.reason,
        item.request.login,
        decision.serial,
        challenge,
        decision.next_stage if challenge is not None else None,
        resent=decision.resent,
    )
