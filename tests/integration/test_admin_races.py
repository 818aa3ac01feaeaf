"""Admin commands that read a row and write it back lock it first (PostgreSQL).

``user issue``, ``user passwd`` and ``token disable`` read the user or token row, decide, and
write it. PostgreSQL's plain read does not wait for a transaction that has written the row and
not yet committed (a login's batch, another operator's command): without ``FOR UPDATE`` the
command decided on the row as it was before that write, and what it wrote, or left alone
because it looked done already, undid it or was undone by it. Here another transaction holds
the row, written with the login path's own statements or as another command writes it; the
command must wait for it, and the row must end with both changes. (SQLite's write lock,
taken when a write transaction begins, serialises these already.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import create_engine, text

import otpcore.store.engine as engine_setup
from otpcore.passwords import HashingParams, PasswordHashing
from otpcore.store import hot_sql
from tests.conftest import FAST_HASHING
from tests.integration.cli_support import (
    Otpctl,
    as_json,
    failed,
    ok,
    otpctl_runner,
    today,
    write_config,
)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

SERIAL = "T-0001"
SECRET = bytes(range(1, 21))
ADMIN, ADMIN_PASSWORD, CONFIRMATION = "kanri", "kanri-pw-1", "kanri-conf-1"
USER, PASSWORD = "taro", "taro-pw-1"
THRESHOLD = 5  # far from reached: nothing here is meant to suspend
# A backend of this database waiting for a row lock (the command's, here).
WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND datname = current_database() AND pid <> pg_backend_pid()"
)
Statement = tuple[str, dict[str, Any]]


@pytest.fixture
def url(database_tables: dict[str, dict[str, Any]]) -> str:
    """The emptied PostgreSQL scratch database (skips, or fails in CI, without one)."""
    return str(database_tables["database"]["url"])


@pytest.fixture
def otpctl(tmp_path: Path, url: str) -> Otpctl:
    """otpctl on that database after ``init``, with an admin and a general user."""
    config = write_config(tmp_path, f'\n[database]\nurl = "{url}"\n')
    config.chmod(0o600)  # it holds the database's password
    run = otpctl_runner(config)
    ok(run("init"))
    ok(run("user", "add", ADMIN, "--name", "Kanri", "--class", "admin", "--password-stdin",
           input=f"{ADMIN_PASSWORD}\n{CONFIRMATION}\n"))  # fmt: skip
    ok(run("user", "add", USER, "--name", "Taro", "--class", "general", "--password-stdin",
           input=f"{PASSWORD}\n"))  # fmt: skip
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"serial,secret\n{SERIAL},{SECRET.hex()}\n", encoding="utf-8")
    ok(run("token", "import", str(tokens)))
    return run


@contextmanager
def held(url: str, *statements: Statement) -> Iterator[None]:
    """Another transaction that has written a row with ``statements``, holding it until the
    block ends, when it commits."""
    engine = create_engine(url)
    try:
        with engine.connect() as other:
            for statement, params in statements:
                assert other.execute(text(statement), params).rowcount == 1, statement
            yield
            other.commit()
    finally:
        engine.dispose()


class Pending:
    """A command waiting for a row; its result once the holder has let go."""

    def __init__(self, command: threading.Thread, results: list[Result]) -> None:
        self.command = command
        self.results = results

    def result(self) -> Result:
        self.command.join(30)
        assert not self.command.is_alive(), "it still waits after the holder committed"
        (result,) = self.results
        return result


def waiting(url: str, otpctl: Otpctl, *args: str, input: str | None = None) -> Pending:
    """``otpctl ARGS`` started while ``held`` holds its row: it must wait for the row (and go
    on once the holder commits, at the end of the caller's block)."""
    results: list[Result] = []
    command = threading.Thread(target=lambda: results.append(otpctl(*args, input=input)))
    engine = create_engine(url, isolation_level="AUTOCOMMIT")  # sees each new wait
    try:
        with engine.connect() as watcher:
            command.start()
            deadline = time.monotonic() + 20
            while not watcher.execute(WAITING).scalar():
                assert command.is_alive(), f"it never waited for the row: {results[0].output}"
                assert time.monotonic() < deadline, "it never waited for the row"
                time.sleep(0.02)
    finally:
        engine.dispose()
    assert command.is_alive()
    return Pending(command, results)


def columns(url: str, query: str, **params: object) -> tuple[Any, ...]:
    """One row of ``query`` as the database holds it now."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(query), params).one())
    finally:
        engine.dispose()


def user_counts(url: str, login: str) -> tuple[Any, ...]:
    """The user's serial, start date and failure counts."""
    return columns(
        url,
        "SELECT serial, start_date, password_failures, activation_failures "
        "FROM users WHERE login = :login",
        login=login,
    )


def check(otpctl: Otpctl, login: str, password: str) -> str:
    """``otpctl check LOGIN`` with the password alone: accept or reject."""
    result = otpctl("check", login, "--password-stdin", "--json", input=f"{password}\n")
    assert result.exit_code in (0, 1), result.output
    return str(json.loads(result.stdout)["result"])


# user issue


def test_issue_waits_for_a_logins_write_and_its_reset_of_the_count_stands(
    otpctl: Otpctl, url: str
) -> None:
    ok(otpctl("user", "issue", USER, "--start", today()))
    assert check(otpctl, USER, "not the password") == "reject"
    assert user_counts(url, USER)[2:] == (1, 0)
    # A batch being written: the right password (its failures reset) with a wrong activation
    # code (counted). A re-issue resets that count: the new token starts afresh; read without
    # a lock as 0 already, the reset was no change to write, and the count stayed 1.
    login_batch = (
        (hot_sql.RESET_PASSWORD_FAILURES, {"login": USER}),
        (hot_sql.ACTIVATION_FAILURE, {"login": USER, "threshold": THRESHOLD}),
    )
    with held(url, *login_batch):
        pending = waiting(url, otpctl, "user", "issue", USER, "--start", "2027-04-01", "--json")
    assert as_json(pending.result())["state"] == "issued"
    serial, start, password_failures, activation_failures = user_counts(url, USER)
    assert (serial, start.isoformat()) == (None, "2027-04-01")  # the issue's
    assert password_failures == 0  # the login's
    assert activation_failures == 0  # the issue's, after the login's count


def test_issue_waits_for_an_activation_and_then_refuses_the_bound_user(
    otpctl: Otpctl, url: str
) -> None:
    ok(otpctl("user", "issue", USER, "--start", today()))
    activation = (hot_sql.BIND, {"serial": SERIAL, "false": False, "login": USER})
    with held(url, activation):
        pending = waiting(url, otpctl, "user", "issue", USER, "--start", "2027-04-01")
    # Checked against the row as the activation left it: not a start date written over a
    # user already bound, as a read from before the binding let through.
    assert f"already has token {SERIAL}; revoke it first" in failed(pending.result(), 6)
    serial, start, _, _ = user_counts(url, USER)
    assert (serial, start.isoformat()) == (SERIAL, today())


# user passwd


@pytest.mark.parametrize(
    ("new_password", "refused"),
    [("kanri-pw-2", False), ("kanri-conf-2", True)],
    ids=["another-password", "the-new-confirmation-password"],
)
def test_passwd_waits_for_a_confirmation_password_being_set(
    otpctl: Otpctl, url: str, new_password: str, refused: bool
) -> None:
    # Another operator's 'user passwd kanri --confirmation' being written, as it writes it.
    hashing = PasswordHashing(HashingParams(**FAST_HASHING))
    confirmation = (
        "UPDATE users SET confirmation_hash = :hash, confirmation_failures = 0 "
        "WHERE login = :login",
        {"hash": hashing.hash("kanri-conf-2"), "login": ADMIN},
    )
    with held(url, confirmation):
        pending = waiting(
            url, otpctl, "user", "passwd", ADMIN, "--password-stdin", input=f"{new_password}\n"
        )
    result = pending.result()
    if refused:
        # Compared with the confirmation password as it now stands: one password for both
        # would let whoever learns the login password approve as kanri.
        assert "the login password must differ from the confirmation password" in failed(result, 2)
        assert check(otpctl, ADMIN, ADMIN_PASSWORD) == "accept"
    else:
        ok(result)
        assert check(otpctl, ADMIN, new_password) == "accept"  # this command's
        assert check(otpctl, ADMIN, ADMIN_PASSWORD) == "reject"
    # And the other operator's confirmation password approves.
    approve = ("unlock", "--admin", ADMIN, USER, "--password-stdin")
    ok(otpctl(*approve, input="kanri-conf-2\n"))
    assert failed(otpctl(*approve, input=f"{CONFIRMATION}\n"), 5)


# token disable


def test_token_disable_waits_for_an_enable_and_the_token_ends_disabled(
    otpctl: Otpctl, url: str
) -> None:
    ok(otpctl("token", "disable", SERIAL))
    # Another operator's 'token enable' being written. Read without a lock, the token looked
    # disabled already: the disable changed nothing, and the enable left a stolen token open.
    enable = ("UPDATE tokens SET disabled = false WHERE serial = :serial", {"serial": SERIAL})
    with held(url, enable):
        pending = waiting(url, otpctl, "token", "disable", SERIAL)
    assert ok(pending.result()).stdout == f"Disabled token {SERIAL}.\n"
    (listed,) = as_json(otpctl("token", "list", "--json"))
    assert listed["disabled"] is True
    events = as_json(otpctl("audit", "--json"))
    details = [e["detail"] for e in events if e["action"] == "token_disable"]
    assert details == [f"serial {SERIAL}", f"serial {SERIAL}"]  # each one a change


def test_token_disable_waits_for_a_logins_failure_and_shows_the_token_with_both(
    otpctl: Otpctl, url: str, tmp_path: Path
) -> None:
    users = tmp_path / "users.csv"
    users.write_text(f"login,name,password,start,serial\njiro,Jiro,jiro-pw-1,{today()},{SERIAL}\n")
    ok(otpctl("user", "import", str(users)))  # bound to the token at once
    # A batch counting jiro's wrong code on the token.
    now = datetime.now(UTC)
    failure = (
        hot_sql.TOKEN_FAILURE,
        {"serial": SERIAL, "login": "jiro", "threshold": THRESHOLD, "now": now},
    )
    with held(url, failure):
        pending = waiting(url, otpctl, "token", "disable", SERIAL, "--json")
    shown = as_json(pending.result())
    (listed,) = as_json(otpctl("token", "list", "--json"))
    assert (listed["disabled"], listed["fail_count"]) == (True, 1)  # the command's, the login's
    assert shown == listed  # what the command printed is the token as it left it


# a row held for good


def test_a_row_held_past_the_busy_timeout_fails_the_command_as_busy(
    otpctl: Otpctl, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A psql session left open after SELECT … FOR UPDATE made the command wait for ever; on
    # SQLite a write fails as busy after the busy timeout, with exit status 69, to be tried
    # again (the holder waits here for 1 s, not the 60 s of the timeout, to keep this short).
    monkeypatch.setattr(engine_setup, "BUSY_TIMEOUT_S", 1.0)
    holder = ("SELECT serial FROM tokens WHERE serial = :serial FOR UPDATE", {"serial": SERIAL})
    with held(url, holder):
        started = time.monotonic()
        result = otpctl("token", "disable", SERIAL)
        elapsed = time.monotonic() - started
        assert failed(result, 69) == (
            "otpctl: error: database busy: another transaction held a row it writes for over "
            "1 s; try again"
        )
        assert elapsed < 15
        # A command that reads waits for no row.
        (listed,) = as_json(otpctl("token", "list", "--json"))
        assert listed["disabled"] is False
    assert ok(otpctl("token", "disable", SERIAL)).stdout == f"Disabled token {SERIAL}.\n"
    events = as_json(otpctl("audit", "--json"))
    assert [e["outcome"] for e in events if e["action"] == "token_disable"] == ["ok"]
