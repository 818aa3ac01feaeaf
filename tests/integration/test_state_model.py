"""SPEC §2 and §3 as a model: random sequences of operations against a small reference.

Users are issued, activate, share tokens, log in in every client mode with right, wrong,
late, early and replayed codes, are unlocked and revoked; tokens are disabled, enabled and
expire as the clock moves. After every step the listings (``user list``, ``token list``) must
show what the reference says, and every decision must carry the result and reason it says.
Some logins are decided together and written in one transaction, as the daemon's workers
write them. Everything goes through the public use cases on a real SQLite file, with the
clock injected.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from otpcore.app import App, build_app
from otpcore.attempts import AuthOutcome, AuthRequest
from otpcore.config import parse_settings
from otpcore.errors import StateError
from otpcore.keys import create_key
from otpcore.model import Algorithm, InputMode, OtpState, Reason, Result, Stage, TokenKind
from otpcore.onboarding import import_users
from otpcore.ports import FrozenClock
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import upgrade
from otpcore.token_csv import TokenSpec
from otpcore.totp import hotp, time_step
from otpcore.user_csv import UserSpec
from tests.conftest import T0, settings_data
from tests.integration.lifecycle import ADMIN, CONFIRMATION, PASSWORD, add_admin, add_user

LOGINS = ("taro", "jiro", "hanako")
PERIOD = 60
TIMEOUT = 120  # challenge_timeout
UNKNOWN = "99999999"  # a serial the inventory does not hold
SEEDS = {"11111111": bytes(range(1, 21)), "22222222": bytes(range(21, 41))}
# The first token expires a day and a half in; the second never does.
EXPIRES = {"11111111": T0 + timedelta(days=1, hours=12), "22222222": None}


@dataclass
class ModelUser:
    serial: str | None = None
    start: date | None = None
    revoked: bool = False
    suspended: bool = False
    password_failures: int = 0
    activation_failures: int = 0


@dataclass
class ModelToken:
    expires: datetime | None
    last_step: int = -1
    fail_count: int = 0
    suspended: bool = False
    disabled: bool = False

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass
class Pending:
    """A challenge sent and not answered yet (or answered: it must stay used)."""

    login: str
    state: bytes
    prompt: Stage
    serial: str | None
    expires: datetime
    used: bool = False


@dataclass
class Model:
    unregistered_rejects: bool
    window: int
    otp_threshold: int
    password_threshold: int
    users: dict[str, ModelUser] = field(default_factory=lambda: {n: ModelUser() for n in LOGINS})
    tokens: dict[str, ModelToken] = field(
        default_factory=lambda: {s: ModelToken(EXPIRES[s]) for s in SEEDS}
    )

    def state(self, login: str, now: datetime) -> OtpState:
        user = self.users[login]
        if user.serial is not None:
            return OtpState.EXPIRED if self.tokens[user.serial].expired(now) else OtpState.ACTIVE
        if user.revoked:
            return OtpState.REVOKED
        return OtpState.ISSUED if user.start is not None else OtpState.UNREGISTERED

    def shows_suspended(self, login: str) -> bool:
        user = self.users[login]
        token = self.tokens[user.serial] if user.serial else None
        return user.suspended or (token is not None and token.suspended)

    def sharers(self, serial: str) -> list[str]:
        return sorted(n for n, u in self.users.items() if u.serial == serial)

    def awaiting(self, login: str, now: datetime) -> bool:
        user = self.users[login]
        if user.serial is not None:
            return False
        started = user.start is not None and now >= datetime.combine(
            user.start, datetime.min.time(), UTC
        )
        return user.revoked or started

    # Counting (SPEC §2)

    def password_failure(self, login: str) -> None:
        user = self.users[login]
        user.password_failures += 1
        user.suspended = user.password_failures >= self.password_threshold

    def activation_failure(self, login: str) -> None:
        user = self.users[login]
        user.activation_failures += 1
        user.suspended = user.activation_failures >= self.otp_threshold

    def token_failure(self, serial: str) -> None:
        token = self.tokens[serial]
        token.fail_count += 1
        token.suspended = token.fail_count >= self.otp_threshold

    def match(self, serial: str, code: str, now: datetime) -> tuple[Reason, int | None]:
        """OK with the step to use, REPLAY, BAD_OTP or MALFORMED_OTP (SPEC §3.7)."""
        if len(code) != 6 or not code.isdigit():
            return Reason.MALFORMED_OTP, None
        step = time_step(now, PERIOD)
        token = self.tokens[serial]
        matches = [
            s
            for s in range(step - self.window, step + self.window + 1)
            if hotp(SEEDS[serial], s, 6, Algorithm.SHA1) == code
        ]
        fresh = [s for s in matches if s > token.last_step]
        if fresh:
            return Reason.OK, min(fresh, key=lambda s: (abs(s - step), s))
        return (Reason.REPLAY if matches else Reason.BAD_OTP), None


# Mostly the code shown now, so that logins succeed often enough to matter.
CODE_KINDS = st.sampled_from(
    ["0", "0", "0", "0", "-1", "+1", "-2", "+2", "-3", "+3", "wrong", "malformed"]
)
RIGHT = st.sampled_from([True, True, True, False])
SERIALS = st.sampled_from([*sorted(SEEDS), UNKNOWN])


def typed_code(serial: str | None, kind: str, now: datetime) -> str:
    """What a user types: the code shown some steps off now, a wrong one, or letters."""
    if kind == "malformed":
        return "12ab56"
    if kind == "wrong" or serial not in SEEDS:
        shown = {
            hotp(seed, time_step(now, PERIOD) + o, 6, Algorithm.SHA1)
            for seed in SEEDS.values()
            for o in range(-3, 4)
        }
        return next(c for c in ("000000", "111111", "222222", "333333") if c not in shown)
    return hotp(SEEDS[serial], time_step(now, PERIOD) + int(kind), 6, Algorithm.SHA1)


class Lifecycle(RuleBasedStateMachine):
    """The operations of the manual on three users, two tokens and one administrator."""

    template: Path  # a migrated database and its key, copied for every run

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(dir=self.template.parent))
        self.clock = FrozenClock(T0)
        self.app: App | None = None
        self.model: Model | None = None
        self.pending: list[Pending] = []

    def teardown(self) -> None:
        if self.app is not None:
            self.app.store.dispose()
            self.app.hot.engine.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(
        rejects=st.booleans(),
        window=st.sampled_from([0, 1, 2]),
        otp_threshold=st.sampled_from([1, 3, 3]),
        password_threshold=st.sampled_from([1, 3, 3]),
        start=st.lists(st.sampled_from(["unregistered", "issued", *SEEDS]), min_size=3, max_size=3),
    )
    def build(
        self, rejects: bool, window: int, otp_threshold: int, password_threshold: int,
        start: list[str],
    ) -> None:  # fmt: skip
        for file in self.template.glob("otpradius.*"):
            shutil.copy2(file, self.folder / file.name)
        policy = {
            "otp_window": window,
            "lockout_threshold": otp_threshold,
            "password_lockout_threshold": password_threshold,
            "unregistered": "reject" if rejects else "password",
            "challenge_timeout": TIMEOUT,
        }
        data = settings_data(policy=policy)
        config = parse_settings(data, self.folder / "config.toml", Path.read_bytes)
        self.app = build_app(config, self.clock)
        self.model = Model(rejects, window, otp_threshold, password_threshold)
        for login, where in zip(LOGINS, start, strict=True):
            if where == "issued":
                self.issue(login, False)
            elif where in SEEDS:
                self.issue_and_activate(login, where)

    @property
    def a(self) -> App:
        assert self.app is not None
        return self.app

    @property
    def m(self) -> Model:
        assert self.model is not None
        return self.model

    def expect(self, outcome: AuthOutcome, result: Result, reason: Reason) -> None:
        assert (outcome.result, outcome.reason) == (result, reason), self.m

    # The clock

    @rule(seconds=st.sampled_from([PERIOD, PERIOD, 2 * PERIOD, 86400]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(before=st.booleans())
    def to_expiry(self, before: bool) -> None:
        """To the first token's expiry instant, or just before it."""
        expires = EXPIRES["11111111"]
        assert expires is not None
        target = expires - timedelta(microseconds=1) if before else expires
        if self.clock() < target:
            self.clock.now = target

    # Administration

    @rule(login=st.sampled_from(LOGINS), ahead=st.booleans())
    def issue(self, login: str, ahead: bool) -> None:
        start = self.clock().date() + timedelta(days=1 if ahead else 0)
        user = self.m.users[login]
        if user.serial is not None:
            with pytest.raises(StateError):
                self.a.admin().issue(login, start)
            return
        self.a.admin().issue(login, start)
        user.start, user.revoked, user.activation_failures = start, False, 0

    @rule(serial=st.sampled_from(sorted(SEEDS)), disabled=st.booleans())
    def disable(self, serial: str, disabled: bool) -> None:
        self.a.admin().set_disabled(serial, disabled)
        self.m.tokens[serial].disabled = disabled

    @rule(logins=st.lists(st.sampled_from(LOGINS), min_size=1, max_size=2, unique=True))
    def unlock(self, logins: list[str]) -> None:
        m = self.m
        before = {n: m.shows_suspended(n) for n in LOGINS}
        for login in logins:
            user = m.users[login]
            user.suspended, user.password_failures, user.activation_failures = False, 0, 0
            if user.serial is not None:
                token = m.tokens[user.serial]
                token.suspended, token.fail_count = False, 0
        lifted = sorted(n for n in LOGINS if before[n] and not m.shows_suspended(n))
        printed = self.a.admin().unlock(ADMIN, CONFIRMATION, logins)
        now = self.clock()
        assert [v.login for v in printed] == lifted
        for view in printed:
            assert (view.serial, view.state, view.suspended) == (
                m.users[view.login].serial,
                m.state(view.login, now),
                False,
            )

    @rule(logins=st.lists(st.sampled_from(LOGINS), min_size=1, max_size=2, unique=True))
    def revoke(self, logins: list[str]) -> None:
        m, now = self.m, self.clock()
        revocable = (OtpState.ACTIVE, OtpState.EXPIRED, OtpState.ISSUED)
        if any(m.state(n, now) not in revocable for n in logins):
            with pytest.raises(StateError):
                self.a.admin().revoke(ADMIN, CONFIRMATION, logins)
            return
        printed = self.a.admin().revoke(ADMIN, CONFIRMATION, logins)
        serials = set()
        for login in logins:
            user = m.users[login]
            assert printed[logins.index(login)].serial == user.serial
            if user.serial:
                serials.add(user.serial)
            user.serial, user.revoked, user.activation_failures = None, True, 0
        for serial in serials:
            if not m.sharers(serial):
                m.tokens[serial].suspended, m.tokens[serial].fail_count = False, 0
        for view in printed:
            assert view.state is OtpState.REVOKED
            assert view.suspended == m.users[view.login].suspended

    # Activation (SPEC §3.5), as otpctl activate and over RADIUS

    def serial_refusal(
        self, login: str, token: ModelToken | None, now: datetime
    ) -> tuple[Result, Reason] | None:
        """How an activation naming ``token`` is refused before any code is read; applied."""
        m = self.m
        if not m.awaiting(login, now):
            return Result.REJECT, Reason.NOT_AWAITING_ACTIVATION
        if token is None or token.disabled or token.expired(now):
            m.activation_failure(login)
            return Result.REJECT, Reason.BAD_SERIAL
        if token.suspended:
            return Result.REJECT, Reason.TOKEN_SUSPENDED
        return None

    def expected_activation(self, login: str, serial: str, kind: str) -> tuple[Result, Reason]:
        """The outcome of an activation of ``serial`` by ``login`` with a code; applied."""
        m, now = self.m, self.clock()
        user, token = m.users[login], m.tokens.get(serial)
        if user.suspended:
            return Result.REJECT, Reason.USER_SUSPENDED
        refusal = self.serial_refusal(login, token, now)
        if refusal is not None:
            return refusal
        assert token is not None
        reason, step = m.match(serial, typed_code(serial, kind, now), now)
        if step is None:
            m.activation_failure(login)
            return Result.REJECT, reason
        token.last_step, token.fail_count = step, 0
        user.serial, user.revoked, user.activation_failures = serial, False, 0
        return Result.ACCEPT, Reason.ACTIVATED

    @rule(login=st.sampled_from(LOGINS), serial=st.sampled_from(sorted(SEEDS)))
    def issue_and_activate(self, login: str, serial: str) -> None:
        """Issued today and activated at once with the code shown, as most users do."""
        self.issue(login, False)
        self.activate(login, serial, "0")
        self.clock.advance(PERIOD)

    @rule(login=st.sampled_from(LOGINS), serial=SERIALS, kind=CODE_KINDS)
    def activate(self, login: str, serial: str, kind: str) -> None:
        text = typed_code(serial, kind, self.clock())
        outcome = self.a.authenticator().activate(login, serial, text)
        result, reason = self.expected_activation(login, serial, kind)
        self.expect(outcome, result, reason)

    # Logins (SPEC §3)

    def password_step(self, login: str, right: bool, trusted: bool) -> tuple[Result, Reason] | None:
        """What a first request comes to before any code is read; None when the code decides
        (an active user whose token may be used). Counts what it says."""
        m, now = self.m, self.clock()
        user = m.users[login]
        if user.suspended:
            return Result.REJECT, Reason.USER_SUSPENDED
        state = m.state(login, now)
        if state is OtpState.EXPIRED:
            return Result.REJECT, Reason.TOKEN_EXPIRED
        if state is OtpState.ACTIVE:
            token = m.tokens[user.serial or ""]
            if token.disabled:
                return Result.REJECT, Reason.TOKEN_DISABLED
            if token.suspended:
                return Result.REJECT, Reason.TOKEN_SUSPENDED
            return None
        if not trusted:
            if not right:
                m.password_failure(login)
                return Result.REJECT, Reason.BAD_PASSWORD
            user.password_failures = 0
        if state is OtpState.UNREGISTERED:
            if m.unregistered_rejects:
                return Result.REJECT, Reason.UNREGISTERED_REJECTED
            return Result.ACCEPT, Reason.PASSWORD_ONLY
        if state is OtpState.ISSUED and not m.awaiting(login, now):
            return Result.ACCEPT, Reason.PASSWORD_ONLY
        return Result.CHALLENGE, Reason.SERIAL_CHALLENGE

    def otp_step(self, login: str, kind: str) -> tuple[Result, Reason]:
        """The code check of an active user whose password was verified (or trusted)."""
        m, now = self.m, self.clock()
        serial = m.users[login].serial
        assert serial is not None
        text = typed_code(serial, kind, now)
        reason, step = m.match(serial, text, now)
        if step is None:
            m.token_failure(serial)
            return Result.REJECT, reason
        m.tokens[serial].last_step, m.tokens[serial].fail_count = step, 0
        return Result.ACCEPT, Reason.OK

    @rule(
        login=st.sampled_from(LOGINS),
        mode=st.sampled_from([InputMode.SPLIT, InputMode.AUTO, InputMode.OTP]),
        right=RIGHT,
        kind=CODE_KINDS,
    )
    def login_at_once(self, login: str, mode: InputMode, right: bool, kind: str) -> None:
        m, now = self.m, self.clock()
        user = m.users[login]
        trusted = mode is InputMode.OTP
        password = PASSWORD if right else PASSWORD + "x"
        code = typed_code(user.serial, kind, now)
        text = code if trusted else password + code
        if user.serial is None and not trusted:
            text = password  # nothing to type after it yet
        outcome = self.a.authenticator().authenticate(AuthRequest(login, text, mode))
        early = self.password_step(login, right, trusted)
        if early is not None:
            self.expect(outcome, *early)
            return
        # In auto mode a text not ending in digits is read whole, and is no password.
        if not trusted and (not right or (mode is InputMode.AUTO and kind == "malformed")):
            m.password_failure(login)
            self.expect(outcome, Result.REJECT, Reason.BAD_PASSWORD)
            return
        if not trusted:
            user.password_failures = 0
        self.expect(outcome, *self.otp_step(login, kind))

    @rule(
        login=st.sampled_from(LOGINS),
        mode=st.sampled_from([InputMode.SPLIT, InputMode.AUTO, InputMode.OTP]),
        kind=CODE_KINDS,
    )
    def next_login(self, login: str, mode: InputMode, kind: str) -> None:
        """A step later, the right password: the everyday login (weighs the others down)."""
        self.clock.advance(PERIOD)
        self.login_at_once(login, mode, True, kind)

    @rule(
        logins=st.lists(st.sampled_from(LOGINS), min_size=2, max_size=3, unique=True),
        kinds=st.lists(CODE_KINDS, min_size=3, max_size=3),
    )
    def batch(self, logins: list[str], kinds: list[str]) -> None:
        """Several users' logins decided at once and written in one transaction, as the
        daemon's workers do: each comes out as it would have one after another."""
        now = self.clock()
        auth = self.a.authenticator()
        prepared = []
        for login, kind in zip(logins, kinds, strict=False):
            serial = self.m.users[login].serial
            text = PASSWORD + (typed_code(serial, kind, now) if serial else "")
            prepared.append(auth.prepare(AuthRequest(login, text, InputMode.SPLIT)))
        outcomes = auth.commit(prepared)
        for login, kind, outcome in zip(logins, kinds, outcomes, strict=False):
            assert isinstance(outcome, AuthOutcome)
            early = self.password_step(login, True, False)
            if early is not None:
                self.expect(outcome, *early)
                continue
            self.m.users[login].password_failures = 0
            self.expect(outcome, *self.otp_step(login, kind))

    @rule(login=st.sampled_from(LOGINS), right=RIGHT, trusted=st.booleans())
    def login_by_challenge(self, login: str, right: bool, trusted: bool) -> None:
        """The password alone (challenge mode), or an OTP-mode portal's first request."""
        m = self.m
        password = PASSWORD if right else PASSWORD + "x"
        mode = InputMode.OTP if trusted else InputMode.CHALLENGE
        if trusted and m.state(login, self.clock()) is OtpState.ACTIVE:
            return  # an OTP-mode request of an active user is a code: login_at_once
        outcome = self.a.authenticator().authenticate(AuthRequest(login, password, mode))
        early = self.password_step(login, right, trusted)
        if early is None and not right:
            m.password_failure(login)
            early = (Result.REJECT, Reason.BAD_PASSWORD)
        elif early is None:
            m.users[login].password_failures = 0
            early = (Result.CHALLENGE, Reason.OTP_CHALLENGE)
        self.expect(outcome, *early)
        if outcome.result is Result.CHALLENGE:
            assert outcome.state is not None
            assert outcome.prompt is not None
            expires = self.clock() + timedelta(seconds=TIMEOUT)
            self.pending.append(Pending(login, outcome.state, outcome.prompt, None, expires))

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), kind=CODE_KINDS, serial=SERIALS)
    def answer(self, data: st.DataObject, kind: str, serial: str) -> None:
        """Answer a challenge, at once or after anything else happened."""
        m, now = self.m, self.clock()
        pending = data.draw(st.sampled_from(self.pending))
        login = pending.login
        if pending.prompt is Stage.ACTIVATION_SERIAL:
            text = serial
        elif pending.prompt is Stage.ACTIVATION_OTP:
            text = typed_code(pending.serial, kind, now)
        else:
            text = typed_code(m.users[login].serial, kind, now)
        request = AuthRequest(login, text, InputMode.CHALLENGE, pending.state)
        outcome = self.a.authenticator().authenticate(request)
        expected = self.expected_answer(pending, serial, kind)
        self.expect(outcome, *expected)
        if outcome.result is Result.CHALLENGE:
            assert outcome.state is not None
            expires = now + timedelta(seconds=TIMEOUT)
            self.pending.append(
                Pending(login, outcome.state, Stage.ACTIVATION_OTP, serial, expires)
            )

    def expected_answer(self, pending: Pending, serial: str, kind: str) -> tuple[Result, Reason]:
        m, now = self.m, self.clock()
        if pending.used:
            return Result.REJECT, Reason.BAD_STATE
        pending.used = True
        if now >= pending.expires:
            return Result.REJECT, Reason.BAD_STATE
        login = pending.login
        user = m.users[login]
        if pending.prompt is Stage.ACTIVATION_OTP:
            assert pending.serial is not None
            return self.expected_activation(login, pending.serial, kind)
        if user.suspended:
            return Result.REJECT, Reason.USER_SUSPENDED
        if pending.prompt is Stage.ACTIVATION_SERIAL:
            refusal = self.serial_refusal(login, m.tokens.get(serial), now)
            return refusal or (Result.CHALLENGE, Reason.ACTIVATION_OTP_CHALLENGE)
        state = m.state(login, now)
        if state is OtpState.EXPIRED:
            return Result.REJECT, Reason.TOKEN_EXPIRED
        if state is OtpState.REVOKED:
            return Result.REJECT, Reason.TOKEN_REVOKED
        if state is not OtpState.ACTIVE:
            return Result.REJECT, Reason.BAD_STATE
        token = m.tokens[user.serial or ""]
        if token.disabled:
            return Result.REJECT, Reason.TOKEN_DISABLED
        if token.suspended:
            return Result.REJECT, Reason.TOKEN_SUSPENDED
        user.password_failures = 0  # the answer goes with a password verified (SPEC §3.7)
        return self.otp_step(login, kind)

    @rule(login=st.sampled_from(LOGINS), serial=st.sampled_from(sorted(SEEDS)))
    def import_binding(self, login: str, serial: str) -> None:
        """``user import --update`` binding the user at once, as a migration does."""
        m = self.m
        spec = UserSpec(login, login.title(), password=PASSWORD, serial=serial, line=2)
        import_users(self.a.store, self.a.hashing, self.clock, [spec], update=True)
        user = m.users[login]
        left = user.serial
        user.serial, user.revoked, user.activation_failures = serial, False, 0
        if left is not None and left != serial and not m.sharers(left):
            m.tokens[left].suspended, m.tokens[left].fail_count = False, 0

    @rule(login=st.sampled_from(LOGINS))
    def delete_and_add_again(self, login: str) -> None:
        """The account closed, then opened again under the same login: a new user."""
        m = self.m
        self.a.admin().delete_users(ADMIN, CONFIRMATION, [login])
        serial = m.users[login].serial
        m.users[login] = ModelUser()
        if serial is not None and not m.sharers(serial):
            m.tokens[serial].suspended, m.tokens[serial].fail_count = False, 0
        for pending in self.pending:
            if pending.login == login:
                pending.used = True  # its challenges went with it
        add_user(self.a, login)

    # What the listings show

    @invariant()
    def listings_agree(self) -> None:
        if self.model is None:
            return
        m, now = self.m, self.clock()
        admin = self.a.admin()
        for view in admin.users():
            if view.login not in m.users:
                continue
            user = m.users[view.login]
            token = m.tokens[user.serial] if user.serial else None
            assert (view.serial, view.state, view.suspended, view.token_disabled) == (
                user.serial,
                m.state(view.login, now),
                m.shows_suspended(view.login),
                token is not None and token.disabled,
            ), (view, m)
        for listing in admin.tokens():
            token = m.tokens[listing.serial]
            assert (
                listing.users,
                listing.fail_count,
                listing.suspended,
                listing.disabled,
            ) == (
                tuple(m.sharers(listing.serial)),
                token.fail_count,
                token.suspended,
                token.disabled,
            ), (listing, m)


def _template(folder: Path) -> Path:
    """A migrated database with the tokens, the users and the administrator, and its key."""
    folder.mkdir(mode=0o700)
    config = parse_settings(settings_data(), folder / "config.toml", Path.read_bytes)
    create_key(config.key_file)
    create_private_sqlite_file(config.database_url)
    engine = make_engine(config.database_url)
    upgrade(engine)
    engine.dispose()
    app = build_app(config, FrozenClock(T0))
    specs = [
        TokenSpec(s, seed, TokenKind.HARDWARE, Algorithm.SHA1, 6, PERIOD, EXPIRES[s])
        for s, seed in SEEDS.items()
    ]
    app.admin().import_tokens(specs)
    for login in LOGINS:
        add_user(app, login)
    add_admin(app)
    app.store.dispose()
    app.hot.engine.dispose()
    return folder


def test_states_and_counting_follow_the_model(tmp_path: Path) -> None:
    Lifecycle.template = _template(tmp_path / "template")
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
