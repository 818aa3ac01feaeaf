"""``otpctl db backup``: a consistent copy taken while the server answers, and README's restore."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from radiusd.wire import Codes
from tests.integration.cli_support import ok, otpctl_runner, write_config
from tests.integration.daemon import Site

# This checkout's otpctl in a process of its own (the one on PATH may be another's).
OTPCTL = [sys.executable, "-c", "from cli.main import main; main()"]


def test_a_backup_taken_while_serving_restores_every_committed_change(tmp_path: Path) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    copy = tmp_path / "backups" / "otpradius-copy.db"
    copy.parent.mkdir(mode=0o700)
    with Site.sqlite(live) as site:
        alice, bob = site.active_user(), site.active_user()
        otpctl = otpctl_runner(write_config(live))
        # Their rows into the database file before the server starts: its own checkpoint,
        # once a second, may not have come before the snapshot on a busy machine.
        with closing(sqlite3.connect(live / "otpradius.db")) as connection:
            (busy, _, _) = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        with site.node(mode="split") as node, node.client() as nas, _snapshot(live) as reader:
            used = alice.bound.code()
            accepted = nas.auth(alice.login, alice.password + used)
            assert accepted is not None
            assert accepted.code is Codes.ACCESS_ACCEPT
            ok(otpctl("token", "disable", bob.bound.serial))  # a lost token, say
            # The reader's older snapshot keeps the daemon's checkpoint from copying these
            # changes into the database file: they are in the write-ahead log only, which a
            # copy of the file alone would miss.
            assert not _disabled_in_file_alone(live / "otpradius.db", bob.bound.serial)
            printed = ok(otpctl("db", "backup", str(copy))).output
            assert nas.status() is not None  # still answering
            reader.rollback()
        key_id = hashlib.sha256((live / "otpradius.key").read_bytes()).hexdigest()[:16]
        assert f"to {copy} (" in printed
        assert printed.endswith(
            f" mode 0600); its seeds are sealed under key {key_id} ({live / 'otpradius.key'}); "
            "keep that key file apart from it.\n"
        )
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # nothing partial
        (event,) = [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]
        assert event.outcome == "ok"
        assert event.actor.startswith("otpctl:")
        assert event.detail.startswith(f"{copy} (")
        assert event.detail.endswith(f"keys {key_id})")

    # README's restore: the copy becomes the database of a stopped server, beside its key file.
    restored.mkdir()
    shutil.copyfile(copy, restored / "otpradius.db")
    (restored / "otpradius.db").chmod(0o600)  # README's install -m 0600
    shutil.copy2(live / "otpradius.key", restored / "otpradius.key")
    with Site.sqlite(restored) as again, again.node(mode="split") as node, node.client() as nas:
        replayed = nas.auth(alice.login, alice.password + used)
        assert replayed is not None
        assert replayed.code is Codes.ACCESS_REJECT
        blocked = nas.auth(bob.login, bob.password + bob.bound.code())
        assert blocked is not None
        assert blocked.code is Codes.ACCESS_REJECT
        later = nas.auth(alice.login, alice.password + alice.bound.code(steps=1))
        assert later is not None
        assert later.code is Codes.ACCESS_ACCEPT  # the seeds still open
        reasons = [(d["user"], d["reason"]) for d in node.decisions()]
    assert reasons == [(alice.login, "replay"), (bob.login, "token_disabled"), (alice.login, "ok")]


@contextmanager
def _snapshot(folder: Path) -> Iterator[sqlite3.Connection]:
    """A read transaction on the site's database, begun now and held until rolled back."""
    connection = sqlite3.connect(folder / "otpradius.db", isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM tokens").fetchall()
        yield connection
    finally:
        connection.close()


def _disabled_in_file_alone(database: Path, serial: str) -> bool:
    """Whether a copy of the database file without its -wal would show ``serial`` disabled."""
    alone = database.with_name("file-alone.db")
    shutil.copyfile(database, alone)
    try:
        with closing(sqlite3.connect(f"file:{alone}?mode=ro&immutable=1", uri=True)) as copy:
            (row,) = copy.execute("SELECT disabled FROM tokens WHERE serial = ?", (serial,))
            return bool(row[0])
    finally:
        alone.unlink()


def test_a_backup_never_replaces_a_file_and_leaves_none_when_it_fails(tmp_path: Path) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path / "site"))
        existing = tmp_path / "existing.db"
        existing.write_bytes(b"yesterday's backup")
        refused = otpctl("db", "backup", str(existing))
        assert refused.exit_code == 4
        assert refused.stderr == (
            f"otpctl: error: {existing}: already exists; a backup never replaces a file\n"
        )
        assert existing.read_bytes() == b"yesterday's backup"

        missing = tmp_path / "no-such-folder" / "copy.db"
        failed = otpctl("db", "backup", str(missing))
        assert failed.exit_code == 74
        assert failed.stderr.count("\n") == 1
        assert failed.stderr.startswith(f"otpctl: error: {missing}: cannot create: ")
        assert not missing.parent.exists()
        assert not [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]


def test_names_kept_beside_the_database_are_refused(tmp_path: Path) -> None:
    with Site.sqlite(tmp_path) as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path))
        before = sorted(p.name for p in tmp_path.iterdir())
        names = (
            "otpradius.db-journal",
            "otpradius.db-wal",
            "otpradius.db-shm",
            "otpradius.db-writer",
        )
        for name in names:
            refused = otpctl("db", "backup", str(tmp_path / name))
            assert refused.exit_code == 2
            assert refused.stderr == (
                f"otpctl: error: {tmp_path / name}: a name the database keeps beside it; "
                "give the copy another name\n"
            )
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        ok(otpctl("user", "list"))  # the live database is untouched and opens at once


def test_a_name_is_a_file_name_never_a_uri_nor_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path / "site"))
        monkeypatch.chdir(tmp_path)
        # SQLite would read "file:v.db" as a URI and write v.db with the umask's mode.
        ok(otpctl("db", "backup", "file:v.db"))
        assert stat.S_IMODE((tmp_path / "file:v.db").stat().st_mode) == 0o600
        assert (tmp_path / "file:v.db").stat().st_size > 0
        assert not (tmp_path / "v.db").exists()
        slash = otpctl("db", "backup", "new.db/")
        assert slash.exit_code == 2
        assert slash.stderr == "otpctl: error: new.db/: names a folder; give the copy's file name\n"
        assert not (tmp_path / "new.db").exists()


def test_a_folder_others_may_write_in_is_refused_unless_sticky(tmp_path: Path) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path / "site"))
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o775)  # a group may write: it could swap a file of ours for its own
        refused = otpctl("db", "backup", str(shared / "copy.db"))
        assert refused.exit_code == 2
        assert refused.stderr == (
            f"otpctl: error: {shared}: others may write in this folder; keep backups in one "
            "only the service's account can write\n"
        )
        assert list(shared.iterdir()) == []
        shared.chmod(0o1777)  # as /tmp: nobody may rename or remove another's files
        ok(otpctl("db", "backup", str(shared / "copy.db")))
        assert stat.S_IMODE((shared / "copy.db").stat().st_mode) == 0o600


def test_a_folder_of_another_account_and_a_symlinked_database_folder_are_refused(
    tmp_path: Path,
) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path / "site"))
        # The database's own folder reached through a symlink: still SQLite's names there.
        (tmp_path / "link").symlink_to(tmp_path / "site")
        journal = tmp_path / "link" / "otpradius.db-journal"
        refused = otpctl("db", "backup", str(journal))
        assert refused.exit_code == 2
        assert "a name the database keeps beside it" in refused.stderr
        assert not (tmp_path / "site" / "otpradius.db-journal").exists()
        newline = otpctl("db", "backup", str(tmp_path / "a\nb.db"))
        assert newline.exit_code == 2
        assert newline.stderr.count("\n") == 1
        assert "control characters" in newline.stderr
        if os.geteuid() != 0:
            return  # only root can hand a folder to another account here
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, 65534, 65534)  # nobody: could rename our files in it
        refused = otpctl("db", "backup", str(theirs / "copy.db"))
        assert refused.exit_code == 2
        assert f"{theirs}: owned by another account" in refused.stderr
        assert list(theirs.iterdir()) == []


def test_a_stop_after_the_copy_is_published_never_misreports_it(tmp_path: Path) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        config = write_config(tmp_path / "site")
        copy = tmp_path / "copy.db"
        # The audit event waits for the write lock this holds; the stop comes meanwhile.
        holder = sqlite3.connect(tmp_path / "site" / "otpradius.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            running = subprocess.Popen(
                [*OTPCTL, "--config", str(config), "db", "backup", str(copy)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not copy.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            running.send_signal(signal.SIGTERM)
            time.sleep(0.3)
        finally:
            holder.rollback()
            holder.close()
        _, stderr = running.communicate(timeout=30)
        recorded = [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]
        # Published is published: the copy stays whole, and what is said of its audit is true.
        if running.returncode == 0:
            assert len(recorded) == 1
        else:
            assert running.returncode == 74, stderr
            assert stderr == (
                f"otpctl: error: {copy}: written, but not recorded in the audit: interrupted\n"
            )
            assert recorded == []
        with closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as written:
            assert written.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("when", ["before", "after", "after, twice"])
def test_a_stop_at_the_link_says_whether_the_copy_has_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        site.active_user()
        otpctl = otpctl_runner(write_config(tmp_path / "site"))
        copy = tmp_path / "copy.db"
        link, look = os.link, os.stat
        linked: list[str] = []

        def stop() -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # a timeout or systemd, at this very moment

        def link_and_stop(source: str, name: str, **folders: Any) -> None:
            if name != copy.name:
                link(source, name, **folders)
                return
            if when == "before":
                stop()
            link(source, name, **folders)
            linked.append(name)
            stop()

        def look_and_stop(path: Any, **options: Any) -> os.stat_result:
            if when == "after, twice" and path == copy and linked:
                stop()  # a second stop, while the first one's outcome is being told
            return look(path, **options)

        monkeypatch.setattr(os, "link", link_and_stop)
        monkeypatch.setattr(os, "stat", look_and_stop)
        result = otpctl("db", "backup", str(copy))
        monkeypatch.undo()
        if when == "before":
            assert result.exit_code == 130, result.output
            assert result.stderr == f"otpctl: error: {copy}: interrupted; no copy written\n"
            assert not copy.exists()
        else:  # it was written: saying there is no copy would have it deleted, or forgotten
            assert result.exit_code == 74, result.output
            assert result.stderr == (
                f"otpctl: error: {copy}: written, but not recorded in the audit: interrupted\n"
            )
            with closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as written:
                assert written.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
        assert not [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]


def test_a_copy_that_fails_half_way_leaves_no_file(tmp_path: Path) -> None:
    with Site.sqlite(tmp_path / "site") as site:
        for _ in range(200):
            site.add_user()
        config = write_config(tmp_path / "site")
        out = tmp_path / "backups"
        out.mkdir(mode=0o700)
        limit = 40 * 1024  # above the database's 32 KiB -shm, below the copy
        whole = tmp_path / "whole.db"
        ok(otpctl_runner(config)("db", "backup", str(whole)))
        assert whole.stat().st_size > 2 * limit

        def small_files() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        done = subprocess.run(
            [*OTPCTL, "--config", str(config), "db", "backup", str(out / "copy.db")],
            capture_output=True, text=True, preexec_fn=small_files, check=False,
        )  # fmt: skip
        assert done.returncode == 74, done.stderr
        assert done.stderr.startswith(f"otpctl: error: {out / 'copy.db'}: ")
        assert done.stderr.count("\n") == 1
        assert list(out.iterdir()) == []
        assert len([e for e in site.app.admin("tests").audit() if e.action == "db_backup"]) == 1


def test_a_backup_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    otpctl = otpctl_runner(write_config(tmp_path))
    result = otpctl("db", "backup", str(tmp_path / "copy.db"))
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "otpradius.db").exists()
    assert not (tmp_path / "copy.db").exists()


def test_postgresql_is_sent_to_its_own_tools(pg_site: Site, tmp_path: Path) -> None:
    config = write_config(tmp_path, f'\n[database]\nurl = "{pg_site.database_url}"\n')
    result = otpctl_runner(config)("db", "backup", str(tmp_path / "copy.db"))
    assert result.exit_code == 2
    assert result.stderr == (
        "otpctl: error: otpctl db backup copies an SQLite database; "
        "back up PostgreSQL with pg_dump\n"
    )
    assert not (tmp_path / "copy.db").exists()


def test_a_database_that_does_not_open_is_one_line_and_status_74(tmp_path: Path) -> None:
    # A file that is no database (overwritten, the wrong file restored), or one a read-only
    # mount keeps SQLite from opening in WAL mode: the copy's first connection fails, which
    # escaped as "unexpected DatabaseError (a bug …)", status 1.
    otpctl = otpctl_runner(write_config(tmp_path))
    ok(otpctl("init"))
    database = tmp_path / "otpradius.db"
    for beside in tmp_path.glob("otpradius.db-*"):
        beside.unlink()
    database.write_bytes(b"not an SQLite database, only text " * 200)
    out = tmp_path / "backups"
    out.mkdir(mode=0o700)
    result = otpctl("db", "backup", str(out / "copy.db"))
    assert result.exit_code == 74, result.output
    assert result.stderr == (
        f"otpctl: error: sqlite:///{database}: cannot open the database: "
        "DatabaseError: file is not a database; no copy made\n"
    )
    assert list(out.iterdir()) == []
