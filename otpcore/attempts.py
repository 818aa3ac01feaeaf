"""One authentication attempt as the core sees it: the request the shells hand in, the
outcome they answer and log, and a decided request awaiting its write."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from otpcore.codes import is_code
from otpcore.decision import ConsumeStep, Decision
from otpcore.model import InputMode, Reason, Result, Stage, User

# The shortest OTP. The hashing a Reject costs is set by the text alone, as if every token
# had this many digits: an unknown login has no token, and a budget that followed the user's
# token would tell 8-digit users apart (a 6-digit tail splits for them, not for the others).
SHORTEST_OTP = 6


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """One authentication attempt as the shells hand it to the core."""

    login: str
    password: str = field(repr=False)
    mode: InputMode = InputMode.AUTO
    state: bytes | None = field(default=None, repr=False)
    request_id: bytes | None = field(default=None, repr=False)
    client: str = ""  # the RADIUS client's name; "" for otpctl, in-process
    # The instant the request arrived, from the clock the shell hands the core, read as its
    # packet was: the request is judged at it (its code's step, expiry and start dates, its
    # State's lifetime), however long it then waited for a hash thread or behind a batch's
    # commit. None: judged when ``prepare`` reads the clock (otpctl, in-process).
    received: datetime | None = None
    # The stored challenge this request's State answers, if it carries one: hashed once, as
    # reading, the batch's row locks and the write each need it.
    challenge_key: bytes | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.state is not None:
            object.__setattr__(self, "challenge_key", challenge_key(self.client, self.state))


def challenge_key(client: str, state: bytes) -> bytes:
    """Where a challenge sent to ``client`` with ``state`` is stored.

    RFC 2865 §5.24: a client sends back the State it was sent. The State travels in clear,
    so keyed by the State alone, anyone holding another client's secret could take up a
    dialogue after the password was checked elsewhere: bind a token of theirs in the
    activation, answer the OTP, or use the State up. Keyed with the client's name (the same
    on every node, as README asks), another client's answer finds no challenge at all; and
    the database holds no State that a reader of it could answer.
    """
    name = client.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(b"otpradius-state\x00")
    digest.update(len(name).to_bytes(4, "big") + name + state)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What to answer, and what to log."""

    result: Result
    reason: Reason
    login: str
    serial: str | None = None
    state: bytes | None = field(default=None, repr=False)
    prompt: Stage | None = None
    resent: bool = False  # the answer of a request answered before (Decision.resent)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A decided request whose effects are not written yet."""

    request: AuthRequest
    decision: Decision
    user: User | None = None
    consume_state: bool = False  # the request's State must be consumed (single use)
    new_hash: str | None = field(default=None, repr=False)
    new_challenge: bytes | None = field(default=None, repr=False)
    expires: datetime | None = None
    # The token's seed as sealed when the request was decided: a step is used only while the
    # token still has that seed (see ``EffectWriter._consume``).
    sealed: bytes | None = field(default=None, repr=False)
    # The instant it was judged at (its ``received``): its writes check expiries at it too,
    # so a boundary passed while it waited for the commit does not undo the decision.
    judged_at: datetime | None = None

    @property
    def writes(self) -> bool:
        """True when committing it changes anything, or must read the user again."""
        return bool(
            self.consume_state
            or self.decision.effects
            or self.new_hash
            or self.new_challenge
            or self.rechecks_user
        )

    @property
    def rechecks_user(self) -> bool:
        """True when the decision lets the user in, or on, without using a step.

        The user was read without a lock; requests decided at the same moment may have
        suspended the user since (parallel password guesses), or an administrator deleted
        it. A step is only used for a user still entitled to it (``consume_step``); these
        decisions, a password's or an OTP-mode portal's, read the user again at commit.
        """
        decision = self.decision
        return (
            self.user is not None
            and decision.result is not Result.REJECT
            and not any(isinstance(effect, ConsumeStep) for effect in decision.effects)
        )


def needs_password_hash(request: AuthRequest) -> bool:
    """True when deciding may verify a password (slow by design): a first login, not OTP mode."""
    return request.state is None and request.mode is not InputMode.OTP


def hash_budget(request: AuthRequest) -> int:
    """The password verifications a Reject of this request costs, whoever the login is.

    A Reject must not tell, by its timing, whether the user exists, is suspended, or typed the
    right password (SPEC §3.1): each costs what a wrong password for a known user costs. That
    is two verifications in auto mode when the text ends in six digits or more (as password +
    OTP, then as the password alone; a known user never needs more than two), one otherwise,
    none where no password is checked (OTP mode, challenge answers).
    """
    if not needs_password_hash(request):
        return 0
    text = request.password
    tail = text[-SHORTEST_OTP:]
    splits = len(text) > SHORTEST_OTP and is_code(tail)
    return 2 if request.mode is InputMode.AUTO and splits else 1


@dataclass(frozen=True, slots=True)
class NotWritten:
    """A request decided but not written: a row it writes stayed locked by another
    transaction. Nothing of it took effect; its client should ask again."""


NOT_WRITTEN = NotWritten()
