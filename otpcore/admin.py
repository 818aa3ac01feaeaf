"""Administration use cases: users, inventory, unlock, revoke, audit — one transaction each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from otpcore.approvals import PRIVILEGED, ApprovedOperations
from otpcore.convert import listed
from otpcore.crypto import Keyring
from otpcore.errors import AlreadyExists, InvalidInput, NotFound, StateError
from otpcore.model import UserClass
from otpcore.passwords import PasswordHashing
from otpcore.policy import Policy
from otpcore.ports import Clock
from otpcore.progress import Progress
from otpcore.store import Repo, Store
from otpcore.store.models import UserRow
from otpcore.store.sessions import key_taken
from otpcore.token_csv import TokenSpec
from otpcore.token_import import TokenImport
from otpcore.views import (
    AuditEvent,
    Imported,
    TokenListing,
    UserView,
    audit_event,
    token_listing,
    user_view,
    view_of,
)

MAX_LOGIN = 128
MAX_NAME = 256
# A login password travels in User-Password, at most 128 bytes (RFC 2865 §5.2), and in split
# mode with up to 8 OTP digits after it: a longer one could never log in, each try counted as
# a wrong password.
MAX_PASSWORD_BYTES = 120
# Listings read this many rows at a time, each slice in a read of its own. A million users
# read at once held 3 GB in otpctl, on the host that runs the daemon; and one read kept open
# while a pager waits would keep SQLite from checkpointing the daemon's writes behind it.
LISTING_SLICE = 2000


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


def check_password_length(value: str) -> str:
    """A login password RADIUS can carry with a code after it, or InvalidInput saying why."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        raise InvalidInput(
            f"password is {size} bytes in UTF-8; a login password may have at most "
            f"{MAX_PASSWORD_BYTES}: RADIUS carries 128 bytes of password and code together"
        )
    return value


class Admin(ApprovedOperations):
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
        check_password_length(password)
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
            try:
                repo.session.flush()
            except IntegrityError as exc:
                # Another add of the same login committed after the look above (PostgreSQL
                # lets both look, then holds this insert until that one commits): the same
                # refusal as when it came first. Raised here, it rolls this transaction back.
                if key_taken(exc):
                    raise AlreadyExists(f"user {login} already exists") from None
                raise
            repo.audit(now, self.actor, "user_add", [login], "ok", f"class {user_class.value}")
            repo.session.flush()
            return user_view(row, None, now)

    def users(self) -> list[UserView]:
        """Every user, by login."""
        return list(self.each_user())

    def each_user(self) -> Iterator[UserView]:
        """Every user, by login, read a slice at a time (see ``LISTING_SLICE``)."""
        now = self.clock()
        after: str | None = None
        while True:
            with self.store.reading() as repo:
                page = repo.users_page(after, LISTING_SLICE)
                views = [view_of(*listed(row), now) for row in page]
            yield from views
            if len(views) < LISTING_SLICE:
                return
            after = views[-1].login

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
            # Locked: a login (an activation binding a token, a failure counted) or another
            # command writing the user meanwhile would be overwritten, or checked stale.
            row = _user(repo, login, lock=True)
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
        if not confirmation:  # never sent over RADIUS: any length
            check_password_length(password)
        with self.store.reading() as repo:
            other = _other_hash(_user(repo, login), confirmation=confirmation)
        self._refuse_same(password, other, confirmation=confirmation)
        new_hash = self.hashing.hash(password)
        now = self.clock()
        with self.store.transaction() as repo:
            # Locked, then compared again: the other password may be changing right now.
            row = _user(repo, login, lock=True)
            if _other_hash(row, confirmation=confirmation) != other:  # set meanwhile: again
                self._refuse_same(
                    password, _other_hash(row, confirmation=confirmation), confirmation=confirmation
                )
            if confirmation:
                if UserClass(row.user_class) not in PRIVILEGED:
                    raise StateError(f"user {login} is {row.user_class}: no confirmation password")
                row.confirmation_hash = new_hash
                row.confirmation_failures = 0
            else:
                row.password_hash = new_hash
            what = "confirmation" if confirmation else "login"
            repo.audit(now, self.actor, "passwd", [login], "ok", f"{what} password set")

    def _refuse_same(self, password: str, other: str | None, *, confirmation: bool) -> None:
        """Refuse a login password equal to the user's confirmation password, or the reverse.

        As ``add_user`` does: one password for both, and whoever learns the login password
        (typed at every portal login) approves unlocks and revokes as that administrator.
        """
        if other is not None and self.hashing.verify(other, password):
            # Named from the password being set, which is what the operator just typed.
            if confirmation:
                raise InvalidInput("the confirmation password must differ from the login password")
            raise InvalidInput("the login password must differ from the confirmation password")

    # Inventory

    def import_tokens(
        self,
        specs: Sequence[TokenSpec],
        *,
        update_existing: bool = False,
        progress: Progress | None = None,
        source: str | None = None,
        label: str | None = None,
    ) -> Imported:
        """Put tokens in the inventory in one transaction; a present serial needs ``update``.

        See ``TokenImport.run``: a present serial without ``update_existing`` is refused, and
        a file's seeds (``source`` given) must be new to the inventory.
        """
        job = TokenImport(self.store, self.keyring, self.clock, self.actor)
        return job.run(
            specs, update_existing=update_existing, progress=progress, source=source, label=label
        )

    def tokens(self, expiring_within_days: int | None = None) -> list[TokenListing]:
        """The inventory, or only tokens whose expiry falls within the next N days."""
        return list(self.each_token(expiring_within_days))

    def each_token(self, expiring_within_days: int | None = None) -> Iterator[TokenListing]:
        """``tokens``, read a slice at a time: by serial, or soonest expiry first."""
        horizon = None
        if expiring_within_days is not None:
            horizon = self.clock() + timedelta(days=expiring_within_days)
        after: tuple[datetime | None, str] | None = None
        while True:
            with self.store.reading() as repo:
                rows = repo.tokens_page(after, LISTING_SLICE, horizon)
                bindings = repo.bindings([row.serial for row in rows])
                listings = [token_listing(row, bindings.get(row.serial, [])) for row in rows]
            yield from listings
            if len(listings) < LISTING_SLICE:
                return
            after = (listings[-1].expires, listings[-1].serial)

    def expiring_tokens(
        self, since: datetime, within_days: int, limit: int
    ) -> tuple[list[TokenListing], int]:
        """The first ``limit`` tokens expiring after ``since`` and within the next
        ``within_days`` days, soonest first, and how many more expire then."""
        horizon = self.clock() + timedelta(days=within_days)
        # One read of ``limit`` rows and a count on the expiry index: the daemon's daily check
        # names that many, and read every token of the window (and every one that had
        # expired before it) to count the rest, a million rows a day for one lot.
        with self.store.reading() as repo:
            rows = repo.tokens_page(None, limit, horizon, since)
            bindings = repo.bindings([row.serial for row in rows])
            named = [token_listing(row, bindings.get(row.serial, [])) for row in rows]
            more = repo.count_expiring(since, horizon) - len(named) if len(named) == limit else 0
        return named, more

    def set_disabled(self, serial: str, disabled: bool) -> tuple[TokenListing, bool]:
        """Block a token in the inventory (e.g. reported stolen), or lift the block: the token,
        and whether it was not so already."""
        now = self.clock()
        with self.store.transaction() as repo:
            # Locked: an enable or disable committing meanwhile would leave the token as that
            # one said, while this one reported it already so and changed nothing.
            row = repo.token(serial, lock=True)
            if row is None:
                raise NotFound(f"token {serial} is not in the inventory")
            changed = row.disabled != disabled
            row.disabled = disabled
            users = [user.login for user in repo.sharers([serial])]
            action = "token_disable" if disabled else "token_enable"
            # Audited either way (the operation was asked for), but an event must not read as
            # the moment the block began or ended when it had been so all along.
            state = "disabled" if disabled else "enabled"
            detail = f"serial {serial}" if changed else f"serial {serial} (already {state})"
            repo.audit(now, self.actor, action, users, "ok", detail)
            return token_listing(row, users), changed

    # Privileged operations, confirmed by a master or admin user's confirmation password

    def audit(self, since: datetime | None = None) -> list[AuditEvent]:
        """Audit events in time order."""
        return list(self.each_event(since))

    def each_event(self, since: datetime | None = None) -> Iterator[AuditEvent]:
        """``audit``, read a slice at a time."""
        after: int | None = None
        while True:
            with self.store.reading() as repo:
                rows = repo.audit_events(since, after, LISTING_SLICE)
                events = [(row.id, audit_event(row)) for row in rows]
            yield from (event for _, event in events)
            if len(events) < LISTING_SLICE:
                return
            after = events[-1][0]


def _other_hash(row: UserRow, *, confirmation: bool) -> str | None:
    """The hash a new password must not match: the login one for a confirmation password."""
    return row.password_hash if confirmation else row.confirmation_hash


def _user(repo: Repo, login: str, *, lock: bool = False) -> UserRow:
    row = repo.user(login, lock=lock)
    if row is None:
        raise NotFound(f"no user {login}")
    return row
