"""Administration use cases: users, inventory, unlock, revoke, audit — one transaction each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from otpcore.convert import to_user, token_view
from otpcore.crypto import Keyring, PasswordHashing
from otpcore.errors import (
    AlreadyExists,
    ImportRefused,
    InvalidInput,
    NotFound,
    OtpError,
    PermissionDenied,
    StateError,
)
from otpcore.lockout import plan_unlock
from otpcore.model import Algorithm, OtpState, UserClass, user_state
from otpcore.policy import Policy
from otpcore.ports import Clock
from otpcore.progress import Progress, Ticker
from otpcore.seed_reuse import first_reuse
from otpcore.store import Repo, Store
from otpcore.store.models import TokenRow, UserRow
from otpcore.token_csv import STATED_SETTINGS, TokenSpec
from otpcore.views import (
    AuditEvent,
    Imported,
    TokenListing,
    UserView,
    audit_event,
    token_listing,
    user_view,
)

PRIVILEGED = frozenset({UserClass.MASTER, UserClass.ADMIN})
MAX_LOGIN = 128
MAX_NAME = 256
IMPORT_CHUNK = 5000  # tokens per executemany, and per progress report
TOKEN_IMPORT = "token_import"  # the audit action of every transaction that adds tokens


def check_login(login: str) -> str:
    """A login: 1 to 128 printable characters without spaces or commas."""
    if not login or len(login) > MAX_LOGIN or not login.isprintable():
        raise InvalidInput(f"login must be 1 to {MAX_LOGIN} printable characters")
    if any(c.isspace() or c == "," for c in login):
        # Not the value: in a user CSV it may be the end of a password split at its comma.
        raise InvalidInput("login contains a space or a comma")
    return login


def check_name(value: str) -> str:
    """A display name: 1 to 256 printable characters, without surrounding spaces."""
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"name must be 1 to {MAX_NAME} printable characters")
    return name


class Admin:
    """What ``otpctl`` does, as use cases over the store."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        hashing: PasswordHashing,
        policy: Policy,
        clock: Clock,
        actor: str = "otpctl",
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.hashing = hashing
        self.policy = policy
        self.clock = clock
        self.actor = actor

    # Users

    def add_user(
        self,
        login: str,
        name: str,
        user_class: UserClass,
        password: str,
        confirmation: str | None = None,
    ) -> UserView:
        """Create a user; master and admin users need a confirmation password."""
        check_login(login)
        # As an import checks it: a line break would split the user's row of every listing.
        name = check_name(name)
        if user_class in PRIVILEGED and not confirmation:
            article = "an" if user_class is UserClass.ADMIN else "a"
            raise InvalidInput(f"{article} {user_class.value} user needs a confirmation password")
        if confirmation is not None and confirmation == password:
            raise InvalidInput("the confirmation password must differ from the login password")
        password_hash = self.hashing.hash(password)
        confirmation_hash = self.hashing.hash(confirmation) if confirmation else None
        now = self.clock()
        with self.store.transaction() as repo:
            if repo.user(login) is not None:
                raise AlreadyExists(f"user {login} already exists")
            row = UserRow(
                login=login,
                name=name,
                user_class=user_class.value,
                password_hash=password_hash,
                confirmation_hash=confirmation_hash,
                revoked=False,
                suspended=False,
                password_failures=0,
                activation_failures=0,
                confirmation_failures=0,
                created_at=now,
            )
            repo.session.add(row)
            repo.audit(now, self.actor, "user_add", [login], "ok", f"class {user_class.value}")
            repo.session.flush()
            return user_view(row, None, now)

    def users(self) -> list[UserView]:
        """Every user, by login."""
        now = self.clock()
        with self.store.reading() as repo:
            tokens = {row.serial: row for row in repo.tokens()}
            return [
                user_view(row, tokens.get(row.serial) if row.serial else None, now)
                for row in repo.users()
            ]

    def user(self, login: str) -> UserView:
        """One user."""
        now = self.clock()
        with self.store.reading() as repo:
            row = _user(repo, login)
            return user_view(row, repo.token(row.serial) if row.serial else None, now)

    def issue(self, login: str, start: date) -> UserView:
        """Record that a token was issued to the user, with its service start date."""
        now = self.clock()
        with self.store.transaction() as repo:
            row = _user(repo, login)
            if row.serial is not None:
                raise StateError(f"user {login} already has token {row.serial}; revoke it first")
            row.start_date = start
            row.revoked = False
            row.activation_failures = 0
            repo.audit(now, self.actor, "issue", [login], "ok", f"start {start.isoformat()}")
            repo.session.flush()
            return user_view(row, None, now)

    def set_password(self, login: str, password: str, *, confirmation: bool = False) -> None:
        """Set a user's login password, or a master/admin user's confirmation password."""
        new_hash = self.hashing.hash(password)
        now = self.clock()
        with self.store.transaction() as repo:
            row = _user(repo, login)
            if confirmation:
                if UserClass(row.user_class) not in PRIVILEGED:
                    raise StateError(f"user {login} is {row.user_class}: no confirmation password")
                row.confirmation_hash = new_hash
                row.confirmation_failures = 0
            else:
                row.password_hash = new_hash
            what = "confirmation" if confirmation else "login"
            repo.audit(now, self.actor, "passwd", [login], "ok", f"{what} password set")

    # Inventory

    def import_tokens(
        self,
        specs: Sequence[TokenSpec],
        *,
        update_existing: bool = False,
        progress: Progress | None = None,
        source: str | None = None,
    ) -> Imported:
        """Put tokens in the inventory in one transaction; a present serial needs ``update``.

        A present serial without ``update_existing`` raises ImportRefused naming ``source``
        and the spec's line when a source file is given, else AlreadyExists (what a caller
        drawing random serials retries on). A file's seeds (``source`` given) must be new to
        the inventory too. ``progress`` counts one unit per token written.
        """
        now = self.clock()
        ticker = Ticker(progress, len(specs))
        # Read the inventory's seeds before taking the sealing lock, which on SQLite is the
        # write lock: held for seconds, it would hold up the daemon's commits.
        seen = self._seeds_checked(specs, source) if source is not None else None
        try:
            with self.store.transaction() as repo:
                repo.lock_inventory()
                self.keyring.check_current()  # under the lock: no rotation can slip in now
                present = repo.existing_serials([spec.serial for spec in specs])
                if present and not update_existing:
                    first = next(spec for spec in specs if spec.serial in present)
                    raise _present(first, source)
                if source is not None and repo.last_audit_id(TOKEN_IMPORT) != seen:
                    # Tokens were added since (every addition is a token_import under this
                    # lock): compare again, now that nobody can add more.
                    self._refuse_reused_seeds(repo, specs, source)
                repo.lock_keys(serials=sorted(present))  # then written in the file's order
                # Under the lock: a step a login committed after the read would be overwritten
                # by the older one the update restates.
                used = repo.used_steps([s.serial for s in specs if _restates_period(s, present)])
                for start in range(0, len(specs), IMPORT_CHUNK):
                    chunk = specs[start : start + IMPORT_CHUNK]
                    fresh = [self._token_values(s, now) for s in chunk if s.serial not in present]
                    changed = [
                        _rescaled(self._changed_values(s), used)
                        for s in chunk
                        if s.serial in present
                    ]
                    # Rows stating different settings are different UPDATEs; SQLAlchemy batches
                    # only neighbours alike, so put the alike together.
                    changed.sort(key=lambda values: sorted(values))
                    # One executemany per chunk: a row-by-row loop made 100,000 rows crawl.
                    if fresh:
                        repo.session.execute(insert(TokenRow), fresh)
                    if changed:
                        repo.session.execute(update(TokenRow), changed)  # by primary key
                    ticker.advance(len(chunk))
                added = len(specs) - len(present)
                detail = f"{added} added, {len(present)} updated"
                if source is not None:
                    detail = f"{source}: {detail}"
                targets = Repo.import_targets([spec.serial for spec in specs])
                repo.audit(now, self.actor, TOKEN_IMPORT, targets, "ok", detail)
        except IntegrityError:
            # Another writer added one of these serials between the check and the insert.
            message = "a serial was added by someone else while importing; nothing was imported"
            if source is not None:
                raise ImportRefused(source, None, message) from None
            raise AlreadyExists(message) from None
        return Imported(added=len(specs) - len(present), updated=len(present))

    def _seeds_checked(self, specs: Sequence[TokenSpec], source: str) -> int:
        """Refuse seeds the inventory holds, reading it without a lock; the import mark read."""
        with self.store.reading() as repo:
            mark = repo.last_audit_id(TOKEN_IMPORT)  # first: a later addition changes it
            self._refuse_reused_seeds(repo, specs, source)
        return mark

    def _refuse_reused_seeds(self, repo: Repo, specs: Sequence[TokenSpec], source: str) -> None:
        # A seed file delivered again under new serials, or a vendor repeating seeds across
        # batches, would let either token open the other's logins; the file's own repeats
        # were refused as it was read. Files only: an enrolled software token's seed is
        # fresh from the system's random source, and reading every seed takes seconds at a
        # million tokens.
        replaced = {spec.serial for spec in specs}
        inventory = (
            (serial, Algorithm(algorithm), self.keyring.unseal(serial, sealed))
            for serial, algorithm, sealed in repo.sealed_seeds()
            if serial not in replaced
        )
        reuse = first_reuse(specs, inventory)
        if reuse is not None:
            spec, other = reuse
            raise ImportRefused(
                source,
                spec.line,
                f"serial {spec.serial} has the seed of token {other}, already in the "
                "inventory: every token needs a seed of its own",
            )

    def _token_values(self, spec: TokenSpec, now: datetime) -> dict[str, object]:
        fresh = {"last_step": -1, "fail_count": 0, "suspended": False, "disabled": False}
        return {**self._seed_values(spec), **fresh, "created_at": now}

    def _changed_values(self, spec: TokenSpec) -> dict[str, object]:
        # What a seed file says; an update leaves last_step, counters and flags alone, so a
        # re-import neither reopens used steps nor lifts a suspension or a block. Defaults
        # stand in for what the file left out; on an update they must not.
        values = self._seed_values(spec)
        if spec.given is None:
            return values
        return {k: v for k, v in values.items() if k not in STATED_SETTINGS or k in spec.given}

    def _seed_values(self, spec: TokenSpec) -> dict[str, object]:
        return {
            "serial": spec.serial,
            "kind": spec.kind.value,
            "algorithm": spec.algorithm.value,
            "digits": spec.digits,
            "period": spec.period,
            "sealed_secret": self.keyring.seal(spec.serial, spec.secret),
            "expires": spec.expires,
            "drift": spec.drift,
        }

    def tokens(self, expiring_within_days: int | None = None) -> list[TokenListing]:
        """The inventory, or only tokens whose expiry falls within the next N days."""
        now = self.clock()
        with self.store.reading() as repo:
            query = select(TokenRow).order_by(TokenRow.serial)
            if expiring_within_days is not None:
                horizon = now + timedelta(days=expiring_within_days)
                query = (
                    query.where(TokenRow.expires.is_not(None), TokenRow.expires <= horizon)
                    .order_by(None)
                    .order_by(TokenRow.expires, TokenRow.serial)
                )  # soonest first
            rows = list(repo.session.scalars(query))
            # A report names a few tokens out of maybe a million: fetch only their users.
            wanted = None if expiring_within_days is None else [row.serial for row in rows]
            bindings = repo.bindings(wanted)
            return [token_listing(row, bindings.get(row.serial, [])) for row in rows]

    def set_disabled(self, serial: str, disabled: bool) -> TokenListing:
        """Block a token in the inventory (e.g. reported stolen), or lift the block."""
        now = self.clock()
        with self.store.transaction() as repo:
            row = repo.token(serial)
            if row is None:
                raise NotFound(f"token {serial} is not in the inventory")
            row.disabled = disabled
            users = [user.login for user in repo.sharers([serial])]
            action = "token_disable" if disabled else "token_enable"
            repo.audit(now, self.actor, action, users, "ok", f"serial {serial}")
            return token_listing(row, users)

    # Privileged operations, confirmed by a master or admin user's confirmation password

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
        with self.store.transaction() as repo:
            row = repo.user(admin_login)
            if row is None or UserClass(row.user_class) not in PRIVILEGED:
                detail = self._run_as("not a master or admin user")
                repo.audit(now, admin_login, action, targets, "denied", detail)
                denied = PermissionDenied(f"{admin_login} is not a master or admin user")
            elif row.confirmation_hash is None:
                # Imported (SPEC §7): nothing to guess, so nothing counted; the operator is
                # told what to run rather than left to try passwords into a lock.
                detail = self._run_as("no confirmation password")
                repo.audit(now, admin_login, action, targets, "denied", detail)
                denied = PermissionDenied(
                    f"{admin_login} has no confirmation password yet; set one with "
                    f"'otpctl user passwd {admin_login} --confirmation'"
                )
            elif not repo.take_confirmation_attempt(
                admin_login, self.policy.confirmation_lockout_threshold
            ):
                detail = self._run_as("confirmation password locked")
                repo.audit(now, admin_login, action, targets, "denied", detail)
                denied = PermissionDenied(
                    f"{admin_login}'s confirmation password is locked after "
                    f"{row.confirmation_failures} wrong attempts; reset it with "
                    f"'otpctl user passwd {admin_login} --confirmation'"
                )
            else:
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
        raise PermissionDenied(f"wrong confirmation password for {admin_login}")

    def unlock(self, admin_login: str, confirmation: str, logins: Sequence[str]) -> list[UserView]:
        """Lift the suspension of users and their tokens; returns every user lifted, sharers too."""
        self.confirm(admin_login, confirmation, "unlock", logins)
        now = self.clock()
        with self._refusal_audited(admin_login, "unlock", logins), self.store.transaction() as repo:
            _approver(repo, admin_login, logins)
            # Locked: the daemons count failures on these rows meanwhile (SPEC §8).
            selected = _users(repo, logins, lock=True)
            serials = sorted({row.serial for row in selected if row.serial is not None})
            token_rows = {row.serial: row for row in repo.tokens(serials, lock=True)}
            sharers = repo.sharers(serials)
            tokens = {serial: token_view(row) for serial, row in token_rows.items()}
            plan = plan_unlock(
                [to_user(row) for row in selected], [to_user(row) for row in sharers], tokens
            )
            for row in selected:
                row.suspended = False
                row.password_failures = 0
                row.activation_failures = 0
            for serial in plan.tokens:
                token_rows[serial].suspended = False
                token_rows[serial].fail_count = 0
            detail = self._run_as(_selected(logins))
            repo.audit(now, admin_login, "unlock", list(plan.lifted), "ok", detail)
            repo.session.flush()
            everyone = {row.login: row for row in (*selected, *sharers)}
            return [
                user_view(everyone[login], token_rows.get(everyone[login].serial or ""), now)
                for login in plan.lifted
            ]

    def revoke(self, admin_login: str, confirmation: str, logins: Sequence[str]) -> list[UserView]:
        """Unbind users from their tokens (state revoked); the tokens and other users stay."""
        self.confirm(admin_login, confirmation, "revoke", logins)
        now = self.clock()
        with self._refusal_audited(admin_login, "revoke", logins), self.store.transaction() as repo:
            _approver(repo, admin_login, logins)
            # Locked, as for unlock: an activation may be binding one of them meanwhile.
            selected = _users(repo, logins, lock=True)
            revoked: list[UserView] = []
            for row in selected:
                token = repo.token(row.serial) if row.serial else None
                state = user_state(to_user(row), token_view(token) if token else None, now)
                if state not in (OtpState.ACTIVE, OtpState.EXPIRED, OtpState.ISSUED):
                    raise StateError(f"user {row.login} is {state.value}: nothing to revoke")
            for row in selected:
                token = repo.token(row.serial) if row.serial else None
                before = row.serial
                row.serial = None
                row.revoked = True
                row.activation_failures = 0
                view = user_view(row, None, now)
                # The result screen shows the serial and expiry the user had.
                revoked.append(
                    UserView(
                        view.login,
                        view.name,
                        view.user_class,
                        before,
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
            approver = _approver(repo, admin_login, logins)
            selected = _users(repo, logins, lock=True)
            if UserClass(approver.user_class) is not UserClass.MASTER:
                # An admin user serves under the master users (the manual's hierarchy): it
                # must not remove the accounts above it.
                for row in selected:
                    if UserClass(row.user_class) is UserClass.MASTER:
                        raise StateError(f"{row.login} is a master user: only a master user "
                                         "may delete it")  # fmt: skip
            serials = sorted({row.serial for row in selected if row.serial})
            tokens = {row.serial: row for row in repo.tokens(serials, lock=True)}
            deleted = [
                user_view(row, tokens.get(row.serial) if row.serial else None, now)
                for row in selected
            ]
            repo.delete_users([row.login for row in selected])
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
        """Audit an approved operation that was then refused (an unknown user, a wrong state)."""
        try:
            yield
        except (NotFound, StateError, InvalidInput) as exc:
            # Its own transaction: the operation's was rolled back with everything in it.
            with self.store.transaction() as repo:
                targets = list(dict.fromkeys(logins))
                detail = self._run_as(str(exc))
                repo.audit(self.clock(), admin_login, action, targets, "refused", detail)
            raise

    def audit(self, since: datetime | None = None) -> list[AuditEvent]:
        """Audit events in time order."""
        with self.store.reading() as repo:
            return [audit_event(row) for row in repo.audit_events(since)]


def _restates_period(spec: TokenSpec, present: set[str]) -> bool:
    """Whether the spec updates a token of the inventory and states its period."""
    return spec.serial in present and (spec.given is None or "period" in spec.given)


def _rescaled(values: dict[str, object], used: dict[str, tuple[int, int]]) -> dict[str, object]:
    """An update's values, its token's used step restated in the steps of a new period."""
    period = values.get("period")
    if not isinstance(period, int) or str(values["serial"]) not in used:
        return values
    old_period, last = used[str(values["serial"])]
    if period != old_period:
        # Kept in the old unit, the step would be far ahead of (or behind) every new step:
        # every right code a replay (five suspend the token), or used codes good again. The
        # new step that holds the last used second is the last used one: no code for time
        # already used opens again, and the code after it does. -1 (never used) stays -1.
        values["last_step"] = ((last + 1) * old_period - 1) // period
    return values


def _present(spec: TokenSpec, source: str | None) -> OtpError:
    message = f"serial {spec.serial} is already in the inventory (use --update)"
    if source is not None:
        return ImportRefused(source, spec.line, message)
    where = f"line {spec.line}: " if spec.line else ""
    return AlreadyExists(where + message)


def _user(repo: Repo, login: str) -> UserRow:
    row = repo.user(login)
    if row is None:
        raise NotFound(f"no user {login}")
    return row


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
    locked = repo.tokens(serials, lock=True)
    still_bound = {row.serial for row in repo.sharers(serials)}
    released: list[str] = []
    for row in locked:
        if row.serial in still_bound:
            continue
        if row.suspended:
            released.append(row.serial)
        row.suspended = False
        row.fail_count = 0
    return released


def _approver(repo: Repo, admin_login: str, logins: Sequence[str] = ()) -> UserRow:
    """The approving administrator, locked with ``logins`` and checked again.

    Locked in one statement with the users the operation takes, so in one order: two
    administrators deleting each other at once must not both succeed, the second approved by
    an account that is gone.
    """
    locked = {row.login: row for row in repo.users([*logins, admin_login], lock=True)}
    approver = locked.get(admin_login)
    if approver is None or UserClass(approver.user_class) not in PRIVILEGED:
        raise StateError(f"{admin_login} is no longer a master or admin user")
    return approver


def _users(repo: Repo, logins: Sequence[str], *, lock: bool = False) -> list[UserRow]:
    if not logins:
        raise InvalidInput("name at least one user")
    rows = {row.login: row for row in repo.users(list(dict.fromkeys(logins)), lock=lock)}
    for login in logins:
        if login not in rows:
            raise NotFound(f"no user {login}")
    return [rows[login] for login in dict.fromkeys(logins)]


def _selected(logins: Sequence[str]) -> str:
    return "selected " + ",".join(dict.fromkeys(logins))
