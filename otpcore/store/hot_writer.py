"""The writes of the authentication path, inside one ``HotStore`` transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from otpcore.model import User
from otpcore.store import hot_sql as sql

if TYPE_CHECKING:
    from otpcore.store.hot import HotStore


@dataclass(frozen=True, slots=True)
class Standing:
    """What decides whether a user may still use a token's step."""

    user_suspended: bool
    bound_to: str | None
    token_suspended: bool
    token_disabled: bool
    token_exists: bool = True  # False: deleted from the inventory meanwhile
    last_step: int | None = None  # the token's last used step, and the request that used it
    last_request: bytes | None = field(default=None, repr=False)
    period: int | None = None  # the unit of last_step; None when the token is gone
    sealed_secret: bytes | None = field(default=None, repr=False)  # None when the token is gone
    token_expired: bool = False  # its expiry had passed at the instant asked about
    user_revoked: bool = False


@dataclass(slots=True)
class HeldRows:
    """Rows a batch wanted to lock and another transaction held (or that no longer exist)."""

    logins: set[str] = field(default_factory=set)
    serials: set[str] = field(default_factory=set)
    challenges: set[bytes] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.logins or self.serials or self.challenges)

    def touches(
        self, logins: Sequence[str], serials: Sequence[str], challenges: Sequence[bytes]
    ) -> bool:
        """True when any of these rows is among the held ones."""
        return (not self.logins.isdisjoint(logins) or not self.serials.isdisjoint(serials)
                or not self.challenges.isdisjoint(challenges))  # fmt: skip


class HotWriter:
    """The atomic statements, inside a ``HotStore.transaction``."""

    def __init__(self, store: HotStore) -> None:
        self._store = store

    def lock(
        self,
        logins: Sequence[str],
        serials: Sequence[str],
        challenges: Sequence[bytes] = (),
        *,
        skip_held: bool = False,
    ) -> HeldRows:
        """Lock the users', the tokens' and then the challenges' rows a batch is about to
        write, each by key; with ``skip_held``, only those no other transaction holds, and
        return the others (none otherwise: a wait past the lock timeout raises RowsHeld).

        A batch writes its requests' rows in the order the requests came; another node's
        batch may write the same rows in another order, and on PostgreSQL the two would
        wait for each other until the deadlock detector failed one whole batch. Taken here
        first, in one order everywhere (as ``otpctl unlock`` and ``user delete`` do), no cycle
        can form. The challenges count too: anyone with one password can collect States and
        send their answers to two nodes in opposite orders. SQLite needs nothing: its write
        lock already admits one transaction at a time.
        """
        held = HeldRows()
        if self._store.sqlite:
            return held
        if logins:
            held.logins = self._take(sql.LOCK_USERS_PG, sql.LOCK_USERS_FREE_PG, "logins",
                                     logins, skip_held)  # fmt: skip
        if serials:
            held.serials = self._take(sql.LOCK_TOKENS_PG, sql.LOCK_TOKENS_FREE_PG, "serials",
                                      serials, skip_held)  # fmt: skip
        if challenges:
            held.challenges = self._take(sql.LOCK_CHALLENGES_PG, sql.LOCK_CHALLENGES_FREE_PG,
                                         "ids", challenges, skip_held)  # fmt: skip
        return held

    def _take(
        self, waiting: str, free: str, name: str, keys: Sequence[Any], skip_held: bool
    ) -> set[Any]:
        """Lock these rows (or, with ``skip_held``, the free ones); the keys not locked."""
        wanted = sorted(set(keys))
        rows = self._store.run(free if skip_held else waiting, {name: wanted}).fetchall()
        if not skip_held:
            return set()
        # Not returned: held by another transaction, or deleted meanwhile.
        taken = {bytes(row[0]) if isinstance(row[0], memoryview) else row[0] for row in rows}
        return {key for key in wanted if key not in taken}

    def take_challenge(self, challenge_id: bytes, request: bytes) -> bool:
        """Consume a challenge for the answer ``request``; False if another answer already did."""
        params = {"id": challenge_id, "request": request}
        return int(self._store.run(sql.TAKE_CHALLENGE, params).rowcount) == 1

    def purge_challenges(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` challenges expired at ``now``; returns how many."""
        params = {"now": self._store.stored_instant(now), "limit": limit}
        statement = sql.PURGE_CHALLENGES if self._store.sqlite else sql.PURGE_CHALLENGES_PG
        return int(self._store.run(statement, params).rowcount)

    def add_challenge(
        self, challenge_id: bytes, login: str, stage: str, serial: str | None, expires: datetime
    ) -> None:
        """Store a pending challenge."""
        self._store.run(
            sql.ADD_CHALLENGE,
            {
                "id": challenge_id,
                "login": login,
                "stage": stage,
                "serial": serial,
                "expires": self._store.stored_instant(expires),
            },
        )

    def consume_step(
        self,
        login: str,
        serial: str,
        step: int,
        period: int,
        request: bytes | None,
        sealed: bytes,
        *,
        now: datetime,
        binding: bool = False,
        revoked: bool = False,
    ) -> bool:
        """Record a used step later than the stored one, for a user still entitled to it.

        ``step`` is counted in ``period`` seconds, which must still be the token's, and was
        matched with the seed ``sealed``, which must still be the token's (sealed as stored:
        a key rotation re-seals it, which ``standing`` shows); its expiry must not have passed
        at ``now``. The user must not be suspended and must be bound to the token, or unbound
        when ``binding`` (an activation), and then not revoked unless it was already when the
        request was decided (``revoked``). False if any of that changed, or somebody else won
        the step; ``standing`` tells which.
        """
        params = {
            "login": login,
            "serial": serial,
            "step": step,
            "period": period,
            "request": request,
            "sealed": sealed,
            "now": self._store.stored_instant(now),
            "binding": binding,
            "revoked": revoked,
        }
        return int(self._store.run(sql.CONSUME, params).rowcount) == 1

    def standing(self, login: str, serial: str, now: datetime) -> Standing | None:
        """The user's and the token's state as a refused ``consume_step`` found them at
        ``now``; None if the user is gone."""
        params = {"login": login, "serial": serial, "now": self._store.stored_instant(now)}
        rows = self._store.run(sql.STANDING, params).fetchall()
        if not rows:
            return None
        row = rows[0]
        suspended, bound_to, token_suspended, disabled, exists, last_step, last, period = row[:8]
        sealed, expired, revoked = row[8:]
        return Standing(
            bool(suspended),
            bound_to,
            bool(token_suspended),
            bool(disabled),
            bool(exists),
            last_step,
            bytes(last) if last is not None else None,
            period,
            bytes(sealed) if sealed is not None else None,
            bool(expired),
            bool(revoked),
        )

    def challenge_used_by(self, challenge_id: bytes) -> bytes | None:
        """The answer that consumed a challenge, or None (not consumed, or gone)."""
        rows = self._store.run(sql.CHALLENGE_USED_BY, {"id": challenge_id}).fetchall()
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def user(self, login: str) -> User | None:
        """The user as it stands now; None if the user is gone (deleted)."""
        return self._store.user(login)

    def count_token_failure(
        self, login: str, serial: str, threshold: int, now: datetime
    ) -> bool | None:
        """One more failure on a token that is not suspended, by one of its users; True if
        that suspended it.

        None when nothing was counted: the token was suspended or disabled already, or
        expired at ``now``, or ``login`` is no longer bound to it (revoked, deleted).
        """
        params = {
            "login": login,
            "serial": serial,
            "threshold": threshold,
            "now": self._store.stored_instant(now),
        }
        rows = self._store.run(sql.TOKEN_FAILURE, params).fetchall()
        return bool(rows[0][0]) if rows else None

    def count_password_failure(self, login: str, threshold: int) -> bool:
        """One more password failure; True if that suspended the user."""
        params = {"login": login, "threshold": threshold}
        return sql.returned_true(self._store.run(sql.PASSWORD_FAILURE, params))

    def count_activation_failure(self, login: str, threshold: int) -> bool:
        """One more activation failure; True if that suspended the user."""
        params = {"login": login, "threshold": threshold}
        return sql.returned_true(self._store.run(sql.ACTIVATION_FAILURE, params))

    def reset_password_failures(self, login: str) -> None:
        """The password was right: consecutive failures restart from zero."""
        self._store.run(sql.RESET_PASSWORD_FAILURES, {"login": login})

    def bind(self, login: str, serial: str) -> bool:
        """Bind an unbound user to a token; False if the user was bound meanwhile."""
        params = {"login": login, "serial": serial, "false": False}
        return int(self._store.run(sql.BIND, params).rowcount) == 1

    def set_password_hash(self, login: str, password_hash: str, verified: str) -> None:
        """Store a rehashed login password, unless the hash ``verified`` was replaced meanwhile."""
        params = {"login": login, "hash": password_hash, "verified": verified}
        self._store.run(sql.SET_HASH, params)

    def sharers(self, serial: str) -> list[str]:
        """Logins bound to a token."""
        return [row[0] for row in self._store.run(sql.SHARERS, {"serial": serial}).fetchall()]

    def audit(
        self, at: datetime, actor: str, action: str, targets: Sequence[str], outcome: str,
        detail: str,
    ) -> None:  # fmt: skip
        """Append an audit event."""
        self._store.run(
            sql.AUDIT,
            {
                "at": self._store.stored_instant(at),
                "actor": actor,
                "action": action,
                "targets": ",".join(targets),
                "outcome": outcome,
                "detail": detail,
            },
        )
