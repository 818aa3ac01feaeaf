"""Writers lock rows in one order, whatever the order of their work (PostgreSQL).

A login batch locks its users and tokens ``ORDER BY`` key, in the order of the database's
collation. PostgreSQL's default collation follows the host's locale, where "a1" sorts before
"Z1"; Python's sort puts "Z1" first. An import that locked its rows in chunks sorted by Python
could hold a row of its first chunk that a batch waits for, while waiting for a row of its
second chunk that the batch holds: PostgreSQL then fails one of them as a deadlock.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import otpcore.onboarding as onboarding
from otpcore.app import App
from otpcore.attempts import AuthOutcome, AuthRequest, Prepared, challenge_key
from otpcore.model import InputMode, Reason, Result
from otpcore.ports import FrozenClock
from otpcore.store.hot_writer import HeldRows, HotWriter
from otpcore.user_csv import UserSpec
from otpcore.views import Imported
from tests.conftest import PG_URL_ENV, drop_database, require_service
from tests.integration.lifecycle import (
    IMPORTER,
    PASSWORD,
    activated,
    add_user,
    code,
    import_beside_a_batch,
    import_token,
    login,
)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def locale_database(backend: str) -> Iterator[str]:
    """A scratch database collating as en-US does (ICU), not by code point."""
    base = os.environ.get(PG_URL_ENV)
    require_service("postgresql", base is not None)
    assert base is not None
    name = f"otpradius_t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                f'CREATE DATABASE "{name}" TEMPLATE template0 '
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        )
    admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    drop_database(base, url)


def test_a_large_import_and_a_batch_do_not_deadlock_under_a_locale_collation(
    make_app: Callable[..., App], locale_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(database={"url": locale_database})
    hashed = app.hashing.hash("a password")
    # Python: Y000…Y498, Z1, a1 (the first 500 in one chunk, a1 in the next);
    # en-US: a1, Y000…Y498, Z1.
    logins = [*(f"Y{n:03d}" for n in range(499)), "Z1", "a1"]
    onboarding.import_users(app.store, app.hashing, app.clock,
                            [UserSpec(x, "N", password_hash=hashed) for x in logins])  # fmt: skip
    authenticator = app.authenticator()
    batch = [authenticator.prepare(AuthRequest(u, "", InputMode.OTP)) for u in ("a1", "Z1")]
    rows = [UserSpec(x, "M", password_hash=hashed, line=n) for n, x in enumerate(logins, 2)]
    first_lock, go_on = threading.Event(), threading.Event()
    execute = Session.execute
    locks = 0

    def pausing_execute(self: Session, statement: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal locks
        result = execute(self, statement, *args, **kwargs)
        locking = getattr(statement, "_for_update_arg", None) is not None
        if threading.current_thread().name == IMPORTER and locking:
            locks += 1
            if locks == 1:  # the import's first locking statement has run
                first_lock.set()
                go_on.wait(5)
                time.sleep(0.5)  # the batch locks what it can meanwhile, then waits
        return result

    monkeypatch.setattr(Session, "execute", pausing_execute)
    results = import_beside_a_batch(
        lambda: onboarding.import_users(app.store, app.hashing, app.clock, rows, update=True),
        lambda: [(o.result, o.reason) for o in authenticator.commit(batch)],
        first_lock,
        go_on,
    )
    assert results == {
        "import": Imported(0, 501),
        "batch": [(Result.ACCEPT, Reason.PASSWORD_ONLY)] * 2,
    }


def test_answers_to_the_same_states_in_opposite_orders_on_two_nodes_do_not_deadlock(
    make_app: Callable[..., App], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Anyone with one password can collect States and answer them on two nodes in opposite
    # orders, under a User-Name that is not the challenge's: those batches write no user or
    # token row, only the challenges, in the order the answers came.
    first, second = make_app(), make_app()
    import_token(first)
    add_user(first, "taro")
    activated(first, clock, "taro")
    states = []
    for _ in range(2):
        question = login(first, "taro", PASSWORD, InputMode.CHALLENGE)
        assert question.reason is Reason.OTP_CHALLENGE
        assert question.state is not None
        states.append(question.state)

    def answers(app: App, order: list[bytes]) -> list[Prepared]:
        authenticator = app.authenticator()
        return [authenticator.prepare(AuthRequest("nobody", "000000", InputMode.CHALLENGE,
                                                  state, secrets.token_bytes(16)))
                for state in order]  # fmt: skip

    up, down = answers(first, states), answers(second, states[::-1])
    took = {"up": threading.Event(), "down": threading.Event()}
    take = HotWriter.take_challenge

    def take_then_wait(self: HotWriter, challenge_id: bytes, request: bytes) -> bool:
        taken = take(self, challenge_id, request)
        mine = threading.current_thread().name
        if not took[mine].is_set():
            took[mine].set()
            # Each holds its first State before either goes on to its second.
            # Less than the hot path's lock wait: a row held longer is another matter.
            took["down" if mine == "up" else "up"].wait(0.5)
        return taken

    monkeypatch.setattr(HotWriter, "take_challenge", take_then_wait)
    results: dict[str, object] = {}

    def commit(name: str, app: App, batch: list[Prepared]) -> None:
        try:
            results[name] = [o.reason for o in app.authenticator().commit(batch)]
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=commit, args=(name, app, batch), name=name)
        for name, app, batch in (("up", first, up), ("down", second, down))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Both batches are answered (neither is failed as a deadlock, which the worker would take
    # for an unreachable database), and each State serves one answer only.
    assert isinstance(results["up"], list)
    assert isinstance(results["down"], list)
    assert all(reason is Reason.BAD_STATE for reason in results["down"])


def test_a_batch_caught_in_a_lock_cycle_with_another_transaction_is_written_again(
    app: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    question = login(app, "taro", PASSWORD, InputMode.CHALLENGE)
    assert question.state is not None
    authenticator = app.authenticator()
    answer = authenticator.prepare(
        AuthRequest("taro", code(clock), InputMode.CHALLENGE, question.state, b"r" * 16)
    )
    locking = threading.Event()
    lock = HotWriter.lock

    def announced_lock(self: HotWriter, *keys: Any, **options: Any) -> HeldRows:
        locking.set()
        return lock(self, *keys, **options)

    monkeypatch.setattr(HotWriter, "lock", announced_lock)
    outcome: list[object] = []

    def commit() -> None:
        try:
            outcome.extend(authenticator.commit([answer]))
        except Exception as exc:
            outcome.append(exc)

    # Another transaction (a tool of the operator's, say) takes the challenge and then the
    # user: the order opposite to a batch's. The batch waits first, so PostgreSQL finds the
    # cycle in the batch's wait and fails the batch.
    engine = create_engine(app.settings.database_url)
    with engine.connect() as other:
        other.execute(text("SELECT id FROM challenges WHERE id = :id FOR UPDATE"),
                      {"id": challenge_key("", question.state)})  # fmt: skip
        batch = threading.Thread(target=commit)
        batch.start()
        assert locking.wait(10)
        # Not a fixed pause: on a busy host the batch could still be on its way to the
        # challenge, this transaction would wait first, and PostgreSQL would fail it instead.
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 10
        while not other.execute(waiting).scalar():  # the batch holds the user, waits here
            assert time.monotonic() < deadline, "the batch never waited for the challenge"
            time.sleep(0.02)
        other.execute(text("SELECT login FROM users WHERE login = 'taro' FOR UPDATE"))
        other.commit()
    batch.join(30)
    engine.dispose()
    (result,) = outcome
    assert isinstance(result, AuthOutcome)
    assert (result.result, result.reason) == (Result.ACCEPT, Reason.OK)
