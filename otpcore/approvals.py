"""The operations an administrator approves with a confirmation password: unlock, revoke,
and deleting users and tokens (SPEC §5).

Each is checked twice: the confirmation password first, in transactions of its own so that a
wrong one stays counted and audited, then the approver again, locked with the users the
operation takes. Every outcome, refusals included, is audited.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from otpcore.convert import token_of, user_of
from otpcore.errors import InvalidInput, NotFound, PermissionDenied, StateError
from otpcore.lockout import UnlockPlan, plan_unlock
from otpcore.model import OtpState, Token, User, UserClass, user_state
from otpcore.passwords import PasswordHashing
from otpcore.policy import Policy
from otpcore.ports import Clock
from otpcore.store import Repo, Store
from otpcore.store.models import UserRow
from otpcore.views import TokenListing, UserView, token_listing, view_of

PRIVILEGED = frozenset({UserClass.MASTER, UserClass.ADMIN})


class ApprovedOperations:
    """What ``Admin`` does only with an approving administrator's confirmation password."""

    store: Store
    hashing: PasswordHashing
    policy: Policy
    clock: Clock
    actor: str

    def check_approver(self, admin_login: str, action: str, targets: Sequence[str] = ()) -> None:
        """Refuse (and audit) an approver who cannot approve whatever password is typed: not a
        master or admin user, no confirmation password yet, or one locked. Nothing is counted;
        the shell asks this before it prompts, so that nobody types a password for nothing."""
        now = self.clock()
        denied: PermissionDenied | None = None
        with self.store.transaction() as repo:
            row = repo.user(admin_login)
            unfit = _unfit(row, admin_login, self.policy.confirmation_lockout_threshold)
            if unfit is not None:
                reason, denied = unfit
                repo.audit(now, admin_login, action, list(dict.fromkeys(targets)), "denied",
                           self._run_as(reason))  # fmt: skip
        if denied is not None:
            raise denied

    def confirm(
        self, admin_login: str, confirmation: str, action: str, targets: Sequence[str] = ()
    ) -> None:
        """Check the acting administrator's confirmation password; count and audit a wrong one.

        ``targets`` are the users the operation was asked for, named in a denial's event.
        """
        now = self.clock()
        targets = list(dict.fromkeys(targets))
        denied: PermissionDenied | None = None
        stored: str | None = None
        limit = self.policy.confirmation_lockout_threshold
        attempts: int | None = None
        with self.store.transaction() as repo:
            row = repo.user(admin_login)
            unfit = _unfit(row, admin_login, limit)
            # Counted before the password is checked: runs started together get no more tries
            # between them than one after another would.
            if unfit is None:
                attempts = repo.take_confirmation_attempt(admin_login, limit)
                if attempts is None:
                    # Read again, locked and fresh: the row read above is the session's copy,
                    # from before runs beside this one counted the last attempts.
                    unfit = _unfit(repo.user(admin_login, lock=True), admin_login, 0)
            if unfit is not None:
                reason, denied = unfit
                repo.audit(now, admin_login, action, targets, "denied", self._run_as(reason))
            elif row is not None:
                stored = row.confirmation_hash
        # Raised after the block: raised inside, it would roll the denial's audit event back.
        if denied is not None:
            raise denied
        # The attempt is already counted: a run killed while it hashes has still used one.
        if stored is not None and self.hashing.verify(stored, confirmation):
            with self.store.transaction() as repo:
                repo.clear_confirmation_attempts(admin_login)
            return
        with self.store.transaction() as repo:
            detail = self._run_as("wrong confirmation password")
            repo.audit(now, admin_login, action, targets, "denied", detail)
        if attempts is not None and attempts >= limit:
            # Said now, not at the next try: the operator learns that retyping is no use and
            # what to run instead while the one who can reset it is still at hand.
            raise PermissionDenied(
                f"wrong confirmation password for {admin_login}; it is now locked after "
                f"{attempts} wrong attempts; reset it with "
                f"'otpctl user passwd {admin_login} --confirmation'"
            )
        raise PermissionDenied(f"wrong confirmation password for {admin_login}")

    def unlock(self, admin_login: str, confirmation: str, logins: Sequence[str]) -> list[UserView]:
        """Lift the suspension of users and their tokens; returns every user lifted, sharers too."""
        self.confirm(admin_login, confirmation, "unlock", logins)
        now = self.clock()
        with self._refusal_audited(admin_login, "unlock", logins), self.store.transaction() as repo:
            # Locked: the daemons count failures on these rows meanwhile (SPEC §8).
            _, selected = _approved(repo, admin_login, logins)
            serials = sorted({user.serial for user in selected if user.serial is not None})
            locked = repo.token_states(serials, lock=True)
            tokens = {row.serial: token_of(row, b"") for row in locked}
            sharers = [user_of(row) for row in repo.user_states(serials=serials)]
            plan = plan_unlock(selected, sharers, tokens)
            repo.clear_user_failures(sorted(plan.users))
            repo.clear_token_failures(sorted(plan.tokens))
            detail = self._run_as(_selected(logins))
            repo.audit(now, admin_login, "unlock", list(plan.lifted), "ok", detail)
        # The users as committed, built after the transaction has let the logins go on.
        everyone = {user.login: user for user in (*selected, *sharers)}
        return [view_of(*_unlocked(everyone[login], tokens, plan), now) for login in plan.lifted]

    def revoke(self, admin_login: str, confirmation: str, logins: Sequence[str]) -> list[UserView]:
        """Unbind users from their tokens (state revoked); the tokens and other users stay."""
        self.confirm(admin_login, confirmation, "revoke", logins)
        now = self.clock()
        with self._refusal_audited(admin_login, "revoke", logins), self.store.transaction() as repo:
            # Locked, as for unlock: an activation may be binding one of them meanwhile.
            _, selected = _approved(repo, admin_login, logins)
            serials = sorted({user.serial for user in selected if user.serial is not None})
            tokens = {row.serial: token_of(row, b"") for row in repo.token_states(serials)}
            for user in selected:
                token = tokens.get(user.serial) if user.serial else None
                state = user_state(user, token, now)
                if state not in (OtpState.ACTIVE, OtpState.EXPIRED, OtpState.ISSUED):
                    raise StateError(f"user {user.login} is {state.value}: nothing to revoke")
            repo.revoke_users([user.login for user in selected])
            revoked: list[UserView] = []
            for user in selected:
                token = tokens.get(user.serial) if user.serial else None
                after = replace(user, serial=None, revoked=True, activation_failures=0)
                view = view_of(after, None, now)
                # The result screen shows the serial and expiry the user had.
                revoked.append(
                    UserView(
                        view.login,
                        view.name,
                        view.user_class,
                        user.serial,
                        view.state,
                        view.suspended,
                        token.expires if token else None,
                    )
                )
            self._unbound(repo, now, admin_login, "revoke", revoked)
            return revoked

    def delete_users(
        self, admin_login: str, confirmation: str, logins: Sequence[str]
    ) -> list[UserView]:
        """Delete users, say on an account closed; their tokens and other users stay.

        Returns the users as they were. Pending challenges of theirs go with them, and a token
        left without users is released as by ``revoke``.
        """
        self.confirm(admin_login, confirmation, "user_delete", logins)
        now = self.clock()
        with (
            self._refusal_audited(admin_login, "user_delete", logins),
            self.store.transaction() as repo,
        ):
            if admin_login in logins:
                # The approval would vanish with its approver; another admin must do it.
                raise StateError(f"{admin_login} cannot delete itself: ask another admin")
            approver, selected = _approved(repo, admin_login, logins)
            if approver is not UserClass.MASTER:
                # An admin user serves under the master users (the manual's hierarchy): it
                # must not remove the accounts above it.
                for user in selected:
                    if user.user_class is UserClass.MASTER:
                        raise PermissionDenied(f"{user.login} is a master user: only a master "
                                               "user may delete it")  # fmt: skip
            serials = sorted({user.serial for user in selected if user.serial})
            locked = repo.token_states(serials, lock=True)
            tokens = {row.serial: token_of(row, b"") for row in locked}
            deleted = [
                view_of(user, tokens.get(user.serial) if user.serial else None, now)
                for user in selected
            ]
            repo.delete_users([user.login for user in selected])
            self._unbound(repo, now, admin_login, "user_delete", deleted)
            return deleted

    def delete_tokens(
        self, admin_login: str, confirmation: str, serials: Sequence[str]
    ) -> list[TokenListing]:
        """Delete tokens no user is bound to, say returned or destroyed ones, with their seeds.

        Returns the tokens as they were. A token still bound to a user is refused (revoke or
        delete its users first); all the serials or none are deleted.
        """
        self.confirm(admin_login, confirmation, "token_delete", serials)
        now = self.clock()
        with (
            self._refusal_audited(admin_login, "token_delete", serials),
            self.store.transaction() as repo,
        ):
            wanted = list(dict.fromkeys(serials))
            if not wanted:
                raise InvalidInput("name at least one token")
            _approver(repo, admin_login)
            # Locked before their users are read: an activation binding one of them commits
            # first, and is then seen, or waits and then finds the token gone.
            rows = {row.serial: row for row in repo.tokens(wanted, lock=True)}
            for serial in wanted:
                if serial not in rows:
                    raise NotFound(f"token {serial} is not in the inventory")
            bound = repo.bindings(wanted)
            for serial in wanted:
                if serial in bound:
                    users = ", ".join(bound[serial])
                    raise StateError(
                        f"token {serial} is bound to {users}: revoke or delete them first"
                    )
            deleted = [token_listing(rows[serial], []) for serial in wanted]
            repo.delete_tokens(wanted)
            detail = self._run_as("serials " + ", ".join(wanted))
            repo.audit(now, admin_login, "token_delete", wanted, "ok", detail)
            return deleted

    def _unbound(
        self, repo: Repo, now: datetime, admin_login: str, action: str, views: list[UserView]
    ) -> None:
        """Release the tokens these users' going left without users; audit ``action``."""
        detail = ", ".join(f"{v.login}:{v.serial or '-'}" for v in views)
        released = release_unused(repo, sorted({v.serial for v in views if v.serial}))
        if released:
            detail += "; suspension lifted, no users left: " + ", ".join(released)
        targets = [v.login for v in views]
        repo.audit(now, admin_login, action, targets, "ok", self._run_as(detail))

    def _run_as(self, detail: str) -> str:
        """An approved operation's detail, naming the account that ran it (the actor is the
        approving administrator)."""
        return f"{detail}; run as {self.actor}"

    @contextmanager
    def _refusal_audited(
        self, admin_login: str, action: str, logins: Sequence[str]
    ) -> Iterator[None]:
        """Audit an approved operation that was then refused (an unknown user, a wrong state)
        or denied (a user above the approver's class)."""
        try:
            yield
        except (NotFound, StateError, InvalidInput, PermissionDenied) as exc:
            outcome = "denied" if isinstance(exc, PermissionDenied) else "refused"
            # Its own transaction: the operation's was rolled back with everything in it.
            with self.store.transaction() as repo:
                targets = list(dict.fromkeys(logins))
                detail = self._run_as(str(exc))
                repo.audit(self.clock(), admin_login, action, targets, outcome, detail)
            raise


def release_unused(repo: Repo, serials: Sequence[str]) -> list[str]:
    """Clear the failures of those tokens that no user is bound to any more; the serials
    whose suspension this lifted.

    A token's suspension is lifted by unlocking a user bound to it; once its last user is
    revoked, deleted or moved to another token by a user import, nobody could, and the token
    could never be activated again (SPEC §1: a revoked token can be activated again later).
    Its count belonged to the users who are gone.
    """
    # The tokens are locked before their users are counted: two transactions each taking one
    # of a token's last two users (a revoke and a delete, say) would otherwise each see the
    # other's user still bound, and neither would release it. Locked first, the second one
    # waits, and then sees the first one's change.
    locked = repo.token_states(serials, lock=True)
    still_bound = set(repo.bindings(serials))
    unbound = [row for row in locked if row.serial not in still_bound]
    repo.clear_token_failures([row.serial for row in unbound])
    return [row.serial for row in unbound if row.suspended]


def _approver(repo: Repo, admin_login: str) -> UserClass:
    """The approving administrator's class, locked and checked again."""
    rows = repo.user_states([admin_login], lock=True)
    return _checked(admin_login, rows[0].user_class if rows else None)


def _approved(repo: Repo, admin_login: str, logins: Sequence[str]) -> tuple[UserClass, list[User]]:
    """The approving administrator's class, checked again, and the named users once each in
    the order named; NotFound names the first login that does not exist.

    All are read and locked in one statement, so in one order: two administrators deleting
    each other at once must not both succeed, the second approved by an account that is gone.
    Plain rows, not ORM objects: every login of every node waits behind these transactions,
    and ORM objects kept an unlock of 40,000 users in one for 7 s.
    """
    wanted = list(dict.fromkeys(logins))
    rows = {row.login: row for row in repo.user_states([*wanted, admin_login], lock=True)}
    approver = rows.get(admin_login)
    approver_class = _checked(admin_login, approver.user_class if approver else None)
    if not wanted:
        raise InvalidInput("name at least one user")
    for login in wanted:
        if login not in rows:
            raise NotFound(f"no user {login}")
    return approver_class, [user_of(rows[login]) for login in wanted]


def _checked(admin_login: str, user_class: str | None) -> UserClass:
    if user_class is None or UserClass(user_class) not in PRIVILEGED:
        raise StateError(f"{admin_login} is no longer a master or admin user")
    return UserClass(user_class)


def _unlocked(
    user: User, tokens: Mapping[str, Token], plan: UnlockPlan
) -> tuple[User, Token | None]:
    """A user and the token bound to it as an unlock following ``plan`` leaves them."""
    if user.login in plan.users:
        user = replace(user, suspended=False, password_failures=0, activation_failures=0)
    token = tokens.get(user.serial) if user.serial is not None else None
    if token is not None and token.serial in plan.tokens:
        token = replace(token, suspended=False, fail_count=0)
    return user, token


def _selected(logins: Sequence[str]) -> str:
    return "selected " + ",".join(dict.fromkeys(logins))


def _unfit(
    row: UserRow | None, admin_login: str, limit: int
) -> tuple[str, PermissionDenied] | None:
    """Why ``row`` cannot approve anything (the audit's reason, the error), or None."""
    if row is None:
        # Told apart from a general user: an approver's login mistyped reads as a typo, not as
        # a class to change. otpctl's operator may list every user anyway.
        return "no such user", PermissionDenied(
            f"no user {admin_login}: the approver must be a master or admin user"
        )
    if UserClass(row.user_class) not in PRIVILEGED:
        return "not a master or admin user", PermissionDenied(
            f"{admin_login} is not a master or admin user"
        )
    if row.confirmation_hash is None:
        # Imported (SPEC §7): nothing to guess, so nothing counted; the operator is told what
        # to run rather than left to try passwords into a lock.
        return "no confirmation password", PermissionDenied(
            f"{admin_login} has no confirmation password yet; set one with "
            f"'otpctl user passwd {admin_login} --confirmation'"
        )
    if row.confirmation_failures >= limit:
        return "confirmation password locked", PermissionDenied(
            f"{admin_login}'s confirmation password is locked after "
            f"{row.confirmation_failures} wrong attempts; reset it with "
            f"'otpctl user passwd {admin_login} --confirmation'"
        )
    return None
