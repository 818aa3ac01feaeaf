"""Sixteen processes on one database (a SQLite file, or PostgreSQL): replay and counting
stay exact (SPEC §8).

Each process builds its own App from the same settings, as otp-radiusd's workers do, waits at a
barrier, and submits at the same instant.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

import otpcore.onboarding as onboarding
from otpcore.app import App, build_app
from otpcore.attempts import AuthRequest, Prepared
from otpcore.config import parse_settings
from otpcore.crypto import Keyring, pending_key_path, read_key
from otpcore.errors import KeyFileError, Unavailable
from otpcore.keys import prepare_rotation, rotate_key
from otpcore.model import InputMode, Reason, Result
from otpcore.ports import FrozenClock
from otpcore.service import Authenticator
from otpcore.token_csv import read_token_csv
from otpcore.user_csv import UserSpec
from otpcore.views import Imported
from tests.conftest import BOTH_BACKENDS, settings_data
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
    import_beside_a_batch,
    import_token,
    login,
    token,
    user,
    wrong_code,
)

pytestmark = BOTH_BACKENDS
PROCESSES = 16
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["otpcore.app", "otpcore.service", __name__])


def _submit(
    folder: str,
    tables: dict[str, dict[str, Any]],
    instant: datetime,
    login: str,
    text: str,
    barrier: Barrier,
    results: Any,
) -> None:
    """One worker process: its own App on the shared files, then one request at the barrier."""
    try:
        data = settings_data(**tables)
        settings = parse_settings(data, Path(folder) / "config.toml", Path.read_bytes)
        app = build_app(settings, FrozenClock(instant))
        authenticator = app.authenticator()
        barrier.wait(timeout=60)
        outcome = authenticator.authenticate(AuthRequest(login, text))
        results.put(("ok", outcome.result.value, outcome.reason.value))
    except BaseException:  # every failure goes back to the test, none is lost in the child
        results.put(("error", traceback.format_exc(), ""))


def _race(
    folder: Path,
    instant: datetime,
    login: str,
    texts: list[str],
    tables: dict[str, dict[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    barrier = _CONTEXT.Barrier(len(texts))
    results = _CONTEXT.Queue()
    workers = [
        _CONTEXT.Process(
            target=_submit,
            args=(str(folder), tables or {}, instant, login, text, barrier, results),
        )
        for text in texts
    ]
    for worker in workers:
        worker.start()
    collected: list[tuple[str, str, str]] = []
    try:
        for _ in workers:
            collected.append(results.get(timeout=90))
    except queue.Empty:
        pytest.fail(f"only {len(collected)} of {len(workers)} workers answered")
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    errors = [detail for kind, detail, _ in collected if kind == "error"]
    assert errors == [], errors[0] if errors else ""
    return [(result, reason) for _, result, reason in collected]


@pytest.fixture
def taro(app: App, clock: FrozenClock, tmp_path: Path) -> App:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    return app


def test_the_same_valid_otp_at_once_is_accepted_exactly_once(
    taro: App, clock: FrozenClock, tmp_path: Path, database_tables: dict[str, Any]
) -> None:
    texts = [PASSWORD + code(clock)] * PROCESSES
    outcomes = _race(tmp_path, clock(), "taro", texts, database_tables)
    # One accept; the fifteen others are replays. Replays with the right password are counted
    # (SPEC §2), so the fifth suspends the token, and the ten after it find it suspended:
    # nothing more is counted and they are told so.
    assert Counter(outcomes) == {
        ("accept", Reason.OK.value): 1,
        ("reject", Reason.REPLAY.value): 5,
        ("reject", Reason.TOKEN_SUSPENDED.value): PROCESSES - 6,
    }
    listing = token(taro)
    assert listing.fail_count == 5
    assert listing.suspended


def test_the_same_valid_otp_at_once_under_a_high_threshold_gives_fifteen_replays(
    make_app: Any, clock: FrozenClock, tmp_path: Path, database_tables: dict[str, Any]
) -> None:
    app = make_app(policy={"lockout_threshold": 100})
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    policy = {**database_tables, "policy": {"reject_delay": 0, "lockout_threshold": 100}}
    outcomes = _race(tmp_path, clock(), "taro", [PASSWORD + code(clock)] * PROCESSES, policy)
    assert Counter(outcomes) == {
        ("accept", Reason.OK.value): 1,
        ("reject", Reason.REPLAY.value): PROCESSES - 1,
    }
    assert token(app).fail_count == PROCESSES - 1


def test_wrong_otps_at_once_stop_the_count_exactly_at_the_threshold(
    taro: App, clock: FrozenClock, tmp_path: Path, database_tables: dict[str, Any]
) -> None:
    shown = {code(clock, offset=offset) for offset in range(-2, 3)}
    wrong = [f"{n:06d}" for n in range(100_000, 999_999, 53_011) if f"{n:06d}" not in shown]
    texts = [PASSWORD + otp for otp in wrong[:PROCESSES]]
    outcomes = _race(tmp_path, clock(), "taro", texts, database_tables)
    assert len(outcomes) == PROCESSES
    reasons = Counter(reason for _, reason in outcomes)
    assert {result for result, _ in outcomes} == {"reject"}
    assert reasons[Reason.BAD_OTP.value] == 5
    assert reasons[Reason.TOKEN_SUSPENDED.value] == PROCESSES - 5
    listing = token(taro)
    assert listing.fail_count == 5
    assert listing.suspended
    assert user(taro, "taro").suspended
    suspensions = [e for e in taro.admin().audit() if e.action == "suspend"]
    assert len(suspensions) == 1


# Decided before parallel wrong guesses suspended the user, committed after them: a request
# reads the user without a lock, so the commit must read the suspension again.


def _suspend_by_wrong_passwords(app: App, login_name: str, clock: FrozenClock) -> None:
    for _ in range(app.settings.policy.password_lockout_threshold):
        outcome = login(app, login_name, "not the password " + code(clock))
        assert outcome.reason is Reason.BAD_PASSWORD
    assert user(app, login_name).suspended


def test_a_login_decided_before_a_suspension_is_refused_at_commit(
    taro: App, clock: FrozenClock
) -> None:
    authenticator = taro.authenticator()
    right = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT))
    assert right.decision.result is Result.ACCEPT
    _suspend_by_wrong_passwords(taro, "taro", clock)
    (outcome,) = authenticator.commit([right])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.USER_SUSPENDED)
    assert token(taro).fail_count == 0  # nothing counted on the token for it


def test_a_right_code_decided_before_its_token_is_suspended_is_refused_at_commit(
    taro: App, clock: FrozenClock
) -> None:
    # The token is shared: a sharer's wrong codes suspend it between taro's decision and its
    # commit. Committed as decided, his login would be an Accept on a suspended token, and
    # the reset his right code earns would wipe the count that suspended it.
    add_user(taro, "hanako")
    activated(taro, clock, "hanako")
    authenticator = taro.authenticator()
    right = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock), InputMode.SPLIT))
    assert right.decision.result is Result.ACCEPT
    for _ in range(taro.settings.policy.lockout_threshold):
        outcome = login(taro, "hanako", PASSWORD + wrong_code(clock))
        assert outcome.reason is Reason.BAD_OTP
    assert token(taro).suspended
    (outcome,) = authenticator.commit([right])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.TOKEN_SUSPENDED)
    assert token(taro).suspended
    assert token(taro).fail_count == taro.settings.policy.lockout_threshold


@pytest.mark.parametrize(
    "passed", [Result.ACCEPT, Result.CHALLENGE], ids=["password-only", "otp-challenge"]
)
def test_a_password_decided_before_a_suspension_is_refused_at_commit(
    app: App, clock: FrozenClock, passed: Result
) -> None:
    add_user(app, "kojima")  # no token: the password alone lets him in
    if passed is Result.CHALLENGE:  # a token: the password alone asks for the OTP
        import_token(app)
        activated(app, clock, "kojima")
    authenticator = app.authenticator()
    right = authenticator.prepare(AuthRequest("kojima", PASSWORD, InputMode.AUTO))
    assert right.decision.result is passed
    _suspend_by_wrong_passwords(app, "kojima", clock)
    (outcome,) = authenticator.commit([right])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.USER_SUSPENDED)
    assert outcome.state is None  # no challenge was stored to answer later


def take_away(app: App, operation: str, login: str) -> None:
    """Revoke the user's token, or delete the user (an account closed), as an admin does."""
    if operation == "revoke":
        app.admin().revoke(ADMIN, CONFIRMATION, [login])
    else:
        app.admin().delete_users(ADMIN, CONFIRMATION, [login])


@pytest.mark.parametrize(
    ("operation", "reason"), [("revoke", Reason.TOKEN_REVOKED), ("delete", Reason.UNKNOWN_USER)]
)
def test_a_login_decided_before_a_revoke_or_delete_is_refused_uncounted(
    taro: App, clock: FrozenClock, operation: str, reason: Reason
) -> None:
    add_admin(taro)
    authenticator = taro.authenticator()
    # A thief types the lost token's code as the bank revokes it, or closes the account.
    in_flight = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock)))
    assert in_flight.decision.result is Result.ACCEPT
    take_away(taro, operation, "taro")
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, reason)
    # Not a replay: a failure here would count against every other user of the token.
    assert token(taro).fail_count == 0


def test_a_password_login_decided_before_its_user_was_deleted_is_refused(
    app: App, clock: FrozenClock
) -> None:
    add_admin(app)
    add_user(app, "kojima")  # unregistered: the password alone lets in
    authenticator = app.authenticator()
    in_flight = authenticator.prepare(AuthRequest("kojima", PASSWORD))
    assert in_flight.decision.reason is Reason.PASSWORD_ONLY
    app.admin().delete_users(ADMIN, CONFIRMATION, ["kojima"])
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.UNKNOWN_USER)


def test_an_otp_mode_login_decided_before_its_user_was_deleted_opens_nothing(
    app: App, clock: FrozenClock
) -> None:
    # A portal that checks passwords itself: the user's next step is let in, or asked for,
    # on the portal's word, and must not be once the account is closed.
    import_token(app)
    add_admin(app)
    add_user(app, "kojima")  # unregistered: let in on the portal's word
    add_user(app, "taro")
    app.admin().issue("taro", clock().date())  # activation: the serial is asked next
    authenticator = app.authenticator()
    let_in = authenticator.prepare(AuthRequest("kojima", "", InputMode.OTP))
    asked = authenticator.prepare(AuthRequest("taro", "", InputMode.OTP))
    assert let_in.decision.reason is Reason.PASSWORD_ONLY
    assert asked.decision.reason is Reason.SERIAL_CHALLENGE
    app.admin().delete_users(ADMIN, CONFIRMATION, ["kojima", "taro"])
    outcomes = authenticator.commit([let_in, asked])
    assert [(o.result, o.reason) for o in outcomes] == [(Result.REJECT, Reason.UNKNOWN_USER)] * 2
    assert outcomes[1].state is None  # no challenge to answer after the account is gone


@pytest.mark.parametrize("operation", ["revoke", "delete"])
def test_a_wrong_code_decided_before_a_revoke_or_delete_counts_on_nobody(
    taro: App, clock: FrozenClock, operation: str
) -> None:
    add_admin(taro)
    add_user(taro, "hanako")
    activated(taro, clock, "hanako")  # shares taro's token
    authenticator = taro.authenticator()
    in_flight = authenticator.prepare(AuthRequest("taro", PASSWORD + wrong_code(clock)))
    assert in_flight.decision.reason is Reason.BAD_OTP
    take_away(taro, operation, "taro")
    (outcome,) = authenticator.commit([in_flight])
    expected = Reason.TOKEN_REVOKED if operation == "revoke" else Reason.UNKNOWN_USER
    assert (outcome.result, outcome.reason) == (Result.REJECT, expected)
    # taro is no longer one of the token's users: hanako does not pay for taro's typing.
    assert token(taro).fail_count == 0


def _activation_in_flight(app: App, clock: FrozenClock) -> tuple[Authenticator, Prepared]:
    """kojima, issued the token today, with his activation decided and not yet committed."""
    import_token(app)
    add_admin(app)
    add_user(app, "kojima")
    app.admin().issue("kojima", clock().date())
    request = AuthRequest("kojima", code(clock), InputMode.OTP)
    return _decided(app, request, Reason.ACTIVATED, SERIAL)


def _decided(
    app: App, request: AuthRequest, expected: Reason, activation_serial: str | None = None
) -> tuple[Authenticator, Prepared]:
    """``request`` decided as ``expected`` and not yet committed, with its authenticator."""
    authenticator = app.authenticator()
    in_flight = authenticator.prepare(request, activation_serial=activation_serial)
    assert in_flight.decision.reason is expected
    return authenticator, in_flight


def test_an_activation_decided_before_its_token_was_deleted_binds_nothing(
    app: App, clock: FrozenClock
) -> None:
    authenticator, in_flight = _activation_in_flight(app, clock)
    app.admin().delete_tokens(ADMIN, CONFIRMATION, [SERIAL])
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.BAD_SERIAL)
    assert user(app, "kojima").serial is None
    assert user(app, "kojima").state.value == "issued"


def test_wrong_codes_decided_before_their_token_was_disabled_count_nothing(
    taro: App, clock: FrozenClock
) -> None:
    # Nothing is checked or counted on a disabled token (SPEC §3): not even the failures
    # decided a moment before, which would leave it suspended once it is enabled again.
    authenticator = taro.authenticator()
    in_flight = [
        authenticator.prepare(AuthRequest("taro", PASSWORD + wrong_code(clock))) for _ in range(5)
    ]
    taro.admin().set_disabled(SERIAL, True)
    outcomes = authenticator.commit(in_flight)
    assert {o.reason for o in outcomes} == {Reason.TOKEN_DISABLED}
    taro.admin().set_disabled(SERIAL, False)
    assert (token(taro).fail_count, token(taro).suspended) == (0, False)


def test_a_user_import_that_updates_logins_out_of_order_does_not_deadlock_a_batch(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file updates bbb, then aaa; a batch of logins locks aaa, then bbb. Each waiting for
    # the other's second row, PostgreSQL would fail one of them as a deadlock, and a failed
    # batch leaves every request in it unanswered.
    add_user(app, "aaa")
    add_user(app, "bbb")  # unregistered: an OTP-mode portal lets them in on its word
    authenticator = app.authenticator()
    batch = [authenticator.prepare(AuthRequest(u, "", InputMode.OTP)) for u in ("aaa", "bbb")]
    hashed = app.hashing.hash("a new password")
    rows = [UserSpec("bbb", "B", password_hash=hashed, line=2),
            UserSpec("aaa", "A", password_hash=hashed, line=3)]  # fmt: skip
    monkeypatch.setattr(onboarding, "CHUNK", 1)
    first_written, go_on = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 1:  # bbb is written; aaa is next
            first_written.set()
            go_on.wait(5)
            time.sleep(0.3)  # the batch takes its locks meanwhile

    results = import_beside_a_batch(
        lambda: onboarding.import_users(
            app.store, app.hashing, app.clock, rows, update=True, progress=progress
        ),
        lambda: [(o.result, o.reason) for o in authenticator.commit(batch)],
        first_written,
        go_on,
    )
    assert results == {
        "import": Imported(0, 2),
        "batch": [(Result.ACCEPT, Reason.PASSWORD_ONLY)] * 2,
    }


def test_a_login_decided_before_its_token_was_disabled_is_refused_uncounted(
    taro: App, clock: FrozenClock
) -> None:
    authenticator = taro.authenticator()
    in_flight = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock)))
    taro.admin().set_disabled(SERIAL, True)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.TOKEN_DISABLED)
    assert token(taro).fail_count == 0  # not a replay: nothing to count


@pytest.mark.parametrize(("old", "new"), [(30, 60), (60, 30)])
def test_a_login_decided_before_its_period_changed_is_refused_uncounted(
    app: App, clock: FrozenClock, old: int, new: int
) -> None:
    # A vendor's corrected file changes the period while a login is being decided. Its step
    # is in the old period's steps: written, it would stand about twice as far as now (every
    # right code a replay from then on, five a suspension) or half as far (used codes good
    # again); refused as a replay, it would count a failure nobody made.
    import_token(app, period=old)
    add_user(app, "taro")
    activated(app, clock, "taro", period=old)
    authenticator = app.authenticator()
    in_flight = authenticator.prepare(AuthRequest("taro", PASSWORD + code(clock, period=old)))
    assert in_flight.decision.result is Result.ACCEPT
    fix = f"serial,secret,period\n{SERIAL},{SECRET.hex()},{new}\n"
    app.admin().import_tokens(read_token_csv(fix, "fix.csv"), update_existing=True)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.PERIOD_CHANGED)
    assert token(app).fail_count == 0
    # The used step stays as the update restated it: the token's code of now in the new
    # period opens, once, as if the login in flight had never been.
    assert login(app, "taro", PASSWORD + code(clock, period=new)).reason is Reason.OK
    assert login(app, "taro", PASSWORD + code(clock, period=new)).reason is Reason.REPLAY


def test_an_activation_that_lost_to_another_is_not_awaiting_activation(
    app: App, clock: FrozenClock
) -> None:
    import_token(app)
    import_token(app, "34567890", secret=bytes(range(30, 50)))
    add_user(app, "kojima")
    app.admin().issue("kojima", clock().date())
    authenticator = app.authenticator()
    first = authenticator.prepare(
        AuthRequest("kojima", code(clock), InputMode.OTP), activation_serial=SERIAL
    )
    second = authenticator.prepare(
        AuthRequest("kojima", code(clock, secret=bytes(range(30, 50))), InputMode.OTP),
        activation_serial="34567890",
    )
    assert authenticator.commit([first])[0].reason is Reason.ACTIVATED
    (lost,) = authenticator.commit([second])
    assert (lost.result, lost.reason) == (Result.REJECT, Reason.NOT_AWAITING_ACTIVATION)
    assert user(app, "kojima").serial == SERIAL
    # The losing activation used nothing: its code still activates the other token.
    add_user(app, "hanako")
    app.admin().issue("hanako", clock().date())
    other = code(clock, secret=bytes(range(30, 50)))
    assert app.authenticator().activate("hanako", "34567890", other).reason is Reason.ACTIVATED


# Key rotation beside an import: no seed may end up sealed under a retired key.


def _opens_with_the_current_key(app: App, serial: str) -> bool:
    current = Keyring(read_key(app.settings.key_file))  # no key file to fall back on
    with app.store.transaction() as repo:
        row = repo.token(serial)
        assert row is not None
        sealed = row.sealed_secret
    try:
        current.unseal(serial, sealed)
    except KeyFileError:
        return False
    return True


def test_an_import_started_before_a_key_rotation_is_refused(
    app: App, make_app: Callable[..., App], clock: FrozenClock
) -> None:
    stale = make_app()  # an otpctl that read the key file before the rotation
    import_token(app, "T-1")
    rotate_key(app.store, app.settings.key_file, clock)
    with pytest.raises(KeyFileError, match="rotated while this command ran"):
        import_token(stale, "T-2")
    assert [listing.serial for listing in app.admin().tokens()] == ["T-1"]
    import_token(make_app(), "T-2")  # the same command, run again
    assert _opens_with_the_current_key(app, "T-1")
    assert _opens_with_the_current_key(app, "T-2")


def test_an_unfinished_rotation_stops_an_import(app: App, clock: FrozenClock) -> None:
    pending_key_path(app.settings.key_file).write_bytes(os.urandom(32))
    pending_key_path(app.settings.key_file).chmod(0o600)
    with pytest.raises(KeyFileError, match="rotation is unfinished"):
        import_token(app, "T-1")
    assert app.admin().tokens() == []


def test_a_rotation_another_node_finished_stops_an_import_asking_for_the_key_to_be_moved(
    app: App, make_app: Callable[..., App], clock: FrozenClock
) -> None:
    # This node was given the next key (key rotate --prepare on another node, the file copied
    # here), the other node rotated, and the key has not been moved into place here yet. The
    # import said to run 'key rotate', which would re-seal every seed once more for nothing.
    import_token(app, "T-1")
    other_node = app.settings.key_file.with_name("other-node.key")
    other_node.write_bytes(app.settings.key_file.read_bytes())
    other_node.chmod(0o600)
    prepared, _ = prepare_rotation(other_node)
    given = pending_key_path(app.settings.key_file)
    given.write_bytes(prepared.read_bytes())
    given.chmod(0o600)
    rotate_key(app.store, other_node, clock)
    with pytest.raises(KeyFileError) as refused:
        import_token(make_app(), "T-2")
    assert str(refused.value) == (
        f"{given}: the database's seeds are already sealed under this key, the rotation having "
        "been finished (on another node, or here before it could replace the key file); move "
        f"it over the key file (mv {given} {app.settings.key_file}), then run this again "
        "(nothing was written)"
    )
    assert [listing.serial for listing in app.admin().tokens()] == ["T-1"]
    os.replace(given, app.settings.key_file)
    import_token(make_app(), "T-2")
    assert _opens_with_the_current_key(app, "T-1")
    assert _opens_with_the_current_key(app, "T-2")


def test_a_rotation_waits_for_an_import_in_progress(
    app: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_token(app, "T-1")
    inside, release = threading.Event(), threading.Event()
    checked = Keyring.check_current

    def pause_after_the_check(self: Keyring, seeds_kid: bytes | None = None) -> None:
        checked(self, seeds_kid)
        inside.set()
        release.wait(timeout=30)

    monkeypatch.setattr(Keyring, "check_current", pause_after_the_check)
    importer = threading.Thread(target=import_token, args=(app, "T-2"))
    importer.start()
    assert inside.wait(timeout=30)
    rotation = threading.Thread(target=rotate_key, args=(app.store, app.settings.key_file, clock))
    rotation.start()
    rotation.join(timeout=1.0)
    waited = rotation.is_alive()  # it must not read the tokens before the import commits
    release.set()
    importer.join(timeout=30)
    rotation.join(timeout=30)
    assert waited
    assert _opens_with_the_current_key(app, "T-1")
    assert _opens_with_the_current_key(app, "T-2")


# Two nodes' group commits touching the same tokens in opposite orders


def test_batches_of_two_nodes_in_opposite_orders_never_deadlock(
    make_app: Callable[..., App], clock: FrozenClock
) -> None:
    # Each node commits whatever queued up as one transaction; on PostgreSQL, two batches
    # that write the same rows in opposite orders waited for each other until the deadlock
    # detector killed one, and every request of that batch went unanswered.
    policy = {"policy": {"reject_delay": 0, "lockout_threshold": 1000}}  # 80 failures a token
    nodes = [make_app(**policy), make_app(**policy)]
    logins = [f"user{n}" for n in range(4)]
    for n, name in enumerate(logins):
        secret = bytes(range(n + 1, n + 21))
        import_token(nodes[0], f"1000000{n}", secret=secret)
        add_user(nodes[0], name)
        activated(nodes[0], clock, name, f"1000000{n}", secret=secret)
    wrong = "000000"
    failures: list[str] = []

    def node(app: App, order: list[str]) -> None:
        authenticator = app.authenticator()
        for _ in range(40):
            batch = [authenticator.prepare(AuthRequest(name, PASSWORD + wrong)) for name in order]
            try:
                authenticator.commit(batch)
            except Unavailable as exc:
                failures.append(str(exc))

    threads = [
        threading.Thread(target=node, args=(app, order))
        for app, order in zip(nodes, [logins, logins[::-1]], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert sum(listing.fail_count for listing in nodes[0].admin().tokens()) == 2 * 40 * 4


def _login_in_flight(taro: App, clock: FrozenClock) -> tuple[Authenticator, Prepared]:
    """taro's login with the right code, decided as an Accept and not yet committed."""
    return _decided(taro, AuthRequest("taro", PASSWORD + code(clock)), Reason.OK)


def test_a_login_decided_before_its_seed_was_replaced_is_refused_uncounted(
    taro: App, clock: FrozenClock
) -> None:
    # A leaked seed is replaced by a vendor's new file: a code of the old seed decided just
    # before must not open the login once the import has returned.
    authenticator, in_flight = _login_in_flight(taro, clock)
    fresh = bytes(range(101, 121))
    fix = f"serial,secret\n{SERIAL},{fresh.hex()}\n"
    taro.admin().import_tokens(read_token_csv(fix, "fix.csv"), update_existing=True)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.SEED_CHANGED)
    assert token(taro).fail_count == 0  # nobody typed a wrong code: nothing to count
    assert login(taro, "taro", PASSWORD + code(clock, secret=fresh)).reason is Reason.OK


def test_a_login_decided_before_a_key_rotation_is_accepted(taro: App, clock: FrozenClock) -> None:
    # A rotation re-seals every seed while logins go on (README): the seed is the same one,
    # sealed anew, and a login decided under the old seal is no code of another seed.
    authenticator, in_flight = _login_in_flight(taro, clock)
    rotate_key(taro.store, taro.settings.key_file, clock)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.OK)
    assert login(taro, "taro", PASSWORD + code(clock)).reason is Reason.REPLAY


def test_a_login_decided_before_its_token_was_made_expired_is_refused_uncounted(
    taro: App, clock: FrozenClock
) -> None:
    # An update that ends a token's validity (the vendor's corrected expiry, already past):
    # a login decided just before must not open once the import has returned (SPEC §3.6).
    authenticator, in_flight = _login_in_flight(taro, clock)
    yesterday = (clock() - timedelta(days=1)).date().isoformat()
    fix = f"serial,expires\n{SERIAL},{yesterday}\n"
    specs = read_token_csv(fix, "fix.csv", update=True)
    taro.admin().import_tokens(specs, update_existing=True)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.TOKEN_EXPIRED)
    assert token(taro).fail_count == 0  # an expired token counts nothing (SPEC §3.6)


def _bind_by_import(app: App, clock: FrozenClock) -> None:
    # A migration binds the user to the token he already carries (SPEC §7): active from now.
    row = UserSpec("kojima", "Kojima", password=PASSWORD, serial=SERIAL)
    onboarding.import_users(app.store, app.hashing, clock, [row], update=True)


def _issue_today(app: App, clock: FrozenClock) -> None:
    app.admin().issue("kojima", clock().date())  # activation from today


@pytest.mark.parametrize("change", [_bind_by_import, _issue_today], ids=["bind", "issue"])
def test_a_password_only_login_decided_before_a_token_was_given_is_refused(
    app: App, clock: FrozenClock, change: Callable[[App, FrozenClock], None]
) -> None:
    # Unregistered, kojima is let in on his password alone (SPEC §3.3). An operator binds
    # him to a token, or issues one, as his login is decided: once the command has
    # returned, the password alone must not let him in.
    import_token(app)
    add_user(app, "kojima")
    authenticator = app.authenticator()
    in_flight = authenticator.prepare(AuthRequest("kojima", PASSWORD))
    assert in_flight.decision.reason is Reason.PASSWORD_ONLY
    change(app, clock)
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.USER_CHANGED)
    assert user(app, "kojima").suspended is False  # nothing counted


def test_an_activation_decided_before_its_user_was_revoked_binds_nothing(
    app: App, clock: FrozenClock
) -> None:
    # The bank's letter said the token went out; it was lost in the post, and the bank
    # revokes the issue as the finder types its code (SPEC §2: revoked, must activate again).
    authenticator, in_flight = _activation_in_flight(app, clock)
    app.admin().revoke(ADMIN, CONFIRMATION, ["kojima"])
    (outcome,) = authenticator.commit([in_flight])
    assert (outcome.result, outcome.reason) == (Result.REJECT, Reason.TOKEN_REVOKED)
    assert user(app, "kojima").state.value == "revoked"
    assert user(app, "kojima").serial is None
    assert token(app).fail_count == 0  # nobody typed a wrong code
    # Revoked, the user activates again (SPEC §1), with the next code.
    clock.advance(60)
    reactivated = app.authenticator().activate("kojima", SERIAL, code(clock))
    assert reactivated.reason is Reason.ACTIVATED
