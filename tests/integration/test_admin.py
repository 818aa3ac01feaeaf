"""Administration on a real SQLite file: confirmation passwords, unlock, revoke, import, audit."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, text

import otpcore.approvals as approvals_module
import otpcore.token_import as token_import_module
from otpcore.admin import Admin
from otpcore.app import App
from otpcore.crypto import Keyring
from otpcore.errors import (
    AlreadyExists,
    ImportRefused,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StateError,
)
from otpcore.model import Algorithm, InputMode, OtpState, Reason, Result, TokenKind, UserClass
from otpcore.onboarding import import_users
from otpcore.passwords import HashingParams, PasswordHashing
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec, read_token_csv
from otpcore.token_import import IMPORT_CHUNK, TokenImport
from otpcore.user_csv import UserSpec
from otpcore.views import Imported, UserView
from tests.conftest import BOTH_BACKENDS
from tests.integration.lifecycle import (
    ADMIN,
    CONFIRMATION,
    PASSWORD,
    SECRET,
    SERIAL,
    activated,
    add_admin,
    add_user,
    code,
    import_token,
    login,
    next_step,
    token,
    user,
    wrong_code,
)

pytestmark = BOTH_BACKENDS


def snapshot(app: App) -> tuple[list[UserView], list[object]]:
    """Everything a listing shows: to assert that nothing changed."""
    return app.admin().users(), [t.as_json() for t in app.admin().tokens()]


@pytest.fixture
def suspended(app: App, clock: FrozenClock) -> App:
    """taro and hanako share a token suspended after five wrong OTPs; chiroadm administers."""
    import_token(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    add_admin(app)
    add_user(app, "kojima")  # general, unregistered
    activated(app, clock, "taro")
    activated(app, clock, "hanako")
    for _ in range(5):
        login(app, "taro", PASSWORD + wrong_code(clock))
    assert token(app).suspended
    return app


# Users


def test_master_and_admin_users_need_a_confirmation_password(app: App) -> None:
    for user_class in (UserClass.MASTER, UserClass.ADMIN):
        with pytest.raises(InvalidInput, match="confirmation"):
            app.admin().add_user("boss", "Boss", user_class, PASSWORD)
        with pytest.raises(InvalidInput, match="differ"):
            app.admin().add_user("boss", "Boss", user_class, PASSWORD, PASSWORD)
    assert app.admin().users() == []


def test_a_login_is_unique(app: App) -> None:
    add_user(app, "taro")
    with pytest.raises(AlreadyExists):
        add_user(app, "taro")


@pytest.mark.parametrize("bad", ["", "a b", "a,b", "x" * 129, "tab\there"])
def test_bad_logins_are_refused(app: App, bad: str) -> None:
    with pytest.raises(InvalidInput):
        add_user(app, bad)
    assert app.admin().users() == []


def test_issue_needs_an_unbound_user(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    view = app.admin().issue("taro", date(2027, 1, 4))
    assert (view.state, view.start_date) == (OtpState.ISSUED, date(2027, 1, 4))
    activated(app, clock, "taro")
    with pytest.raises(StateError, match="revoke"):
        app.admin().issue("taro", date(2027, 1, 4))
    with pytest.raises(NotFound):
        app.admin().issue("nobody", date(2027, 1, 4))


def test_user_list_columns(app: App, clock: FrozenClock) -> None:
    expires = datetime(2031, 3, 31, tzinfo=UTC)
    import_token(app, expires=expires)
    add_user(app, "taro")
    activated(app, clock, "taro")
    assert user(app, "taro").as_json() == {
        "login": "taro",
        "name": "Taro",
        "class": "general",
        "serial": SERIAL,
        "state": "active",
        "suspended": False,
        "token_expires": "2031-03-31T00:00:00+00:00",
    }


# Confirmation password


def test_wrong_confirmation_changes_nothing_and_is_audited(suspended: App) -> None:
    before = snapshot(suspended)
    for operation in (suspended.admin().unlock, suspended.admin().revoke):
        with pytest.raises(PermissionDenied, match="wrong confirmation"):
            operation(ADMIN, "not it", ["taro"])
    assert snapshot(suspended) == before
    denied = [e for e in suspended.admin().audit() if e.outcome == "denied"]
    assert [(e.actor, e.action) for e in denied] == [(ADMIN, "unlock"), (ADMIN, "revoke")]
    assert all("not it" not in e.detail for e in denied)


def test_five_wrong_confirmations_lock_it_until_reset(suspended: App) -> None:
    admin = suspended.admin()
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            admin.unlock(ADMIN, "wrong", ["taro"])
    # Now even the right one is refused.
    with pytest.raises(PermissionDenied, match="locked"):
        admin.unlock(ADMIN, CONFIRMATION, ["taro"])
    assert token(suspended).suspended
    admin.set_password(ADMIN, "a new confirmation 1", confirmation=True)
    with pytest.raises(PermissionDenied):
        admin.unlock(ADMIN, CONFIRMATION, ["taro"])
    lifted = admin.unlock(ADMIN, "a new confirmation 1", ["taro"])
    assert [v.login for v in lifted] == ["hanako", "taro"]


def test_four_wrong_then_right_restarts_the_count(suspended: App) -> None:
    admin = suspended.admin()
    for _ in range(4):
        with pytest.raises(PermissionDenied):
            admin.unlock(ADMIN, "wrong", ["taro"])
    admin.unlock(ADMIN, CONFIRMATION, ["taro"])
    for _ in range(4):
        with pytest.raises(PermissionDenied):
            admin.unlock(ADMIN, "wrong", ["taro"])
    admin.unlock(ADMIN, CONFIRMATION, ["taro"])


def test_an_unknown_administrator_of_any_length_is_denied_and_audited(suspended: App) -> None:
    # The event that records the denial names the --admin given, cut to its column's size
    # (PostgreSQL refused the whole event, so the denial went unrecorded).
    named = "x" * 300
    with pytest.raises(PermissionDenied):
        suspended.admin().unlock(named, "wrong", ["taro"])
    (event,) = [e for e in suspended.admin().audit() if e.outcome == "denied"]
    assert (event.action, event.actor, event.targets) == ("unlock", "x" * 128, ("taro",))


class SlowHashing(PasswordHashing):
    """Counts the passwords it checks, each slow enough for parallel runs to overlap."""

    def __init__(self, params: HashingParams) -> None:
        super().__init__(params)
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, stored: str, offered: str) -> bool:
        with self._lock:
            self.checked += 1
        time.sleep(0.3)
        return super().verify(stored, offered)


def _last_try_guessed_at_once(app: App) -> tuple[int, list[str]]:
    """Four wrong confirmation passwords, then eight runs at once: how many passwords were
    checked among the eight, and what each run was told."""
    for _ in range(4):
        with pytest.raises(PermissionDenied):
            app.admin().unlock(ADMIN, "wrong", ["taro"])
    hashing = SlowHashing(app.settings.hashing)
    slow = dataclasses.replace(app, hashing=hashing)
    refusals: list[str] = []

    def guess(number: int) -> None:
        try:
            slow.admin().unlock(ADMIN, f"guess {number}", ["taro"])
        except PermissionDenied as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return hashing.checked, refusals


def test_parallel_guesses_get_no_more_tries_than_the_limit(suspended: App) -> None:
    checked, refusals = _last_try_guessed_at_once(suspended)
    # One try was left: eight runs at once get that one between them, and no more.
    assert checked == 1
    assert len(refusals) == 8
    # The seven turned away are told it is locked; so is the one that used the last try.
    assert sum("is locked after 5" in refusal for refusal in refusals) == 7
    assert sum("is now locked after 5" in refusal for refusal in refusals) == 1
    with pytest.raises(PermissionDenied, match="locked"):
        suspended.admin().unlock(ADMIN, CONFIRMATION, ["taro"])
    assert token(suspended).suspended


# Holds the statement that counts the last try for a second, after it has taken the row's
# lock: the runs started meanwhile have all read four tries counted and then wait at their own
# count, where the limit inside the statement, not the count they read, must turn them away.
_HOLD_LAST_TRY = """
CREATE FUNCTION hold_last_try() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.confirmation_failures = 4 AND NEW.confirmation_failures = 5 THEN
        PERFORM pg_sleep(1);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hold_last_try BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION hold_last_try();
"""


def test_guesses_that_meet_at_the_count_get_no_more_tries_than_the_limit(
    suspended: App, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite runs each read and count under one write lock: they cannot meet")
    engine = create_engine(suspended.settings.database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(_HOLD_LAST_TRY)
    try:
        checked, refusals = _last_try_guessed_at_once(suspended)
        with engine.connect() as connection:
            counted = connection.execute(
                text("SELECT confirmation_failures FROM users WHERE login = :login"),
                {"login": ADMIN},
            ).scalar_one()
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER hold_last_try ON users")
            connection.exec_driver_sql("DROP FUNCTION hold_last_try()")
        engine.dispose()
    # One try was left: the runs that read four counted took it between them, and no more.
    assert checked == 1
    assert sum("is locked after 5" in refusal for refusal in refusals) == 7
    assert counted == 5


def test_a_general_user_cannot_unlock_or_revoke(suspended: App) -> None:
    before = snapshot(suspended)
    for operation in (suspended.admin().unlock, suspended.admin().revoke):
        with pytest.raises(PermissionDenied, match="not a master or admin"):
            operation("kojima", PASSWORD, ["taro"])
        with pytest.raises(PermissionDenied, match=r"^no user nobody: the approver must be a "):
            operation("nobody", PASSWORD, ["taro"])
    assert snapshot(suspended) == before
    denied = [
        (e.actor, e.action, e.detail.split(";")[0])
        for e in suspended.admin().audit()
        if e.outcome == "denied"
    ]
    assert denied == [
        ("kojima", "unlock", "not a master or admin user"),
        ("nobody", "unlock", "no such user"),
        ("kojima", "revoke", "not a master or admin user"),
        ("nobody", "revoke", "no such user"),
    ]


def test_a_general_user_has_no_confirmation_password(app: App) -> None:
    add_user(app, "kojima")
    with pytest.raises(StateError):
        app.admin().set_password("kojima", "whatever 1", confirmation=True)


def test_a_master_user_may_unlock(suspended: App) -> None:
    add_user(suspended, "master", UserClass.MASTER)
    assert [v.login for v in suspended.admin().unlock("master", CONFIRMATION, ["hanako"])] == [
        "hanako",
        "taro",
    ]


# Unlock


def test_unlock_lists_every_user_lifted_and_audits(suspended: App, clock: FrozenClock) -> None:
    lifted = suspended.admin().unlock(ADMIN, CONFIRMATION, ["taro"])
    assert [(v.login, v.state, v.suspended) for v in lifted] == [
        ("hanako", OtpState.ACTIVE, False),
        ("taro", OtpState.ACTIVE, False),
    ]
    (event,) = [e for e in suspended.admin().audit() if e.action == "unlock"]
    assert (event.actor, event.targets, event.outcome) == (ADMIN, ("hanako", "taro"), "ok")
    assert event.detail.endswith("run as otpctl")  # the account that ran it, beside the approver
    assert (token(suspended).suspended, token(suspended).fail_count) == (False, 0)
    result = login(suspended, "hanako", PASSWORD + code(clock))
    assert result.result is Result.ACCEPT


@pytest.mark.parametrize("operation", ["unlock", "revoke"])
def test_an_approved_operation_then_refused_is_audited_with_its_targets(
    suspended: App, operation: str
) -> None:
    admin = suspended.admin("otpctl:alice")
    with pytest.raises(NotFound):
        getattr(admin, operation)(ADMIN, CONFIRMATION, ["taro", "nobody"])
    (event,) = [e for e in admin.audit() if e.action == operation]
    assert (event.actor, event.targets, event.outcome) == (ADMIN, ("taro", "nobody"), "refused")
    assert event.detail == "no user nobody; run as otpctl:alice"
    assert token(suspended).suspended  # nothing else was written


def test_a_denied_operation_names_whom_it_was_for_and_who_ran_it(suspended: App) -> None:
    admin = suspended.admin("otpctl:alice")
    with pytest.raises(PermissionDenied):
        admin.revoke(ADMIN, "not it", ["taro", "hanako"])
    (event,) = [e for e in admin.audit() if e.outcome == "denied"]
    assert (event.actor, event.action, event.targets) == (ADMIN, "revoke", ("taro", "hanako"))
    assert event.detail == "wrong confirmation password; run as otpctl:alice"


def test_unlock_of_a_user_suspended_by_passwords(app: App, clock: FrozenClock) -> None:
    add_admin(app)
    add_user(app, "kojima")
    for _ in range(10):
        login(app, "kojima", "wrong")
    assert user(app, "kojima").suspended
    assert [v.login for v in app.admin().unlock(ADMIN, CONFIRMATION, ["kojima"])] == ["kojima"]
    assert login(app, "kojima", PASSWORD).result is Result.ACCEPT


def test_an_unlock_racing_the_failure_that_suspends_the_token_still_lifts_it(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    add_admin(app)
    activated(app, clock, "taro")
    activated(app, clock, "hanako")
    for _ in range(4):
        login(app, "taro", PASSWORD + wrong_code(clock))
    lifted: list[list[UserView]] = []
    # The fifth wrong OTP is being written (a daemon's batch, not committed yet) while an
    # administrator unlocks hanako: the unlock must come after it and lift the token.
    with app.hot.transaction() as writer:
        assert writer.count_token_failure("taro", SERIAL, 5, clock()) is True
        unlock = threading.Thread(
            target=lambda: lifted.append(app.admin().unlock(ADMIN, CONFIRMATION, ["hanako"]))
        )
        unlock.start()
        unlock.join(timeout=1.0)
    unlock.join(timeout=60)
    assert not unlock.is_alive()
    ((*views,),) = lifted
    assert [v.login for v in views] == ["hanako", "taro"]
    assert (token(app).suspended, token(app).fail_count) == (False, 0)
    assert not user(app, "taro").suspended
    assert login(app, "taro", PASSWORD + code(clock)).result is Result.ACCEPT


def test_unlock_of_an_unknown_login_changes_nothing(suspended: App) -> None:
    before = snapshot(suspended)
    with pytest.raises(NotFound):
        suspended.admin().unlock(ADMIN, CONFIRMATION, ["taro", "nobody"])
    assert snapshot(suspended) == before


# Revoke


def test_revoke_of_an_unregistered_user_is_refused(suspended: App) -> None:
    before = snapshot(suspended)
    with pytest.raises(StateError, match="kojima"):
        suspended.admin().revoke(ADMIN, CONFIRMATION, ["kojima"])
    assert snapshot(suspended) == before


@pytest.mark.parametrize("bad", ["kojima", "nobody"])
def test_revoke_of_several_with_one_bad_login_changes_nothing(suspended: App, bad: str) -> None:
    before = snapshot(suspended)
    with pytest.raises((StateError, NotFound)):
        suspended.admin().revoke(ADMIN, CONFIRMATION, ["taro", bad, "hanako"])
    assert snapshot(suspended) == before


def test_revoke_twice_is_refused(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_admin(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    app.admin().revoke(ADMIN, CONFIRMATION, ["taro"])
    with pytest.raises(StateError):
        app.admin().revoke(ADMIN, CONFIRMATION, ["taro"])


# Delete (an account closed)


def test_delete_shuts_a_user_out_and_leaves_the_token_to_its_sharers(
    suspended: App, clock: FrozenClock
) -> None:
    suspended.admin().unlock(ADMIN, CONFIRMATION, ["hanako"])
    next_step(clock)
    deleted = suspended.admin().delete_users(ADMIN, CONFIRMATION, ["taro"])
    assert [(v.login, v.serial, v.state) for v in deleted] == [("taro", SERIAL, OtpState.ACTIVE)]
    with pytest.raises(NotFound):
        suspended.admin().user("taro")
    # Gone, not merely revoked: not even a new activation with the token in hand lets in.
    assert login(suspended, "taro", PASSWORD + code(clock)).reason is Reason.UNKNOWN_USER
    assert suspended.authenticator().activate("taro", SERIAL, code(clock)).reason is (
        Reason.UNKNOWN_USER
    )
    assert token(suspended).users == ("hanako",)
    assert login(suspended, "hanako", PASSWORD + code(clock)).reason is Reason.OK
    (event,) = [e for e in suspended.admin().audit() if e.action == "user_delete"]
    assert (event.actor, event.targets, event.outcome) == (ADMIN, ("taro",), "ok")
    assert event.detail.startswith(f"taro:{SERIAL}")


def test_deleting_the_last_users_of_a_token_releases_it(suspended: App) -> None:
    deleted = suspended.admin().delete_users(ADMIN, CONFIRMATION, ["taro", "hanako", "kojima"])
    assert [v.login for v in deleted] == ["taro", "hanako", "kojima"]
    assert [v.suspended for v in deleted] == [True, True, False]  # as they were
    assert token(suspended).users == ()
    assert not token(suspended).suspended  # as after revoking them: activatable again
    assert [v.login for v in suspended.admin().users()] == [ADMIN]


def test_delete_drops_a_pending_challenge(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_admin(app)
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())
    prompt = login(app, "taro", PASSWORD, InputMode.CHALLENGE)
    assert prompt.reason is Reason.SERIAL_CHALLENGE
    app.admin().delete_users(ADMIN, CONFIRMATION, ["taro"])
    add_user(app, "taro")  # a new customer given the same login
    app.admin().issue("taro", clock().date())
    answer = login(app, "taro", SERIAL, state=prompt.state)
    assert answer.reason is Reason.BAD_STATE


@pytest.mark.parametrize("bad", ["nobody", ADMIN])
def test_delete_with_one_bad_login_deletes_nothing_and_is_audited(suspended: App, bad: str) -> None:
    before = snapshot(suspended)
    with pytest.raises((NotFound, StateError)):
        suspended.admin().delete_users(ADMIN, CONFIRMATION, ["taro", bad])
    assert snapshot(suspended) == before
    (event,) = [e for e in suspended.admin().audit() if e.action == "user_delete"]
    assert (event.targets, event.outcome) == (("taro", bad), "refused")


def test_delete_needs_an_admin_and_its_confirmation(suspended: App) -> None:
    before = snapshot(suspended)
    with pytest.raises(PermissionDenied):
        suspended.admin().delete_users(ADMIN, "wrong", ["taro"])
    with pytest.raises(PermissionDenied):
        suspended.admin().delete_users("kojima", CONFIRMATION, ["taro"])
    assert snapshot(suspended) == before


def test_only_a_master_user_deletes_a_master_user(app: App) -> None:
    add_user(app, "boss", UserClass.MASTER)
    add_user(app, "boss2", UserClass.MASTER)
    add_admin(app)
    add_user(app, "taro")
    with pytest.raises(PermissionDenied, match="boss is a master user"):
        app.admin().delete_users(ADMIN, CONFIRMATION, ["taro", "boss"])
    assert [v.login for v in app.admin().users()] == ["boss", "boss2", ADMIN, "taro"]
    (event,) = [e for e in app.admin().audit() if e.action == "user_delete"]
    assert (event.actor, event.targets, event.outcome) == (ADMIN, ("taro", "boss"), "denied")
    app.admin().delete_users("boss2", CONFIRMATION, ["boss", ADMIN, "taro"])
    assert [v.login for v in app.admin().users()] == ["boss2"]


@pytest.mark.parametrize(
    ("operation", "targets"),
    # A token delete checks the approver before it looks for the serial.
    [("unlock", ["taro"]), ("revoke", ["taro"]), ("delete_tokens", ["NO-SUCH-SERIAL"])],
)
def test_an_approval_by_an_admin_deleted_meanwhile_is_refused(
    suspended: App, monkeypatch: pytest.MonkeyPatch, operation: str, targets: list[str]
) -> None:
    add_user(suspended, "adm2", UserClass.ADMIN)
    confirm = Admin.confirm
    raced: list[bool] = []

    def confirm_while_deleted(self: Admin, *args: Any, **kwargs: Any) -> None:
        confirm(self, *args, **kwargs)
        if not raced:  # ADMIN is approved; adm2 deletes ADMIN before the operation commits
            raced.append(True)
            suspended.admin().delete_users("adm2", CONFIRMATION, [ADMIN])

    monkeypatch.setattr(Admin, "confirm", confirm_while_deleted)
    before = snapshot(suspended)
    with pytest.raises(StateError, match=f"{ADMIN} is no longer a master or admin user"):
        getattr(suspended.admin(), operation)(ADMIN, CONFIRMATION, targets)
    users, tokens = before
    assert snapshot(suspended) == ([v for v in users if v.login != ADMIN], tokens)


def test_token_delete_takes_an_unbound_token_and_its_seed(app: App, clock: FrozenClock) -> None:
    import_token(app)
    import_token(app, "RETIRED1", secret=bytes(range(40, 60)))
    add_admin(app)
    add_user(app, "taro")
    add_user(app, "hanako")
    activated(app, clock, "taro")
    app.admin().issue("hanako", clock().date())
    # hanako is half way through activating RETIRED1 when it is deleted.
    prompt = login(app, "hanako", PASSWORD, InputMode.CHALLENGE)
    otp_prompt = login(app, "hanako", "RETIRED1", state=prompt.state)
    assert otp_prompt.reason is Reason.ACTIVATION_OTP_CHALLENGE
    deleted = app.admin().delete_tokens(ADMIN, CONFIRMATION, ["RETIRED1"])
    assert [(t.serial, t.users) for t in deleted] == [("RETIRED1", ())]
    assert [t.serial for t in app.admin().tokens()] == [SERIAL]
    answer = login(app, "hanako", code(clock, secret=bytes(range(40, 60))), state=otp_prompt.state)
    assert answer.reason is Reason.BAD_STATE
    assert user(app, "hanako").serial is None
    (event,) = [e for e in app.admin().audit() if e.action == "token_delete"]
    assert (event.actor, event.targets, event.outcome) == (ADMIN, ("RETIRED1",), "ok")
    # The serial may come back with a new seed, as a re-delivered token.
    import_token(app, "RETIRED1", secret=bytes(range(60, 80)))


@pytest.mark.parametrize("bad", ["NOSUCH", SERIAL])
def test_token_delete_of_a_bound_or_unknown_token_deletes_nothing(suspended: App, bad: str) -> None:
    import_token(suspended, "RETIRED1", secret=bytes(range(40, 60)))
    before = snapshot(suspended)
    with pytest.raises((NotFound, StateError)) as caught:
        suspended.admin().delete_tokens(ADMIN, CONFIRMATION, ["RETIRED1", bad])
    if bad == SERIAL:
        assert str(caught.value) == (
            f"token {SERIAL} is bound to hanako, taro: revoke or delete them first"
        )
    assert snapshot(suspended) == before
    with pytest.raises(PermissionDenied):
        suspended.admin().delete_tokens("kojima", CONFIRMATION, ["RETIRED1"])
    assert snapshot(suspended) == before


def test_two_admins_deleting_each_other_at_once_leave_one(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(app, "adm_a", UserClass.ADMIN)
    add_user(app, "adm_b", UserClass.ADMIN)
    confirm = Admin.confirm
    raced: list[bool] = []

    def confirm_while_the_other_commits(self: Admin, *args: Any, **kwargs: Any) -> None:
        confirm(self, *args, **kwargs)
        if not raced:  # adm_b is approved; adm_a's run deletes adm_b before b's commits
            raced.append(True)
            app.admin().delete_users("adm_a", CONFIRMATION, ["adm_b"])

    monkeypatch.setattr(Admin, "confirm", confirm_while_the_other_commits)
    with pytest.raises(StateError, match="adm_b is no longer a master or admin user"):
        app.admin().delete_users("adm_b", CONFIRMATION, ["adm_a"])
    assert [v.login for v in app.admin().users()] == ["adm_a"]
    events = [(e.actor, e.outcome) for e in app.admin().audit() if e.action == "user_delete"]
    assert events == [("adm_a", "ok"), ("adm_b", "refused")]


def test_a_revoke_and_a_delete_of_a_tokens_last_two_users_at_once_release_it(
    suspended: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each takes one of the two users of the suspended token; whichever commits second must
    # find no user left and lift the suspension, or nobody could ever unlock the token.
    add_user(suspended, "adm2", UserClass.ADMIN)
    release = approvals_module.release_unused
    deleting, revoked = threading.Event(), threading.Event()

    def release_slowly(repo: Any, serials: Any) -> list[str]:
        released = release(repo, serials)
        if threading.current_thread().name == "deleter":
            deleting.set()
            revoked.wait(1.0)  # the revoke runs meanwhile (or waits for this one's locks)
        return released

    monkeypatch.setattr(approvals_module, "release_unused", release_slowly)
    errors: list[Exception] = []

    def run(action: Any) -> None:
        try:
            action()
        except Exception as exc:
            errors.append(exc)

    deleter = threading.Thread(
        target=run, name="deleter",
        args=(lambda: suspended.admin().delete_users(ADMIN, CONFIRMATION, ["taro"]),),
    )  # fmt: skip
    deleter.start()
    assert deleting.wait(30)
    # Approved by another administrator: one approver's row, locked by the delete, would
    # keep the revoke waiting at its confirmation, and the two would never overlap.
    reviser = threading.Thread(
        target=run, args=(lambda: suspended.admin().revoke("adm2", CONFIRMATION, ["hanako"]),)
    )
    reviser.start()
    reviser.join(0.5)
    revoked.set()
    deleter.join(60)
    reviser.join(60)
    assert not errors
    listing = token(suspended)
    assert (listing.users, listing.suspended, listing.fail_count) == ((), False, 0)


def test_revoke_of_an_issued_user_and_of_an_expired_one(app: App, clock: FrozenClock) -> None:
    import_token(app, expires=clock() + timedelta(days=1))
    add_admin(app)
    add_user(app, "taro")
    add_user(app, "jiro")
    activated(app, clock, "taro")
    app.admin().issue("jiro", date(2027, 1, 1))
    clock.advance(86400)
    assert user(app, "taro").state is OtpState.EXPIRED
    revoked = app.admin().revoke(ADMIN, CONFIRMATION, ["taro", "jiro"])
    assert [(v.login, v.state) for v in revoked] == [
        ("taro", OtpState.REVOKED),
        ("jiro", OtpState.REVOKED),
    ]
    (event,) = [e for e in app.admin().audit() if e.action == "revoke"]
    assert event.targets == ("taro", "jiro")


def test_a_revoke_of_many_users_takes_no_more_statements_than_one_of_a_few(
    app: App, clock: FrozenClock
) -> None:
    # A statement a user (its token read one at a time, each user's write flushed before the
    # next read) kept a revoke of ten thousand users 14 s in SQLite's write lock, where every
    # login of every node waited, and the nodes went silent after 5 s.
    add_admin(app)
    digest = app.hashing.hash(PASSWORD)
    statements: dict[int, int] = {}
    for count in (3, 30):
        specs = [TokenSpec(f"R{count}-{n:02d}", hashlib.sha256(b"%d-%d" % (count, n)).digest()[:20],
                           TokenKind.HARDWARE, Algorithm.SHA1, 6, 60, None)
                 for n in range(count)]  # fmt: skip
        app.admin().import_tokens(specs)
        logins = [f"r{count}x{n:02d}" for n in range(count)]
        users = [UserSpec(login, login, password_hash=digest, serial=spec.serial)
                 for login, spec in zip(logins, specs, strict=True)]  # fmt: skip
        import_users(app.store, app.hashing, clock, users)
        seen: list[str] = []
        note = functools.partial(_note_statement, seen)
        event.listen(app.store.engine, "before_cursor_execute", note)
        try:
            revoked = app.admin().revoke(ADMIN, CONFIRMATION, logins)
        finally:
            event.remove(app.store.engine, "before_cursor_execute", note)
        assert [view.state for view in revoked] == [OtpState.REVOKED] * count
        assert [view.serial for view in revoked] == [spec.serial for spec in specs]
        statements[count] = len(seen)
    assert statements[30] == statements[3], statements


def test_unlock_revoke_and_delete_take_more_users_than_a_statement_has_parameters(
    app: App, clock: FrozenClock, backend: str
) -> None:
    # PostgreSQL's protocol carries at most 65,535 parameters a statement; SQLite builds
    # before 3.32 took 999 by default. Naming each user as a parameter of its own made an
    # unlock of 70,000 users fail as "database unavailable" on PostgreSQL.
    many = 70_000 if backend == "postgresql" else 2_000
    if backend == "sqlite":
        limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
        event.listen(app.store.engine, "connect", lambda dbapi, _: dbapi.setlimit(limit, 999))
        app.store.engine.dispose()  # the pooled connections open again, limited
    add_admin(app)
    digest = app.hashing.hash(PASSWORD)
    specs = [TokenSpec(f"M{n:06d}", hashlib.sha256(b"%d" % n).digest()[:20], TokenKind.HARDWARE,
                       Algorithm.SHA1, 6, 60, None) for n in range(many)]  # fmt: skip
    app.admin().import_tokens(specs)
    logins = [f"m{n:06d}" for n in range(many)]
    users = [UserSpec(login, login, password_hash=digest, serial=spec.serial)
             for login, spec in zip(logins, specs, strict=True)]  # fmt: skip
    import_users(app.store, app.hashing, clock, users)
    assert app.admin().unlock(ADMIN, CONFIRMATION, logins) == []
    revoked = app.admin().revoke(ADMIN, CONFIRMATION, logins)
    assert [(view.login, view.serial, view.state) for view in revoked] == [
        (login, spec.serial, OtpState.REVOKED) for login, spec in zip(logins, specs, strict=True)
    ]
    assert user(app, logins[-1]).state is OtpState.REVOKED
    deleted = app.admin().delete_users(ADMIN, CONFIRMATION, logins)
    assert [view.login for view in deleted] == logins
    assert [view.login for view in app.admin().users()] == [ADMIN]
    gone = app.admin().delete_tokens(ADMIN, CONFIRMATION, [spec.serial for spec in specs])
    assert [listing.serial for listing in gone] == [spec.serial for spec in specs]
    assert app.admin().tokens() == []


def _note_statement(seen: list[str], *args: Any) -> None:
    seen.append(args[2])  # before_cursor_execute's statement


def test_revoked_user_reregisters_with_a_new_token(app: App, clock: FrozenClock) -> None:
    import_token(app)
    import_token(app, "NEW00001", secret=b"n" * 20)
    add_admin(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    app.admin().revoke(ADMIN, CONFIRMATION, ["taro"])
    outcome = app.authenticator().activate("taro", "NEW00001", code(clock, secret=b"n" * 20))
    assert outcome.reason is Reason.ACTIVATED
    assert user(app, "taro").serial == "NEW00001"
    assert token(app).users == ()


def test_revoking_the_last_user_of_a_suspended_token_lets_it_be_activated_again(
    app: App, clock: FrozenClock
) -> None:
    # Lost, suspended after five wrong codes, revoked, then found: nobody is bound to the token
    # any more, so no unlock could reach it, and activating it failed as a bad serial for ever.
    import_token(app)
    add_admin(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    for _ in range(5):
        login(app, "taro", PASSWORD + wrong_code(clock))
    assert token(app).suspended
    app.admin().revoke(ADMIN, CONFIRMATION, ["taro"])
    assert (token(app).suspended, token(app).fail_count) == (False, 0)
    (event,) = [e for e in app.admin().audit() if e.action == "revoke"]
    assert f"suspension lifted, no users left: {SERIAL}; run as otpctl" in event.detail
    outcome = app.authenticator().activate("taro", SERIAL, code(clock))
    assert outcome.reason is Reason.ACTIVATED
    assert user(app, "taro").state is OtpState.ACTIVE


def test_a_challenge_answered_after_a_revoke_is_refused_as_revoked(
    app: App, clock: FrozenClock
) -> None:
    # A token reported lost while its user was at the OTP prompt: the operator reading the
    # log must see why the answer failed, not a State that looks forged.
    import_token(app)
    add_user(app, "taro")
    add_admin(app)
    activated(app, clock, "taro")
    question = login(app, "taro", PASSWORD, InputMode.CHALLENGE)
    assert question.state is not None
    app.admin().revoke(ADMIN, CONFIRMATION, ["taro"])
    answer = login(app, "taro", code(clock), InputMode.CHALLENGE, question.state)
    assert (answer.result, answer.reason) == (Result.REJECT, Reason.TOKEN_REVOKED)
    assert token(app).fail_count == 0


def test_revoking_one_sharer_leaves_the_suspended_token_to_the_others(suspended: App) -> None:
    suspended.admin().revoke(ADMIN, CONFIRMATION, ["taro"])
    # hanako still uses it: lifting its suspension is unlock's, with her selected (taro, revoked,
    # no longer reaches the token).
    assert token(suspended).suspended
    assert token(suspended).users == ("hanako",)
    assert user(suspended, "hanako").suspended
    (event,) = [e for e in suspended.admin().audit() if e.action == "revoke"]
    assert "suspension lifted" not in event.detail


# Token import


def _specs(*serials: str) -> list[TokenSpec]:
    return [TokenSpec(s, SECRET, TokenKind.HARDWARE, Algorithm.SHA1, 6, 60) for s in serials]


def test_import_of_a_present_serial_refuses_the_whole_file(app: App) -> None:
    app.admin().import_tokens(_specs("A"))
    before = snapshot(app)
    with pytest.raises(AlreadyExists, match="A"):
        app.admin().import_tokens(_specs("B", "A", "C"))
    assert snapshot(app) == before


def test_a_refused_csv_changes_nothing(app: App) -> None:
    app.admin().import_tokens(_specs("A"))
    before = snapshot(app)
    text = f"serial,secret\nB,{SECRET.hex()}\nC,zz\n"
    with pytest.raises(ImportRefused, match=":3:"):
        app.admin().import_tokens(read_token_csv(text, "seeds.csv"))
    assert snapshot(app) == before


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True))
def test_import_is_all_or_nothing(app: App, rows: list[str]) -> None:
    present = {t.serial for t in app.admin().tokens()}
    try:
        app.admin().import_tokens(_specs(*rows))
    except AlreadyExists:
        assert present & set(rows)
        assert {t.serial for t in app.admin().tokens()} == present
    else:
        assert not present & set(rows)
        assert {t.serial for t in app.admin().tokens()} == present | set(rows)


def _import_csv(
    app: App, name: str, *rows: tuple[str, bytes], update_existing: bool = False
) -> Imported:
    """Import a seed file as ``otpctl token import`` does: named, so that it is checked."""
    text = "serial,secret\n" + "".join(f"{serial},{seed.hex()}\n" for serial, seed in rows)
    specs = read_token_csv(text, name)
    return app.admin().import_tokens(specs, update_existing=update_existing, source=name)


SEED_A, SEED_B, SEED_C = (bytes(range(start, start + 20)) for start in (30, 60, 90))


LONG_SEED = SEED_A * 4  # longer than SHA-1's 64-byte block: HMAC keys with its hash


@pytest.mark.parametrize(
    ("first", "again"),
    [
        (SEED_A, SEED_A),
        (SEED_A, SEED_A + b"\0" * 12),
        (LONG_SEED, hashlib.sha1(LONG_SEED, usedforsecurity=False).digest()),
    ],
    ids=["as-is", "zero-padded", "hashed"],
)
def test_a_file_repeating_an_inventory_seed_is_refused_naming_the_first(
    app: App, first: bytes, again: bytes
) -> None:
    """Compared as HMAC keys them (RFC 2104): such seeds show the same codes."""
    _import_csv(app, "a.csv", ("OLD1", first), ("OLD2", SEED_B))
    before = snapshot(app)
    # Line 2 repeats OLD2's seed and line 3 OLD1's: line 2 is named, whatever the order in
    # which the inventory is read.
    with pytest.raises(ImportRefused) as refused:
        _import_csv(app, "b.csv", ("NEW1", SEED_B), ("NEW2", again), ("NEW3", SEED_C))
    assert str(refused.value) == (
        "b.csv:2: serial NEW1 has the seed of token OLD2, already in the inventory: "
        "every token needs a seed of its own"
    )
    assert snapshot(app) == before
    with pytest.raises(ImportRefused, match=r"^b\.csv:2: serial NEW2 has the seed of token OLD1,"):
        _import_csv(app, "b.csv", ("NEW2", again), ("NEW3", SEED_C))
    assert snapshot(app) == before


def test_an_update_may_keep_a_tokens_own_seed_or_take_one_it_frees(app: App) -> None:
    _import_csv(app, "a.csv", ("A", SEED_A), ("B", SEED_B))
    # A re-delivered file: each serial keeps its seed.
    again = _import_csv(app, "a.csv", ("A", SEED_A), ("B", SEED_B), update_existing=True)
    assert again == Imported(0, 2)
    # B takes A's seed while A, in the same file, gets a new one: no two tokens share one.
    swapped = _import_csv(app, "swap.csv", ("A", SEED_C), ("B", SEED_A), update_existing=True)
    assert swapped == Imported(0, 2)
    # C is not in the file: its seed stays its own.
    _import_csv(app, "c.csv", ("C", SEED_B))
    with pytest.raises(ImportRefused, match=r"^steal\.csv:2: serial A has the seed of token C,"):
        _import_csv(app, "steal.csv", ("A", SEED_B), update_existing=True)


def test_an_update_that_keeps_its_seed_keeps_it_from_the_files_other_tokens(app: App) -> None:
    _import_csv(app, "a.csv", ("A", SEED_A))
    before = snapshot(app)
    # A keeps its seed (no secret in its row): a new token of the same file may not take it.
    text = f"serial,secret,digits\nA,,8\nNEW,{SEED_A.hex()},\n"
    specs = read_token_csv(text, "b.csv", update=True)
    with pytest.raises(ImportRefused, match=r"^b\.csv:3: serial NEW has the seed of token A,"):
        app.admin().import_tokens(specs, update_existing=True, source="b.csv")
    assert snapshot(app) == before


def test_a_row_without_a_seed_updates_only_a_token_of_the_inventory(app: App) -> None:
    _import_csv(app, "a.csv", ("A", SEED_A))
    before = snapshot(app)
    specs = read_token_csv("serial,digits\nA,8\nB,8\n", "b.csv", update=True)
    with pytest.raises(ImportRefused, match=r"^b\.csv:3: serial B is not in the inventory: a new"):
        app.admin().import_tokens(specs, update_existing=True, source="b.csv")
    assert snapshot(app) == before


def test_an_update_that_keeps_every_seed_opens_none_of_the_inventory(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to compare: extending one token opened every seed held, 5 s at a million."""
    _import_csv(app, "a.csv", ("A", SEED_A), ("B", SEED_B), ("C", SEED_C))
    opened: list[str] = []
    unseal = Keyring.unseal

    def counted(keyring: Keyring, serial: str, sealed: bytes) -> bytes:
        opened.append(serial)
        return unseal(keyring, serial, sealed)

    monkeypatch.setattr(Keyring, "unseal", counted)
    specs = read_token_csv("serial,expires\nA,2031-01-01\n", "b.csv", update=True)
    assert app.admin().import_tokens(specs, update_existing=True, source="b.csv") == Imported(0, 1)
    assert opened == []
    # A file with seeds still compares them with every seed it does not replace.
    _import_csv(app, "c.csv", ("A", SEED_A), update_existing=True)
    assert sorted(opened) == ["B", "C"]


def test_reading_the_inventorys_seeds_holds_up_no_login(
    app: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison opens every seed held, seconds at a million: no commit may wait for it."""
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    reading, go_on = threading.Event(), threading.Event()
    compare = token_import_module.first_reuse

    def paused(*args: Any) -> Any:
        reading.set()
        assert go_on.wait(30)
        return compare(*args)

    monkeypatch.setattr(token_import_module, "first_reuse", paused)
    imported: list[Imported] = []
    importer = threading.Thread(
        target=lambda: imported.append(_import_csv(app, "b.csv", ("NEW", SEED_C)))
    )
    importer.start()
    try:
        assert reading.wait(30)
        next_step(clock)
        answers: list[Result] = []
        # Through a thread: a login held up by the lock would wait SQLite's 60 s busy timeout.
        taro = threading.Thread(
            target=lambda: answers.append(login(app, "taro", PASSWORD + code(clock)).result)
        )
        taro.start()
        taro.join(10)
        assert answers == [Result.ACCEPT]
    finally:
        go_on.set()
        importer.join(30)
    assert imported == [Imported(1, 0)]


def test_a_seed_added_while_the_inventory_is_read_is_still_refused(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seeds are read before the lock; one added before the lock is taken is not missed."""
    checked = TokenImport._seeds_checked

    def meanwhile(job: TokenImport, specs: Any, source: str) -> int:
        mark = checked(job, specs, source)
        monkeypatch.setattr(TokenImport, "_seeds_checked", checked)  # the other runs as is
        _import_csv(app, "other.csv", ("OTHER", SEED_B))
        return mark

    monkeypatch.setattr(TokenImport, "_seeds_checked", meanwhile)
    with pytest.raises(ImportRefused, match=r"^b\.csv:3: serial NEW2 has the seed of token OTHER,"):
        _import_csv(app, "b.csv", ("NEW1", SEED_A), ("NEW2", SEED_B))
    assert {t.serial for t in app.admin().tokens()} == {"OTHER"}


def test_import_reports_progress_chunk_by_chunk(app: App) -> None:
    reports: list[tuple[int, int]] = []
    serials = [f"P{i:05d}" for i in range(IMPORT_CHUNK + 3)]
    app.admin().import_tokens(_specs(*serials), progress=lambda *done: reports.append(done))
    assert reports == [(IMPORT_CHUNK, len(serials)), (len(serials), len(serials))]
    assert len(app.admin().tokens()) == len(serials)


def test_an_update_in_bulk_keeps_used_steps_and_flags(app: App) -> None:
    app.admin().import_tokens(_specs("A", "B"))
    app.admin().set_disabled("A", True)
    specs = [TokenSpec(s, b"n" * 20, period=30, drift=1) for s in ("A", "B", "C")]
    assert app.admin().import_tokens(specs, update_existing=True) == Imported(1, 2)
    listed = {t.serial: t for t in app.admin().tokens()}
    assert (listed["A"].disabled, listed["A"].period) == (True, 30)
    assert set(listed) == {"A", "B", "C"}
    assert app.admin().audit()[-1].detail == "1 added, 2 updated"


@pytest.mark.parametrize(("old", "new"), [(30, 60), (60, 30)])
def test_an_update_changing_the_period_keeps_used_time_used_and_no_more(
    app: App, clock: FrozenClock, old: int, new: int
) -> None:
    # A vendor file stated the wrong period and its correction comes as an update. Kept in
    # the old period's steps, the used step was either ahead of every new step (each right
    # code a replay, five of them a suspension) or behind the time already used.
    import_token(app, period=old)
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())
    outcome = app.authenticator().activate("taro", SERIAL, code(clock, period=old))
    assert outcome.reason is Reason.ACTIVATED
    fix = f"serial,secret,period\n{SERIAL},{SECRET.hex()},{new}\n"
    app.admin().import_tokens(
        read_token_csv(fix, "fix.csv"), update_existing=True, source="fix.csv"
    )
    # Now (T0) is the second half of a 60-second step: the new step holding the time just
    # used is spent, the one after it is not.
    assert login(app, "taro", PASSWORD + code(clock, period=new)).reason is Reason.REPLAY
    assert login(app, "taro", PASSWORD + code(clock, period=new, offset=1)).reason is Reason.OK


def test_update_replaces_seeds_and_adds_new_ones(app: App, clock: FrozenClock) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    new_secret = b"u" * 32
    specs = [
        TokenSpec(SERIAL, new_secret, TokenKind.HARDWARE, Algorithm.SHA256, 8, 30),
        TokenSpec("EXTRA", SECRET, TokenKind.SOFTWARE, Algorithm.SHA1, 6, 30),
    ]
    assert app.admin().import_tokens(specs, update_existing=True).total == 2
    listing = token(app)
    assert (listing.algorithm, listing.digits, listing.period, listing.users) == (
        "SHA256",
        8,
        30,
        ("taro",),
    )
    assert token(app, "EXTRA").kind == "software"
    next_step(clock)
    new_code = code(clock, secret=new_secret, period=30, digits=8, algorithm=Algorithm.SHA256)
    assert login(app, "taro", PASSWORD + new_code).reason is Reason.OK
    imports = [e for e in app.admin().audit() if e.action == "token_import"]
    assert imports[-1].detail == "1 added, 1 updated"
    # Which seeds came in or were re-sealed, as a user import names its logins.
    assert sorted(imports[-1].targets) == sorted(spec.serial for spec in specs)


def test_expiring_within(app: App, clock: FrozenClock) -> None:
    import_token(app, "SOON", expires=clock() + timedelta(days=10))
    import_token(app, "LATER", expires=clock() + timedelta(days=100))
    import_token(app, "NEVER")
    assert [t.serial for t in app.admin().tokens(expiring_within_days=30)] == ["SOON"]
    assert [t.serial for t in app.admin().tokens(expiring_within_days=365)] == ["SOON", "LATER"]


def test_disable_unknown_serial(app: App) -> None:
    with pytest.raises(NotFound):
        app.admin().set_disabled("NOSUCH", True)


def test_audit_since_takes_events_from_that_instant(suspended: App, clock: FrozenClock) -> None:
    # The suspension (written by the authentication path) and an unlock a day later.
    clock.advance(86400)
    suspended.admin().unlock(ADMIN, CONFIRMATION, ["taro"])
    everything = suspended.admin().audit()
    assert [e.action for e in everything].count("suspend") == 1
    later = suspended.admin().audit(since=clock() - timedelta(hours=1))
    assert [(e.action, e.outcome) for e in later] == [("unlock", "ok")]
    assert later[0].at == clock()
    (suspend,) = [e for e in everything if e.action == "suspend"]
    assert suspended.admin().audit(since=suspend.at)[0] == suspend
