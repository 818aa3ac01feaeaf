"""The server's writers on one SQLite file take turns on a lock beside it, not in SQLite's sleeps.

A writer SQLite turns away sleeps 1 ms, then 2, 5, 10 and more, and is not woken when the lock
frees: two workers then waited for each other's short commits ten times as long. The turn is
a kernel lock on ``<database>-writer``, handed on the moment it is released.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from otpcore.app import App
from otpcore.store.turnstile import Turnstile
from tests.integration.lifecycle import add_user
from tests.integration.turns import let_go, turn_held


def _database(app: App) -> Path:
    database = app.hot.engine.url.database
    assert database
    return Path(database)


def _commit_in_a_thread(app: App, done: list[str]) -> threading.Thread:
    def commit() -> None:
        with app.hot.transaction() as writer:
            writer.count_password_failure("taro", 10)
        done.append("committed")

    thread = threading.Thread(target=commit)
    thread.start()
    return thread


def test_a_commit_waits_while_another_process_has_the_turn(app: App) -> None:
    add_user(app, "taro")
    with turn_held(f"{_database(app)}-writer") as holder:
        done: list[str] = []
        thread = _commit_in_a_thread(app, done)
        thread.join(timeout=0.5)
        assert done == []  # SQLite's own lock is free: only the turn holds it back
        let_go(holder)
        thread.join(timeout=10)
        assert done == ["committed"]
    user = app.hot.user("taro")
    assert user is not None
    assert user.password_failures == 1


def test_threads_of_one_process_take_turns_too(app: App) -> None:
    add_user(app, "taro")
    other = Turnstile(str(_database(app)))  # as the probe or a second writer thread
    with other.turn():
        done: list[str] = []
        thread = _commit_in_a_thread(app, done)
        thread.join(timeout=0.5)
        assert done == []
    thread.join(timeout=10)
    assert done == ["committed"]


@pytest.mark.parametrize("left", [None, 0o644], ids=["new", "left more open"])
def test_the_lock_file_has_the_databases_owner_and_is_the_owners_alone(
    app: App, left: int | None
) -> None:
    # Whoever can open it, even read-only, can flock it and hold up every commit.
    add_user(app, "taro")
    database = _database(app)
    os.chmod(database, 0o640)  # a group that may read the database may not take the turn
    lock = Path(f"{database}-writer")
    if left is not None:
        lock.write_bytes(b"")
        lock.chmod(left)
    if os.geteuid() == 0:
        os.chown(database, 65534, 65534)  # as a service account's database, opened by root
    with app.hot.transaction() as writer:
        writer.count_password_failure("taro", 10)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (lock.stat().st_uid, lock.stat().st_gid) == (65534, 65534)


def test_a_symlink_in_place_of_the_lock_file_is_not_followed(app: App, tmp_path: Path) -> None:
    add_user(app, "taro")  # an admin's write: it made the lock file, to be replaced here
    target = tmp_path / "elsewhere"
    lock = Path(f"{_database(app)}-writer")
    lock.unlink()
    lock.symlink_to(target)
    with app.hot.transaction() as writer:  # commits all the same, in SQLite's own turn
        writer.count_password_failure("taro", 10)
    assert not target.exists()
    user = app.hot.user("taro")
    assert user is not None
    assert user.password_failures == 1


@pytest.mark.parametrize("blocker", ["directory", "no folder"])
def test_without_a_usable_lock_file_commits_go_ahead(blocker: str, tmp_path: Path) -> None:
    turnstile = Turnstile(str(tmp_path / "missing" / "otpradius.db"))
    if blocker == "directory":
        (tmp_path / "otpradius.db").write_bytes(b"")
        (tmp_path / "otpradius.db-writer").mkdir()
        turnstile = Turnstile(str(tmp_path / "otpradius.db"))
    entered = False
    with turnstile.turn():
        entered = True
    assert entered


def test_a_lock_file_that_could_not_be_opened_is_tried_again(tmp_path: Path) -> None:
    database = tmp_path / "otpradius.db"
    database.write_bytes(b"")
    blocker = tmp_path / "otpradius.db-writer"
    blocker.mkdir()  # cannot be opened as a file: this turn goes ahead without the lock
    turnstile = Turnstile(str(database))
    with turnstile.turn():
        pass
    blocker.rmdir()
    with turnstile.turn():
        holder = Turnstile(str(database))  # another thread, another open file
        taken = threading.Event()

        def take() -> None:
            with holder.turn():
                taken.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not taken.wait(0.3)  # the second try opened the file and holds the lock
    thread.join(timeout=10)
    assert taken.is_set()
