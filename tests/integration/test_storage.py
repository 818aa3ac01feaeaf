"""Storage and durability (SPEC §8): sealed seeds, key rotation, the key file, rehashing."""

from __future__ import annotations

import base64
import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

import otpcore.keys as keys_module
from otpcore.app import App
from otpcore.attempts import AuthRequest
from otpcore.crypto import Keyring, load_keyring, pending_key_path, read_key
from otpcore.errors import KeyFileError, StorageError, Unavailable
from otpcore.keys import create_key, key_needed, prepare_rotation, rotate_key, sealing_key_ids
from otpcore.model import Algorithm, Reason, Result, TokenKind
from otpcore.passwords import PasswordHashing
from otpcore.ports import FrozenClock
from otpcore.store import make_engine
from otpcore.store.repo import Repo
from otpcore.token_csv import TokenSpec, read_token_csv
from tests.conftest import (
    BOTH_BACKENDS,
    PG_URL_ENV,
    drop_database,
    require_service,
    scratch_database,
)
from tests.integration.daemon import Site
from tests.integration.lifecycle import (
    PASSWORD,
    activated,
    add_user,
    code,
    import_token,
    login,
    next_step,
)

SEEDS = {
    "T-SHA1": (os.urandom(20), Algorithm.SHA1),
    "T-SHA256": (os.urandom(32), Algorithm.SHA256),
    "T-SHA512": (os.urandom(64), Algorithm.SHA512),
}


def db_path(app: App) -> Path:
    url = app.settings.database_url
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def sealed_seeds(app: App) -> dict[str, bytes]:
    """The stored (sealed) seeds, read straight from the file, read-only."""
    uri = f"file:{db_path(app)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute("SELECT serial, sealed_secret FROM tokens").fetchall()
    return {serial: bytes(sealed) for serial, sealed in rows}


def password_hash(app: App, login_name: str) -> str:
    uri = f"file:{db_path(app)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        (value,) = db.execute(
            "SELECT password_hash FROM users WHERE login = ?", (login_name,)
        ).fetchone()
    assert isinstance(value, str)
    return value


@pytest.fixture
def tokens(app: App, clock: FrozenClock) -> App:
    """Three tokens of three algorithms, each bound to one user who has logged in once."""
    for serial, (secret, algorithm) in SEEDS.items():
        import_token(app, serial, secret=secret, algorithm=algorithm)
        add_user(app, serial.lower())
        activated(app, clock, serial.lower(), serial, secret=secret, algorithm=algorithm)
    return app


def every_token_verifies(app: App, clock: FrozenClock) -> None:
    next_step(clock)
    for serial, (secret, algorithm) in SEEDS.items():
        outcome = login(
            app, serial.lower(), PASSWORD + code(clock, secret=secret, algorithm=algorithm)
        )
        assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.OK), serial


# Key rotation


def test_rotation_reseals_every_seed(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock
) -> None:
    key_file = tokens.settings.key_file
    old_key = read_key(key_file)
    before = sealed_seeds(tokens)
    assert rotate_key(tokens.store, key_file, clock) == 3
    new_key = read_key(key_file)
    assert new_key.kid != old_key.kid
    assert not pending_key_path(key_file).exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    after = sealed_seeds(tokens)
    for serial, sealed in after.items():
        assert sealed != before[serial]
        assert Keyring(new_key).sealed_kid(sealed) == new_key.kid
        assert Keyring(new_key).unseal(serial, sealed) == SEEDS[serial][0]
        with pytest.raises(KeyFileError):
            Keyring(old_key).unseal(serial, sealed)
    every_token_verifies(make_app(), clock)  # a process started after the rotation
    (event,) = [e for e in tokens.admin().audit() if e.action == "key_rotate"]
    moved = f"from key {old_key.kid.hex()} to key {new_key.kid.hex()}"
    assert event.detail == f"3 seeds re-sealed {moved}"


@BOTH_BACKENDS
def test_a_missing_key_file_names_the_key_the_seeds_are_sealed_under(
    tokens: App, clock: FrozenClock
) -> None:
    key_file = tokens.settings.key_file
    old = read_key(key_file).kid.hex()
    assert sealing_key_ids(tokens.store) == [old]
    rotate_key(tokens.store, key_file, clock)
    new = read_key(key_file).kid.hex()
    assert sealing_key_ids(tokens.store) == [new]
    needed = key_needed(tokens.store, key_file)
    assert needed is not None
    assert str(needed) == (
        f"{key_file}: key file not found, but the database holds 3 seed(s) sealed under key "
        f"{new}: restore the key file with that id (a new key would open none of them)"
    )


def site_on(backend: str, tmp_path: Path) -> Site:
    """A site on SQLite, or on a fresh PostgreSQL database (skips, or fails in CI, without)."""
    if backend == "sqlite":
        return Site.sqlite(tmp_path)
    url = os.environ.get(PG_URL_ENV)
    require_service(f"postgresql ({PG_URL_ENV})", bool(url))
    assert url is not None
    return Site.postgresql(url, tmp_path)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_rotation_in_slices_reseals_every_seed_once(
    backend: str, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL seeds are locked and re-sealed a slice at a time (1,000; 2 here), in serial
    # order and all in one transaction: none may be skipped, or sealed twice, at a slice's
    # edge. SQLite re-seals the table in one statement, which must take every row once too.
    monkeypatch.setattr("otpcore.keys.ROTATION_SLICE", 2)
    with site_on(backend, tmp_path) as site:
        tokens = {token.serial: token.secret for token in (site.add_token() for _ in range(5))}
        key_file = site.app.settings.key_file
        old_key = read_key(key_file)
        assert rotate_key(site.app.store, key_file, clock) == 5
        new_key = Keyring(read_key(key_file))
        with site.app.store.reading() as repo:
            sealed = {serial: blob for serial, _, blob in repo.sealed_seeds()}
        assert {serial: new_key.unseal(serial, blob) for serial, blob in sealed.items()} == tokens
        assert all(new_key.sealed_kid(blob) != old_key.kid for blob in sealed.values())
        (event,) = [e for e in site.app.admin().audit() if e.action == "key_rotate"]
        moved = f"from key {old_key.kid.hex()} to key {new_key.current.kid.hex()}"
        assert event.detail == f"5 seeds re-sealed {moved}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_rotation_run_again_after_its_end_was_lost_audits_where_the_seeds_were(
    backend: str, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rotation committed, and then its rename failed (or its connection was lost as it
    # committed, which leaves the same): every seed is under the pending key. Run again, as
    # the error says, it finished the work but audited every seed as re-sealed from the old
    # key, the key the README has an operator restore a backup by.
    with site_on(backend, tmp_path) as site:
        tokens = {token.serial: token.secret for token in (site.add_token() for _ in range(3))}
        key_file = site.app.settings.key_file
        old = read_key(key_file).kid.hex()

        def no_rename(source: object, target: object) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(keys_module.os, "replace", no_rename)
        with pytest.raises(KeyFileError, match="run 'otpctl key rotate' again to finish"):
            rotate_key(site.app.store, key_file, clock)
        new = read_key(pending_key_path(key_file)).kid.hex()
        assert sealing_key_ids(site.app.store) == [new]
        monkeypatch.undo()
        assert rotate_key(site.app.store, key_file, clock) == 3
        assert read_key(key_file).kid.hex() == new
        first, second = [e.detail for e in site.app.admin().audit() if e.action == "key_rotate"]
        assert first == f"3 seeds re-sealed from key {old} to key {new}"
        assert second == f"0 seeds re-sealed from key {old} to key {new}, 3 already under key {new}"
        ring = Keyring(read_key(key_file))
        with site.app.store.reading() as repo:
            sealed = {serial: blob for serial, _, blob in repo.sealed_seeds()}
        assert {serial: ring.unseal(serial, blob) for serial, blob in sealed.items()} == tokens


def test_a_rotation_that_lost_the_database_says_to_run_it_again(
    tokens: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(*_args: object) -> tuple[int, int]:
        raise Unavailable("database unavailable: server closed the connection unexpectedly")

    monkeypatch.setattr(keys_module, "_reseal_in_one_statement", lost)
    key_file = tokens.settings.key_file
    with pytest.raises(Unavailable) as caught:
        rotate_key(tokens.store, key_file, clock)
    assert str(caught.value) == (
        "database unavailable: server closed the connection unexpectedly; the rotation may or "
        "may not have been written: run 'otpctl key rotate' again once the database answers, "
        f"which finishes it either way (keep {pending_key_path(key_file).name} until then)"
    )
    monkeypatch.undo()
    assert rotate_key(tokens.store, key_file, clock) == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_rotation_seals_ahead_and_in_the_lock_only_the_seeds_changed_meanwhile(
    backend: str, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The logins that must write wait for the rotation's lock: the seeds are sealed under the
    # next key before it is taken. A seed an import replaced after that, or a token imported
    # after it, must not get the staged seal of what the row held before (a leaked seed
    # replaced would come back): those are sealed again in the lock, and only those.
    monkeypatch.setattr("otpcore.keys.ROTATION_SLICE", 2)
    monkeypatch.setattr("otpcore.keys.STAGING_SLICE", 2)
    with site_on(backend, tmp_path) as site:
        tokens = {token.serial: token.secret for token in (site.add_token() for _ in range(5))}
        replaced = sorted(tokens)[2]
        locked: list[bool] = []
        sealed_in_lock: list[str] = []
        added: list[str] = []
        changed: list[bool] = []
        stage = keys_module._staged

        def stage_then_change(*args: Any) -> dict[str, bytes]:
            staged = stage(*args)
            tokens[replaced] = os.urandom(20)
            spec = TokenSpec(replaced, tokens[replaced], TokenKind.SOFTWARE, Algorithm.SHA1,
                             6, 30, None)  # fmt: skip
            site.app.admin("tests").import_tokens([spec], update_existing=True)
            token = site.add_token()
            tokens[token.serial] = token.secret
            added.append(token.serial)
            changed.append(True)  # the imports' own locks and seals are done
            return staged

        lock_inventory = Repo.lock_inventory

        def lock_noted(repo: Repo) -> None:
            lock_inventory(repo)
            locked.extend(changed)

        seal = Keyring.seal

        def seal_noted(ring: Keyring, serial: str, secret: bytes) -> bytes:
            if locked:
                sealed_in_lock.append(serial)
            return seal(ring, serial, secret)

        monkeypatch.setattr(keys_module, "_staged", stage_then_change)
        monkeypatch.setattr(Repo, "lock_inventory", lock_noted)
        monkeypatch.setattr(Keyring, "seal", seal_noted)
        key_file = site.app.settings.key_file
        assert rotate_key(site.app.store, key_file, clock) == 6
        new_key = Keyring(read_key(key_file))
        with site.app.store.reading() as repo:
            sealed = {serial: blob for serial, _, blob in repo.sealed_seeds()}
        assert {serial: new_key.unseal(serial, blob) for serial, blob in sealed.items()} == tokens
        assert sorted(sealed_in_lock) == sorted([replaced, *added])


def test_a_rotation_run_as_root_leaves_the_key_to_its_owner(
    tokens: App, clock: FrozenClock
) -> None:
    # The daemon runs as its own user; otpctl key rotate is often run as root. The new key
    # (and the prepared one) must stay readable by the daemon's user.
    if os.geteuid() != 0:
        pytest.skip("needs root to give the key file to another user")
    key_file = tokens.settings.key_file
    os.chown(key_file, 65534, 65534)
    pending, _ = prepare_rotation(key_file)
    assert (pending.stat().st_uid, pending.stat().st_gid) == (65534, 65534)
    rotate_key(tokens.store, key_file, clock)
    assert (key_file.stat().st_uid, key_file.stat().st_gid) == (65534, 65534)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_a_running_server_keeps_verifying_after_a_rotation(tokens: App, clock: FrozenClock) -> None:
    # otp-radiusd loaded the key at start; `otpctl key rotate` runs beside it.
    rotate_key(tokens.store, tokens.settings.key_file, clock)
    every_token_verifies(tokens, clock)
    rotate_key(tokens.store, tokens.settings.key_file, clock)
    every_token_verifies(tokens, clock)


def other_node(app: App, make_app: Callable[..., App], tmp_path: Path) -> tuple[App, Path]:
    """A second node on the same database with its own copy of the key file, and that copy."""
    copy = tmp_path / "node-b" / app.settings.key_file.name
    copy.parent.mkdir()
    shutil.copy2(app.settings.key_file, copy)
    return make_app(secrets={"key_file": str(copy)}), copy


def test_nodes_given_the_prepared_key_keep_verifying_through_a_rotation(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, tmp_path: Path
) -> None:
    """Several nodes, each with its own copy of the key file, on one database."""
    key_file = tokens.settings.key_file
    node_b, copy = other_node(tokens, make_app, tmp_path)
    pending, created = prepare_rotation(key_file)
    assert created
    assert sealed_seeds(tokens) == sealed_seeds(node_b)  # nothing sealed yet
    assert prepare_rotation(key_file) == (pending, False)  # a second prepare keeps it
    shutil.copy2(pending, pending_key_path(copy))  # the operator's copy to node B
    assert rotate_key(tokens.store, key_file, clock) == 3  # on node A, reusing that key
    every_token_verifies(node_b, clock)  # node B never loaded the new key itself
    every_token_verifies(make_app(secrets={"key_file": str(copy)}), clock)  # nor on a restart


def test_a_node_without_the_new_key_refuses_to_open_seeds(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, tmp_path: Path
) -> None:
    node_b, _ = other_node(tokens, make_app, tmp_path)
    rotate_key(tokens.store, tokens.settings.key_file, clock)
    next_step(clock)
    secret, algorithm = SEEDS["T-SHA1"]
    with pytest.raises(KeyFileError):  # fails closed: the request is not answered
        login(node_b, "t-sha1", PASSWORD + code(clock, secret=secret, algorithm=algorithm))


@BOTH_BACKENDS
def test_the_seed_the_health_probe_tries_tells_a_node_without_the_new_key(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, tmp_path: Path
) -> None:
    # The daemon's probe opens one seed a second to stop answering Status-Server on a node
    # whose key no longer opens the database's seeds.
    node_b, _ = other_node(tokens, make_app, tmp_path)
    sample = node_b.hot.some_seed()
    assert sample is not None
    assert sample[0] in SEEDS
    assert node_b.keyring.unseal(*sample) == SEEDS[sample[0]][0]
    rotate_key(tokens.store, tokens.settings.key_file, clock)
    sample = node_b.hot.some_seed()
    assert sample is not None
    with pytest.raises(KeyFileError, match=f"seed of token {sample[0]}"):
        node_b.keyring.unseal(*sample)
    assert tokens.keyring.unseal(*sample)  # the node that rotated takes the new key itself


def test_rotation_interrupted_after_the_commit(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tokens.settings.key_file
    old = key_file.read_bytes()

    def crash(*_args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    pending = pending_key_path(key_file)
    with monkeypatch.context() as patch:
        patch.setattr("otpcore.keys.os.replace", crash)
        with pytest.raises(KeyFileError) as caught:
            rotate_key(tokens.store, key_file, clock)
    # One line for otpctl's key-file status, saying what is left to do.
    assert str(caught.value) == (
        f"{key_file}: every seed is re-sealed under {pending}, which could not replace the key "
        "file: Input/output error; run 'otpctl key rotate' again to finish"
    )
    assert pending.exists()
    assert key_file.read_bytes() == old
    # Every seed is sealed under the pending key now, and still opens.
    every_token_verifies(make_app(), clock)
    new = pending.read_bytes()
    assert rotate_key(tokens.store, key_file, clock) == 3
    assert key_file.read_bytes() == new
    assert not pending.exists()
    every_token_verifies(make_app(), clock)


def test_rotation_interrupted_before_the_commit(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock
) -> None:
    # SQLite re-seals the whole table in one statement: it has written every seed when the
    # command is killed, and the transaction still takes back each one.
    key_file = tokens.settings.key_file
    before = sealed_seeds(tokens)
    writes: list[str] = []

    def killed_after_the_first_write(*args: Any) -> None:
        if args[2].startswith("UPDATE tokens SET sealed_secret"):
            writes.append(args[2])
            raise RuntimeError("killed")

    event.listen(tokens.store.engine, "after_cursor_execute", killed_after_the_first_write)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            rotate_key(tokens.store, key_file, clock)
    finally:
        event.remove(tokens.store.engine, "after_cursor_execute", killed_after_the_first_write)
    assert len(writes) == 1
    assert sealed_seeds(tokens) == before  # rolled back: nothing half re-sealed
    assert pending_key_path(key_file).exists()
    every_token_verifies(make_app(), clock)
    assert rotate_key(tokens.store, key_file, clock) == 3
    assert not pending_key_path(key_file).exists()
    every_token_verifies(make_app(), clock)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_rotation_meeting_a_seed_no_key_opens_names_its_token_and_writes_nothing(
    backend: str, tmp_path: Path, clock: FrozenClock
) -> None:
    # A key file that is not the database's (a restore from the wrong backup, say): the
    # rotation must stop at the first seed it cannot open, say which, and re-seal none.
    with site_on(backend, tmp_path) as site:
        serials = sorted(site.add_token().serial for _ in range(3))
        with site.app.store.reading() as repo:
            before = {serial: blob for serial, _, blob in repo.sealed_seeds()}
        key_file = site.app.settings.key_file
        key_file.unlink()
        create_key(key_file)
        with pytest.raises(KeyFileError) as caught:
            rotate_key(site.app.store, key_file, clock)
        assert str(caught.value) == (
            f"the seed of token {serials[0]} names a key the key file does not hold"
        )
        with site.app.store.reading() as repo:
            assert {serial: blob for serial, _, blob in repo.sealed_seeds()} == before
        assert not [e for e in site.app.admin().audit() if e.action == "key_rotate"]


def test_a_rotation_interrupted_while_sealing_ahead_leaves_everything_as_it_was(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tokens.settings.key_file
    before = sealed_seeds(tokens)
    calls: list[str] = []
    real_seal = Keyring.seal

    def failing_seal(self: Keyring, serial: str, secret: bytes) -> bytes:
        calls.append(serial)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real_seal(self, serial, secret)

    with monkeypatch.context() as patch:
        patch.setattr(Keyring, "seal", failing_seal)
        with pytest.raises(RuntimeError, match="killed"):
            rotate_key(tokens.store, key_file, clock)
    assert sealed_seeds(tokens) == before
    assert not pending_key_path(key_file).exists()  # the next key was only in memory
    every_token_verifies(make_app(), clock)
    assert rotate_key(tokens.store, key_file, clock) == 3
    every_token_verifies(make_app(), clock)


def test_the_new_keys_name_is_on_disk_before_any_seed_is_sealed_under_it(
    tokens: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A power cut loses what the folder has not synced: the link naming the new key, once
    # the seeds sealed under that key are committed, would be the only key they open with.
    # No test can cut the power, so the calls are watched, each still made for real. (The
    # seeds are sealed in memory before the link; none is written before it is synced.)
    key_file = tokens.settings.key_file
    folder = key_file.parent.stat()
    events: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.samestat(os.fstat(fd), folder):
            events.append("folder synced")

    def link(source: str, target: str) -> None:
        real_link(source, target)
        events.append(f"linked {Path(target).name}")

    def written(*args: Any) -> None:
        if args[2].startswith("UPDATE tokens SET sealed_secret"):
            events.append("sealed seeds written")

    event.listen(tokens.store.engine, "before_cursor_execute", written)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", fsync)
            patch.setattr(os, "link", link)
            assert rotate_key(tokens.store, key_file, clock) == 3
    finally:
        event.remove(tokens.store.engine, "before_cursor_execute", written)
    linked = events.index(f"linked {pending_key_path(key_file).name}")
    assert "folder synced" in events[linked : events.index("sealed seeds written")], events


def test_a_disk_full_while_writing_the_new_key_leaves_no_key_behind(
    tokens: App, make_app: Callable[..., App], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new key's file was created first and written after: a full disk (or a crash) in
    # between left it short, and every start and otpctl command refused it from then on.
    key_file = tokens.settings.key_file
    before = sorted(path.name for path in key_file.parent.iterdir())

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", disk_full)
        with pytest.raises(KeyFileError) as caught:
            rotate_key(tokens.store, key_file, clock)
    pending = pending_key_path(key_file)
    assert str(caught.value) == f"{pending}: cannot create the key file: No space left on device"
    assert sorted(path.name for path in key_file.parent.iterdir()) == before
    every_token_verifies(make_app(), clock)  # the server starts and serves as before
    assert rotate_key(tokens.store, key_file, clock) == 3
    every_token_verifies(make_app(), clock)


# The key file


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(
    app: App, make_app: Callable[..., App], mode: int
) -> None:
    key_file = app.settings.key_file
    key_file.chmod(mode)
    with pytest.raises(KeyFileError, match="group or others"):
        make_app()
    with pytest.raises(KeyFileError):
        create_key(key_file)
    with pytest.raises(KeyFileError):
        load_keyring(key_file)


def test_a_pending_key_others_can_read_is_refused(app: App) -> None:
    key_file = app.settings.key_file
    pending = pending_key_path(key_file)
    pending.write_bytes(os.urandom(32))
    pending.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        load_keyring(key_file)


def test_a_key_file_of_the_wrong_size_is_refused(app: App) -> None:
    key_file = app.settings.key_file
    key_file.chmod(0o600)
    key_file.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="32 bytes"):
        load_keyring(key_file)


def test_a_key_file_that_cannot_be_read_is_a_key_file_error_naming_it(
    app: App, make_app: Callable[..., App], tmp_path: Path
) -> None:
    # What the system says is the reason, one line; not an OSError that otpctl calls a bug
    # and the daemon dies of with a traceback.
    key_file = app.settings.key_file
    key_file.unlink()
    key_file.mkdir(mode=0o700)
    reason = f"{key_file}: cannot read the key file: {os.strerror(errno.EISDIR)}"
    for action in (make_app, lambda: create_key(key_file), lambda: prepare_rotation(key_file)):
        with pytest.raises(KeyFileError) as caught:
            action()
        assert str(caught.value) == reason
    # A key file's pending successor, read beside it; and a path through a file.
    key_file.rmdir()
    create_key(key_file)
    pending_key_path(key_file).mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match=f"{pending_key_path(key_file)}: cannot read"):
        load_keyring(key_file)
    through = tmp_path / "a-file" / key_file.name
    through.parent.write_bytes(b"")
    reason = f"{through}: cannot read the key file: {os.strerror(errno.ENOTDIR)}"
    for action in (lambda: load_keyring(through), lambda: create_key(through)):
        with pytest.raises(KeyFileError) as caught:
            action()
        assert str(caught.value) == reason


def test_create_key_never_overwrites(app: App) -> None:
    key_file = app.settings.key_file
    before = key_file.read_bytes()
    assert create_key(key_file) is False
    assert key_file.read_bytes() == before
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_a_seed_copied_onto_another_serial_does_not_open(tokens: App) -> None:
    keyring = load_keyring(tokens.settings.key_file)
    sealed = sealed_seeds(tokens)
    with pytest.raises(KeyFileError):
        keyring.unseal("T-SHA256", sealed["T-SHA1"])
    tampered = bytearray(sealed["T-SHA1"])
    tampered[-1] ^= 1
    with pytest.raises(KeyFileError):
        keyring.unseal("T-SHA1", bytes(tampered))


def test_a_start_on_damaged_seeds_says_the_key_is_the_right_one(
    tokens: App, make_app: Callable[..., App]
) -> None:
    # Told "restore the key file with that id", an operator holding that very key would
    # hunt for another copy of it.
    with closing(sqlite3.connect(db_path(tokens))) as db, db:
        for serial, sealed in db.execute("SELECT serial, sealed_secret FROM tokens").fetchall():
            damaged = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
            db.execute("UPDATE tokens SET sealed_secret = ? WHERE serial = ?", (damaged, serial))
    key_file = tokens.settings.key_file
    held = read_key(key_file).kid.hex()
    with pytest.raises(KeyFileError) as caught:
        make_app()
    message = str(caught.value)
    assert message.startswith(f"{key_file}: does not open the seeds in the database: token ")
    assert message.endswith(f"'s seed names this file's key, {held}, and does not open with it "
                            "(damaged)")  # fmt: skip


# No seed in clear


def forms(secret: bytes) -> Iterator[bytes]:
    yield secret
    yield secret.hex().encode()
    yield secret.hex().upper().encode()
    b32 = base64.b32encode(secret)
    yield b32
    yield b32.rstrip(b"=")
    yield b32.lower().rstrip(b"=")
    yield base64.b64encode(secret)


def test_no_seed_appears_in_clear_in_the_database_files(
    app: App, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csv_secret = os.urandom(20)
    b32 = base64.b32encode(csv_secret).decode().rstrip("=")
    app.admin().import_tokens(read_token_csv(f"serial,secret_base32\nCSV1,{b32}\n", "seeds.csv"))
    hex_secret = os.urandom(32)
    text_csv = f"serial,secret,algorithm\nCSV2,{hex_secret.hex()},SHA256\n"
    app.admin().import_tokens(read_token_csv(text_csv, "seeds.csv"))
    add_user(app, "taro")
    activated(app, clock, "taro", "CSV1", secret=csv_secret)
    login(app, "taro", PASSWORD + code(clock, secret=csv_secret))
    login(app, "taro", PASSWORD + "000000")
    rotate_key(app.store, app.settings.key_file, clock)
    files = [p for p in db_path(app).parent.iterdir() if p.name.startswith(db_path(app).name)]
    assert any(p.name.endswith("-wal") for p in files)
    contents = b"".join(p.read_bytes() for p in files)
    assert len(contents) > 4096
    for secret in (csv_secret, hex_secret):
        for form in forms(secret):
            assert form not in contents
            assert form.decode("latin-1") not in caplog.text
    assert PASSWORD.encode() not in contents
    assert PASSWORD not in caplog.text


# Passwords


def test_passwords_are_argon2id_with_the_configured_parameters(app: App) -> None:
    add_user(app, "taro")
    stored = password_hash(app, "taro")
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert PASSWORD not in stored


def test_rehash_on_login_when_the_parameters_change(app: App, make_app: Callable[..., App]) -> None:
    add_user(app, "taro")
    add_user(app, "hanako")
    stronger = make_app(hashing={"time_cost": 2, "memory_kib": 128})
    # A wrong password does not rehash.
    assert login(stronger, "taro", "wrong").reason is Reason.BAD_PASSWORD
    assert password_hash(stronger, "taro").startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert login(stronger, "taro", PASSWORD).result is Result.ACCEPT
    assert password_hash(stronger, "taro").startswith("$argon2id$v=19$m=128,t=2,p=1$")
    assert password_hash(stronger, "hanako").startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert not PasswordHashing(stronger.settings.hashing).needs_rehash(password_hash(app, "taro"))
    # The new hash verifies, and is left alone while the parameters stay.
    rehashed = password_hash(app, "taro")
    assert login(stronger, "taro", PASSWORD).result is Result.ACCEPT
    assert password_hash(app, "taro") == rehashed


def test_rehash_after_an_otp_login(
    app: App, make_app: Callable[..., App], clock: FrozenClock
) -> None:
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    stronger = make_app(hashing={"time_cost": 3})
    assert login(stronger, "taro", PASSWORD + "000000").result is Result.REJECT
    assert ",t=1," in password_hash(app, "taro")
    assert login(stronger, "taro", PASSWORD + code(clock)).reason is Reason.OK
    assert ",t=3," in password_hash(app, "taro")


def test_a_password_set_during_a_login_is_not_undone_by_its_rehash(
    app: App, make_app: Callable[..., App]
) -> None:
    add_user(app, "taro")
    stronger = make_app(hashing={"time_cost": 2, "memory_kib": 128})
    authenticator = stronger.authenticator()
    # The old password, perhaps the one that leaked, is being used right now...
    in_flight = authenticator.prepare(AuthRequest("taro", PASSWORD))
    assert in_flight.new_hash is not None
    # ... while the administrator sets a new one.
    stronger.admin().set_password("taro", "a new password 42")
    authenticator.commit([in_flight])
    assert login(stronger, "taro", PASSWORD).reason is Reason.BAD_PASSWORD
    assert login(stronger, "taro", "a new password 42").result is Result.ACCEPT


# SQLite settings and schema


def test_sqlite_runs_in_wal_mode_with_full_sync(app: App) -> None:
    with app.store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_an_empty_database_is_refused(tmp_path: Path, clock: FrozenClock) -> None:
    from otpcore.app import build_app
    from otpcore.config import parse_settings
    from tests.conftest import settings_data

    settings = parse_settings(
        settings_data(database={"url": "sqlite:///empty.db"}),
        tmp_path / "config.toml",
        Path.read_bytes,
    )
    create_key(settings.key_file)
    with pytest.raises(StorageError, match="otpctl init"):
        build_app(settings, clock)


def test_the_wal_stays_bounded_while_commits_never_pause(app: App, clock: FrozenClock) -> None:
    """A writer that never pauses keeps a passive checkpoint behind; the WAL must not grow."""
    app.hot.wal_restart_pages = 64
    wal = Path(f"{db_path(app)}-wal")
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            app.hot.ping()
            time.sleep(0.002)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for number in range(3000):
            with app.hot.transaction() as writer:
                writer.audit(clock(), "test", "write", [f"u{number}"], "ok", "x" * 3000)
    finally:
        done.set()
        prober.join()
    page = 4096
    # 64 pages allowed, plus what the writer adds between two probes.
    assert wal.stat().st_size < 1000 * page


def test_listings_and_the_audit_need_no_write_lock(app: App, clock: FrozenClock) -> None:
    # An import (or a running daemon's commit) holds SQLite's write lock: `otpctl user list`
    # and the rest waited behind it for up to a minute, then failed; and a listing of a
    # million users, holding the lock itself, held up every login's commit as long.
    import_token(app)
    add_user(app, "taro")
    activated(app, clock, "taro")
    admin = app.admin()
    reads: dict[str, object] = {}

    def read_everything() -> None:
        reads["users"] = admin.users()
        reads["user"] = admin.user("taro")
        reads["tokens"] = admin.tokens()
        reads["expiring"] = admin.tokens(expiring_within_days=30)
        reads["audit"] = admin.audit()

    with closing(sqlite3.connect(db_path(app), isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE users SET name = 'Taro T.' WHERE login = 'taro'")
        reader = threading.Thread(target=read_everything)
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "a listing waited for the write lock"
        # While it is still held, the listings saw the last committed state.
        assert [view.name for view in reads["users"]] == ["Taro"]  # type: ignore[attr-defined]
        # And a long listing does not hold up a commit: read and write at once.
        with app.store.reading() as repo:
            assert repo.users()
            writer.execute("COMMIT")
    assert admin.user("taro").name == "Taro T."


def test_postgresql_transactions_read_committed_whatever_the_servers_default() -> None:
    """A DBA's repeatable read default would let an import miss what the lock's holder wrote."""
    base = os.environ.get(PG_URL_ENV)
    require_service(f"postgresql ({PG_URL_ENV})", bool(base))
    assert base is not None
    url = scratch_database(base)
    name = make_url(url).database
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            default = "SET default_transaction_isolation = 'repeatable read'"
            connection.execute(text(f'ALTER DATABASE "{name}" {default}'))
        admin.dispose()
        for engine in (make_engine(url), make_engine(url, unpooled=True)):
            with engine.connect() as connection:
                assert connection.scalar(text("SHOW transaction_isolation")) == "read committed"
            raw = engine.raw_connection()  # as the authentication path takes its connection
            try:
                cursor = raw.cursor()
                cursor.execute("SHOW transaction_isolation")
                assert cursor.fetchone() == ("read committed",)
            finally:
                raw.close()
            engine.dispose()
    finally:
        drop_database(base, url)
