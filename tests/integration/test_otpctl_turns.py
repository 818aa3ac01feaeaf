"""otpctl's writes take the server's writers' turn, and never wait for it for ever.

The daemon's workers queue their commits on a lock of ``<database>-writer``. otpctl going
straight to SQLite's lock would meet them in SQLite's busy handler, which sleeps and is never
woken early, and an operator's unlock could lose every try during a login storm. Here another
process holds the turn, as a worker in the middle of a commit does.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from click.testing import Result

import otpcore.store.engine as engine_setup
from otpcore.store import make_engine
from otpcore.store.turnstile import writers_turnstile
from tests.integration.cli_support import Otpctl, as_json, config_text, failed, ok, otpctl_runner
from tests.integration.turns import let_go, turn_held

ADMIN, ADMIN_PASSWORD, CONFIRMATION = "kanri", "kanri-pw-1", "kanri-conf-1"
USER, PASSWORD = "taro", "taro-pw-1"
SHORT_TIMEOUT_S = 1.0
BUSY = "otpctl: error: database busy: another writer held it for over 1 s; try again"
EXIT_BUSY = 69


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    # One wrong password suspends a user: something for an unlock to lift.
    (tmp_path / "config.toml").write_text(
        config_text(password_lockout_threshold=1), encoding="utf-8"
    )
    return tmp_path


@pytest.fixture
def otpctl(folder: Path) -> Otpctl:
    """otpctl after init, with an admin and a user suspended by a wrong password."""
    run = otpctl_runner(folder / "config.toml")
    ok(run("init"))
    ok(run("user", "add", ADMIN, "--name", "Kanri", "--class", "admin", "--password-stdin",
           input=f"{ADMIN_PASSWORD}\n{CONFIRMATION}\n"))  # fmt: skip
    ok(run("user", "add", USER, "--name", "Taro", "--class", "general", "--password-stdin",
           input=f"{PASSWORD}\n"))  # fmt: skip
    refused = run("check", USER, "--password-stdin", "--json", input="not the password\n")
    assert json.loads(refused.stdout) == {"result": "reject", "reason": "bad_password"}
    assert suspended(run)
    return run


def suspended(otpctl: Otpctl) -> bool:
    return bool(as_json(otpctl("user", "show", USER, "--json"))["suspended"])


def unlock(otpctl: Otpctl) -> Result:
    return otpctl("unlock", "--admin", ADMIN, USER, "--password-stdin", input=f"{CONFIRMATION}\n")


def everything(otpctl: Otpctl) -> list[object]:
    """What otpctl lists of users, tokens and the audit."""
    return [as_json(otpctl(*what, "--json")) for what in (("user", "list"), ("token", "list"),
                                                          ("audit",))]  # fmt: skip


def test_an_unlock_waits_for_the_turn_and_goes_ahead_once_it_is_let_go(
    otpctl: Otpctl, folder: Path
) -> None:
    results: list[Result] = []
    with turn_held(folder / "otpradius.db-writer") as holder:
        thread = threading.Thread(target=lambda: results.append(unlock(otpctl)))
        thread.start()
        thread.join(1.5)
        assert results == []  # SQLite's own lock is free: only the turn holds it back
        assert suspended(otpctl)
        let_go(holder)
        thread.join(30)
    (result,) = results
    assert "Lifted the one-time password suspension" in ok(result).stdout
    assert not suspended(otpctl)


@pytest.mark.parametrize("command", ["unlock", "token import", "user import", "token disable"])
def test_a_write_that_cannot_have_the_turn_in_the_busy_timeout_fails_and_writes_nothing(
    otpctl: Otpctl,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    tokens = folder / "tokens.csv"
    tokens.write_text(f"serial,secret\nA1,{bytes(range(20)).hex()}\n", encoding="utf-8")
    ok(otpctl("token", "import", str(tokens)))
    (folder / "more.csv").write_text(f"serial,secret\nB1,{bytes(range(1, 21)).hex()}\n")
    (folder / "users.csv").write_text("login,name,password\njiro,Jiro,jiro-pw-1\n")
    before = everything(otpctl)
    monkeypatch.setattr(engine_setup, "BUSY_TIMEOUT_S", SHORT_TIMEOUT_S)
    with turn_held(folder / "otpradius.db-writer"):
        started = time.monotonic()
        if command == "unlock":
            result = unlock(otpctl)
        elif command == "token import":
            result = otpctl("token", "import", str(folder / "more.csv"))
        elif command == "user import":
            result = otpctl("user", "import", str(folder / "users.csv"))
        else:
            result = otpctl("token", "disable", "A1")
        elapsed = time.monotonic() - started
        assert failed(result, EXIT_BUSY) == BUSY
        assert elapsed < 15  # the holder would let go after 30 s
        # Read-only commands take no turn: they run while it is held.
        assert everything(otpctl) == before
    assert suspended(otpctl)


def test_check_fails_as_busy_instead_of_waiting_for_a_writer_that_never_lets_go(
    otpctl: Otpctl, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # check commits through the daemon's own path, in the turn; a worker stuck in fdatasync on
    # a dead disk keeps that turn for good (the holder lets go after 30 s, not to hang here).
    monkeypatch.setattr(engine_setup, "BUSY_TIMEOUT_S", SHORT_TIMEOUT_S)
    with turn_held(folder / "otpradius.db-writer"):
        started = time.monotonic()
        # The password alone lets an admin without a token in: a commit resets its failures.
        result = otpctl("check", ADMIN, "--password-stdin", "--json", input=f"{ADMIN_PASSWORD}\n")
        elapsed = time.monotonic() - started
    assert failed(result, EXIT_BUSY) == BUSY
    assert result.stdout == ""  # no outcome: none was committed
    assert elapsed < 15


def test_sqlites_own_busy_timeout_gives_the_same_error(
    otpctl: Otpctl, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tool of the operator's own holding SQLite's write lock, outside the turn. otpctl's
    # start (schema revision, key check) only reads, and does not wait for that lock.
    monkeypatch.setattr(engine_setup, "BUSY_TIMEOUT_S", SHORT_TIMEOUT_S)
    other = sqlite3.connect(folder / "otpradius.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert as_json(otpctl("user", "show", USER, "--json"))["suspended"]
        assert failed(unlock(otpctl), EXIT_BUSY) == BUSY
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert suspended(otpctl)


def test_postgresql_writers_take_no_turn() -> None:
    # Rows are locked there, not the database; several nodes share no lock file anyway.
    engine = make_engine("postgresql+psycopg://otpradius@db.example/otpradius")
    assert writers_turnstile(engine) is None
