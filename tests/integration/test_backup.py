"""``otpctl db backup``: a consistent copy taken while the server answers, and README's restore."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from radiusd.packets import Codes
from tests.integration.cli_support import ok, otpctl_runner, write_config
from tests.integration.daemon import Site


def test_a_backup_taken_while_serving_restores_every_committed_change(tmp_path: Path) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    copy = tmp_path / "backups" / "otpradius-copy.db"
    copy.parent.mkdir()
    with Site.sqlite(live) as site:
        alice, bob = site.active_user(), site.active_user()
        otpctl = otpctl_runner(write_config(live))
        with site.node(mode="split") as node, node.client() as nas:
            used = alice.bound.code()
            accepted = nas.auth(alice.login, alice.password + used)
            assert accepted is not None
            assert accepted.code is Codes.ACCESS_ACCEPT
            ok(otpctl("token", "disable", bob.bound.serial))  # a lost token, say
            # Taken with the server still up: the used step and the disabled token may be in
            # the write-ahead log only, which a copy of the database file would miss.
            printed = ok(otpctl("db", "backup", str(copy))).output
            assert nas.status() is not None  # still answering
        assert f"to {copy} (" in printed
        assert "mode 0600" in printed
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        (event,) = [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]
        assert event.outcome == "ok"
        assert event.actor.startswith("otpctl:")
        assert str(copy) in event.detail

    # README's restore: the copy becomes the database of a stopped server, beside its key file.
    restored.mkdir()
    shutil.copyfile(copy, restored / "otpradius.db")
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
        assert later.code is Codes.ACCESS_ACCEPT
        reasons = [(d["user"], d["reason"]) for d in node.decisions()]
    assert reasons == [(alice.login, "replay"), (bob.login, "token_disabled"), (alice.login, "ok")]


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
        assert str(missing) in failed.stderr
        assert not missing.parent.exists()
        assert not [e for e in site.app.admin("tests").audit() if e.action == "db_backup"]


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
