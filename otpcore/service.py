"""Authentication as a use case: load, decide, write atomically, answer.

The read and the write are separate short transactions so that password hashing never
holds a database lock; every write that can race (a used step, a counter) is a single
conditional statement, so the outcome stays right with several processes and nodes.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from otpcore.convert import to_token, to_user
from otpcore.crypto import Keyring, PasswordHashing
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
from otpcore.model import InputMode, Reason, Result, Stage, Token, User
from otpcore.policy import Policy
from otpcore.ports import Clock
from otpcore.store import Repo, Store

log = logging.getLogger(__name__)

CHALLENGE_ID_BYTES = 20  # 160 random bits in every State


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """One authentication attempt as the shells hand it to the core."""

    login: str
    password: str = field(repr=False)
    mode: InputMode = InputMode.AUTO
    state: bytes | None = field(default=None, repr=False)
    request_id: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What to answer, and what to log."""

    result: Result
    reason: Reason
    login: str
    serial: str | None = None
    state: bytes | None = field(default=None, repr=False)
    prompt: Stage | None = None


@dataclass(frozen=True, slots=True)
class _Loaded:
    user: User | None
    user_id: int | None
    token: Token | None
    stage: Stage
    bad_state: bool = False


class Authenticator:
    """Runs SPEC §3 against the store; shared by the RADIUS daemon and ``otpctl check``."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        hashing: PasswordHashing,
        policy: Policy,
        clock: Clock,
        actor: str = "radius",
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.hashing = hashing
        self.policy = policy
        self.clock = clock
        self.actor = actor

    def authenticate(self, request: AuthRequest) -> AuthOutcome:
        """Decide one request and commit what it changes before returning."""
        now = self.clock()
        loaded = self._load(request.login, request.password, request.state, None, now)
        return self._finish(request, loaded, now)

    def activate(self, login: str, serial: str, otp: str) -> AuthOutcome:
        """Activation by serial and OTP in one step (SPEC §3.5), for portals without challenges."""
        now = self.clock()
        loaded = self._load(login, serial, None, Stage.ACTIVATION_OTP, now)
        request = AuthRequest(login, otp, InputMode.OTP)
        return self._finish(request, replace(loaded, stage=Stage.ACTIVATION_OTP), now)

    def _load(
        self, login: str, text: str, state: bytes | None, stage: Stage | None, now: datetime
    ) -> _Loaded:
        with self.store.transaction() as repo:
            serial: str | None = None
            current = stage or Stage.LOGIN
            if state is not None:
                challenge = repo.take_challenge(state, now)
                if challenge is None or challenge.login != login:
                    return _Loaded(None, None, None, Stage.LOGIN, bad_state=True)
                current, serial = Stage(challenge.stage), challenge.serial
            row = repo.user(login)
            if row is None:
                return _Loaded(None, None, None, current)
            if current is Stage.ACTIVATION_SERIAL:
                serial = text.strip()
            elif stage is Stage.ACTIVATION_OTP:
                serial = text
            elif current is not Stage.ACTIVATION_OTP:
                serial = row.serial
            token_row = repo.token(serial) if serial else None
            token = to_token(token_row, self.keyring) if token_row is not None else None
            return _Loaded(to_user(row), row.id, token, current)

    def _finish(self, request: AuthRequest, loaded: _Loaded, now: datetime) -> AuthOutcome:
        if loaded.bad_state:
            return AuthOutcome(Result.REJECT, Reason.BAD_STATE, request.login)
        if loaded.user is None:
            self.hashing.burn(request.password)  # as long as a known user's check
        credentials = Credentials(request.password, request.mode, loaded.stage, request.request_id)
        decision = decide(
            loaded.user, loaded.token, credentials, now, self.policy, self.hashing.verify
        )
        new_hash = self._rehash(loaded.user, decision)
        challenge_id = secrets.token_bytes(CHALLENGE_ID_BYTES) if decision.next_stage else None
        user, user_id = loaded.user, loaded.user_id
        if (decision.effects or challenge_id or new_hash) and user and user_id is not None:
            with self.store.transaction() as repo:
                decision = self._apply(repo, user, user_id, decision, request, now)
                if new_hash is not None:
                    repo.set_password_hash(user_id, new_hash)
                if challenge_id is not None and decision.next_stage is not None:
                    expires = now + timedelta(seconds=self.policy.challenge_timeout)
                    repo.add_challenge(
                        challenge_id,
                        request.login,
                        decision.next_stage.value,
                        decision.serial,
                        expires,
                    )
        return AuthOutcome(
            decision.result,
            decision.reason,
            request.login,
            decision.serial,
            challenge_id if decision.result is Result.CHALLENGE else None,
            decision.next_stage,
        )

    def _rehash(self, user: User | None, decision: Decision) -> str | None:
        """A new hash when the password was verified under other ``[hashing]`` parameters."""
        if user is None or user.password_hash is None or decision.password is None:
            return None
        if decision.result is Result.REJECT or not self.hashing.needs_rehash(user.password_hash):
            return None
        return self.hashing.hash(decision.password)

    def _apply(
        self,
        repo: Repo,
        user: User,
        user_id: int,
        decision: Decision,
        request: AuthRequest,
        now: datetime,
    ) -> Decision:
        """Write a decision's effects; returns the decision that stands after any lost race."""
        for effect in decision.effects:
            if isinstance(effect, ConsumeStep) and not repo.consume_step(
                effect.serial, effect.step, effect.drift, request.request_id
            ):
                decision = decision.lost_race()
                break
        for effect in decision.effects:
            if isinstance(effect, CountTokenFailure):
                if repo.count_token_failure(effect.serial, self.policy.lockout_threshold):
                    sharers = [row.login for row in repo.sharers([effect.serial])]
                    repo.audit(
                        now,
                        self.actor,
                        "suspend",
                        sharers,
                        "ok",
                        f"token {effect.serial} after {self.policy.lockout_threshold} "
                        "consecutive wrong OTPs",
                    )
                    log.warning("token suspended serial=%s users=%s", effect.serial, sharers)
            elif isinstance(effect, CountPasswordFailure):
                threshold = self.policy.password_lockout_threshold
                if repo.count_password_failure(user_id, threshold):
                    repo.audit(
                        now,
                        self.actor,
                        "suspend",
                        [user.login],
                        "ok",
                        f"{threshold} consecutive wrong passwords",
                    )
                    log.warning("user suspended user=%s cause=password", user.login)
            elif isinstance(effect, CountActivationFailure):
                threshold = self.policy.lockout_threshold
                if repo.count_activation_failure(user_id, threshold):
                    repo.audit(
                        now,
                        self.actor,
                        "suspend",
                        [user.login],
                        "ok",
                        f"{threshold} consecutive failed activations",
                    )
                    log.warning("user suspended user=%s cause=activation", user.login)
            elif isinstance(effect, ResetPasswordFailures):
                if user.password_failures:
                    repo.reset_password_failures(user_id)
            elif isinstance(effect, Bind):
                if not repo.bind(user_id, effect.serial):
                    return Decision(Result.REJECT, Reason.NOT_AWAITING_ACTIVATION, effect.serial)
                repo.audit(
                    now, self.actor, "activate", [user.login], "ok", f"serial {effect.serial}"
                )
        return decision
