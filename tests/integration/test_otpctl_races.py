"""otpctl processes run at once on one database (a SQLite file, or PostgreSQL) and key file.

Two ``user add`` of one login: whichever comes second is told the user already exists, as
when it runs after the first, never a driver's error. Two ``key rotate``: the second one
rotates from the key the first one left, never from a key file the first one is replacing.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from otpcore.crypto import Keyring, pending_key_path, read_key
from otpcore.keys import rotate_key
from otpcore.passwords import HashingParams, PasswordHashing
from otpcore.store import Store, make_engine
from otpcore.store.models import UserRow
from otpcore.store.turnstile import SUFFIX
from tests.conftest import BOTH_BACKENDS, FAST_HASHING
from tests.integration.cli_support import (
    as_json,
    ok,
    otpctl_program,
    otpctl_runner,
    write_config,
)

pytestmark = BOTH_BACKENDS
PROCESSES = 4
SECRETS = {f"T-{n:04d}": bytes(range(n, n + 20)) for n in range(1, 6)}
ALREADY_EXISTS = "otpctl: error: user taro already exists\n"
EXIT_ALREADY_EXISTS = 4
ROTATED = re.compile(r"seeds re-sealed from key ([0-9a-f]{16}) to key ([0-9a-f]{16})$")


@pytest.fixture
def url(tmp_path: Path, database_tables: dict[str, dict[str, Any]]) -> str:
    """The database's URL: a SQLite file beside the configuration, or the emptied
    PostgreSQL scratch database."""
    if "database" in database_tables:
        return str(database_tables["database"]["url"])
    return f"sqlite:///{tmp_path / 'otpradius.db'}"


@pytest.fixture
def config(tmp_path: Path, url: str, database_tables: dict[str, dict[str, Any]]) -> Path:
    """A configuration after ``otpctl init``, with five tokens in the inventory."""
    extra = f'\n[database]\nurl = "{url}"\n' if database_tables else ""
    path = write_config(tmp_path, extra)
    path.chmod(0o600)  # it may hold the database's password
    otpctl = otpctl_runner(path)
    ok(otpctl("init"))
    rows = "".join(f"{serial},{secret.hex()}\n" for serial, secret in SECRETS.items())
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("serial,secret\n" + rows, encoding="utf-8")
    ok(otpctl("token", "import", str(tokens)))
    return path


def started(config: Path, *command: str, input: str = "") -> subprocess.Popen[str]:
    """``otpctl --config CONFIG COMMAND`` as a process of its own, fed ``input``."""
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("OTPRADIUS_CONFIG", None)
    process = subprocess.Popen(
        [*otpctl_program(), "--config", str(config), *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin is not None
    process.stdin.write(input)
    process.stdin.close()
    return process


def finished(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    assert process.stdout is not None
    assert process.stderr is not None
    process.wait(timeout=120)
    out, err = process.stdout.read(), process.stderr.read()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def run_together(
    config: Path, *command: str, input: str = ""
) -> list[subprocess.CompletedProcess[str]]:
    """``otpctl COMMAND`` in PROCESSES processes started at once; each one's result."""
    processes = [started(config, *command, input=input) for _ in range(PROCESSES)]
    return [finished(process) for process in processes]


# user add


ADD = ("user", "add", "taro", "--name", "Taro", "--class", "general", "--password-stdin")


def test_adds_of_one_login_at_once_leave_one_user_and_say_already_exists(config: Path) -> None:
    results = run_together(config, *ADD, input="taro-pw-1\n")
    assert sorted(r.returncode for r in results) == [0] + [EXIT_ALREADY_EXISTS] * (PROCESSES - 1)
    refused = [r.stderr for r in results if r.returncode != 0]
    assert refused == [ALREADY_EXISTS] * (PROCESSES - 1)
    otpctl = otpctl_runner(config)
    assert [user["login"] for user in as_json(otpctl("user", "list", "--json"))] == ["taro"]
    added = [e for e in as_json(otpctl("audit", "--json")) if e["action"] == "user_add"]
    assert len(added) == 1


@contextmanager
def user_being_added(url: str, login: str) -> Iterator[None]:
    """Another transaction that has inserted ``login`` and commits when the block ends."""
    engine = make_engine(url)  # on SQLite, a write transaction takes the write lock at once
    hashing = PasswordHashing(HashingParams(**FAST_HASHING))
    try:
        with Session(engine) as session, session.begin():
            session.add(
                UserRow(
                    login=login,
                    name="The first",
                    user_class="general",
                    password_hash=hashing.hash("first-pw"),
                    revoked=False,
                    suspended=False,
                    password_failures=0,
                    activation_failures=0,
                    confirmation_failures=0,
                    created_at=datetime.now(UTC),
                )
            )
            session.flush()
            yield
    finally:
        engine.dispose()


def waits_for_its_write(backend: str, url: str, process: subprocess.Popen[str]) -> None:
    """Return once ``process`` is in its write transaction, waiting for the other one."""
    deadline = time.monotonic() + 30
    if backend == "postgresql":
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        try:
            with engine.connect() as watcher:
                while not watcher.execute(waiting).scalar():  # its insert waits for the key
                    assert process.poll() is None, finished(process)
                    assert time.monotonic() < deadline, "the add never waited"
                    time.sleep(0.02)
        finally:
            engine.dispose()
        return
    # SQLite: otpctl takes the writers' turn before SQLite's write lock, which the other
    # transaction holds; the turn taken tells that it waits there.
    turn = os.open(url.removeprefix("sqlite:///") + SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            assert process.poll() is None, finished(process)
            assert time.monotonic() < deadline, "the add never waited"
            try:
                fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            fcntl.flock(turn, fcntl.LOCK_UN)
            time.sleep(0.02)
    finally:
        os.close(turn)


def test_an_add_that_finds_the_login_taken_at_its_insert_says_already_exists(
    config: Path, url: str, backend: str
) -> None:
    # Both adds looked for the login before either committed: on PostgreSQL the second's
    # insert waits for the first's key, and fails once it commits.
    with user_being_added(url, "taro"):
        second = started(config, *ADD, input="taro-pw-1\n")
        waits_for_its_write(backend, url, second)
    result = finished(second)
    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_ALREADY_EXISTS,
        "",
        ALREADY_EXISTS,
    )
    (user,) = as_json(otpctl_runner(config)("user", "list", "--json"))
    assert user["name"] == "The first"


# key rotate


def rotations(config: Path) -> list[tuple[str, str]]:
    """(from, to) key ids of every key_rotate event, in order."""
    events = as_json(otpctl_runner(config)("audit", "--json"))
    found = [ROTATED.search(e["detail"]) for e in events if e["action"] == "key_rotate"]
    assert all(found), events
    return [(m.group(1), m.group(2)) for m in found if m]


def every_seed_opens(url: str, key_file: Path) -> None:
    """Every seed opens with the key file alone (no pending key left beside it)."""
    assert not pending_key_path(key_file).exists()
    ring = Keyring(read_key(key_file))
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT serial, sealed_secret FROM tokens")).all()
    finally:
        engine.dispose()
    assert {serial: ring.unseal(serial, bytes(sealed)) for serial, sealed in rows} == SECRETS


def test_rotations_at_once_each_rotate_from_the_key_the_one_before_left(
    config: Path, url: str
) -> None:
    key_file = config.parent / "otpradius.key"
    first = read_key(key_file).kid.hex()
    results = run_together(config, "key", "rotate")
    assert [(r.returncode, r.stdout.count("Re-sealed 5 seed(s)")) for r in results] == [
        (0, 1)
    ] * PROCESSES, [r.stderr for r in results]
    chain = rotations(config)
    # One after the other: each from the key the one before it moved to, each to a key of its
    # own; the last one's key is the key file's.
    assert [old for old, _ in chain] == [first] + [new for _, new in chain[:-1]]
    assert len({new for _, new in chain}) == PROCESSES
    assert chain[-1][1] == read_key(key_file).kid.hex()
    shown = sorted(re.findall(r"new key, id ([0-9a-f]{16});", "".join(r.stdout for r in results)))
    assert shown == sorted(new for _, new in chain)  # each says the key it made
    every_seed_opens(url, key_file)


def test_a_rotation_started_as_another_renames_its_key_waits_and_rotates_from_that_key(
    config: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first rotation has committed, and is about to rename its key over the key file; the
    # database lets the second one in already. Started before the rename, the second one must
    # still read the key files as the first leaves them.
    key_file = config.parent / "otpradius.key"
    first_key = read_key(key_file).kid.hex()
    about_to_rename, rename = threading.Event(), threading.Event()
    replace = os.replace

    def paused_replace(source: Any, target: Any) -> None:
        if threading.current_thread().name == "first" and Path(target) == key_file:
            about_to_rename.set()
            rename.wait(30)
        replace(source, target)

    monkeypatch.setattr("otpcore.keys.os.replace", paused_replace)
    errors: list[BaseException] = []

    def first_rotation() -> None:
        store = Store(make_engine(url))
        try:
            rotate_key(store, key_file, lambda: datetime.now(UTC), "otpctl:first")
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.dispose()

    first = threading.Thread(target=first_rotation, name="first")
    first.start()
    try:
        assert about_to_rename.wait(30)
        second = started(config, "key", "rotate")
        assert second.stderr is not None
        # It waits for the other rotation, and says so.
        ready, _, _ = select.select([second.stderr], [], [], 30)
        assert ready, "the second rotation neither ended nor said it waits"
        time.sleep(0.5)
        assert second.poll() is None, finished(second)
        line = second.stderr.readline()
        assert "another key rotation is running on this host; waiting" in line, line
    finally:
        rename.set()
        first.join(30)
    assert errors == []
    result = finished(second)
    assert result.returncode == 0, result.stderr
    (one, two) = rotations(config)
    assert one[0] == first_key
    assert two[0] == one[1]  # from the key the first one moved to
    assert two[1] not in (one[0], one[1])
    assert f"new key, id {two[1]};" in result.stdout
    assert read_key(key_file).kid.hex() == two[1]
    every_seed_opens(url, key_file)
