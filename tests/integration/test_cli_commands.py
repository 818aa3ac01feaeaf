"""otpctl command by command, through click's CliRunner on a real SQLite file and key file.

State is built only through otpctl. TOTP codes are computed with pyotp (independent of
otpcore's own TOTP) for the wall clock, which is the clock otpctl reads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from cli import decision_log
from cli import users as cli_users
from cli.context import operator
from cli.main import cli
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import head_revision, upgrade
from tests.integration.cli_support import (
    Codes,
    Otpctl,
    as_json,
    config_text,
    failed,
    ok,
    otpctl_program,
    otpctl_runner,
    run_on_terminal,
    today,
    write_config,
)

PERIOD = 30
SECRETS = {
    "12345678": bytes(range(1, 21)),
    "23456789": bytes(range(21, 41)),
    "98765432": bytes(range(41, 61)),
}
PASSWORDS = {"hanskodt": "hanako-pw-1", "chirodt": "ichiro-pw-1", "jirodt": "jiro-pw-1"}
CONFIRMATIONS = {"hanskodt": "hanako-conf-1", "saburodt": "saburo-conf-1"}
USER_KEYS = {"login", "name", "class", "serial", "state", "suspended", "token_expires"}
TOKEN_KEYS = {
    "serial", "kind", "algorithm", "digits", "period", "expires", "users",
    "suspended", "disabled", "fail_count",
}  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration file in tmp_path; the database and key file go beside it."""
    return write_config(tmp_path)


@pytest.fixture
def otpctl(config: Path) -> Otpctl:
    """Run otpctl with ``--config`` and English labels unless the test says otherwise."""
    return otpctl_runner(config)


@pytest.fixture
def ready(otpctl: Otpctl) -> Otpctl:
    """otpctl after ``otpctl init``."""
    assert otpctl("init").exit_code == 0
    return otpctl


def add_users(otpctl: Otpctl) -> None:
    """The manual's users: an admin, two general users and a master user."""
    ok(
        otpctl(
            "user", "add", "hanskodt", "--name", "データ花子", "--class", "admin",
            "--password-stdin", input=f"{PASSWORDS['hanskodt']}\n{CONFIRMATIONS['hanskodt']}\n",
        )
    )  # fmt: skip
    for login, name in (("chirodt", "データ一郎"), ("jirodt", "データ二郎")):
        ok(
            otpctl(
                "user", "add", login, "--name", name, "--class", "general",
                "--password-stdin", input=f"{PASSWORDS[login]}\n",
            )
        )  # fmt: skip
    ok(
        otpctl(
            "user", "add", "saburodt", "--name", "データ三郎", "--class", "master",
            "--password-stdin", input=f"saburo-pw-1\n{CONFIRMATIONS['saburodt']}\n",
        )
    )  # fmt: skip


def write_tokens(folder: Path, rows: dict[str, str] | None = None) -> Path:
    """A token CSV of SECRETS (period 30), with optional expiry per serial."""
    rows = rows or {}
    lines = ["serial,secret,period,expires"]
    lines += [f"{s},{secret.hex()},{PERIOD},{rows.get(s, '')}" for s, secret in SECRETS.items()]
    path = folder / "tokens.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def codes() -> Codes:
    """Fresh codes for the tokens of SECRETS."""
    return Codes(SECRETS)


@pytest.fixture
def bound(ready: Otpctl, config: Path, codes: Codes) -> Otpctl:
    """Users added, tokens imported; hanskodt and jirodt share 12345678, chirodt has 23456789."""
    add_users(ready)
    ok(ready("token", "import", str(write_tokens(config.parent, {"12345678": "2030-09-30"}))))
    for login, serial in (
        ("hanskodt", "12345678"),
        ("jirodt", "12345678"),
        ("chirodt", "23456789"),
    ):
        ok(ready("user", "issue", login, "--start", today()))
        code = codes.fresh(serial)
        ok(ready("activate", login, serial, "--password-stdin", input=f"{code}\n"))
    return ready


def check(otpctl: Otpctl, login: str, *answers: str, json_out: bool = True) -> Result:
    """``otpctl check LOGIN --password-stdin`` fed the password and then the answers."""
    args = ["check", login, "--password-stdin", *(["--json"] if json_out else [])]
    return otpctl(*args, input="".join(f"{a}\n" for a in (PASSWORDS[login], *answers)))


def users_by_login(otpctl: Otpctl) -> dict[str, dict[str, Any]]:
    """``user list --json`` keyed by login."""
    return {row["login"]: row for row in as_json(otpctl("user", "list", "--json"))}


def suspend_shared_token(otpctl: Otpctl, codes: Codes) -> None:
    """Five wrong OTPs from jirodt suspend 12345678."""
    for attempt in range(1, 6):
        result = check(otpctl, "jirodt", codes.wrong("12345678"))
        assert json.loads(result.stdout) == {"result": "reject", "reason": "bad_otp"}
        # One line on stderr (SPEC §5), which names the suspension the fifth one made.
        line = failed(result, 1)
        suspended = "; token suspended serial=12345678 users=hanskodt,jirodt"
        assert line.endswith(suspended) is (attempt == 5), line


# init, db upgrade, configuration


def test_init_creates_the_key_and_schema_and_never_overwrites(otpctl: Otpctl, config: Path) -> None:
    first = ok(otpctl("init")).stdout
    kid = hashlib.sha256((config.parent / "otpradius.key").read_bytes()).hexdigest()[:16]
    # The id README's backup steps label the key's copy with, as key rotate and db backup say.
    assert f"Created key file {config.parent / 'otpradius.key'} (mode 0600), key id {kid}." in first
    assert "Created the database schema" in first
    key = config.parent / "otpradius.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # The database holds password hashes and sealed seeds: the owner's alone, whatever umask.
    assert stat.S_IMODE((config.parent / "otpradius.db").stat().st_mode) == 0o600
    before = key.read_bytes()

    second = ok(otpctl("init")).stdout
    assert "already exists: left as it is" in second
    assert "already has the schema" in second
    assert key.read_bytes() == before


def test_a_key_file_otpctl_cannot_read_or_create_is_one_line_with_status_78(
    ready: Otpctl, config: Path
) -> None:
    key = config.parent / "otpradius.key"
    key.unlink()
    key.mkdir(mode=0o700)  # stat says 0700: the read itself fails
    line = f"otpctl: error: {key}: cannot read the key file: {os.strerror(errno.EISDIR)}"
    for command in (("init",), ("user", "list"), ("key", "rotate", "--prepare"), ("key", "rotate")):
        assert failed(ready(*command), 78) == line, command
    # A folder that is not there: init says it cannot create the key, and why.
    moved = config.parent / "gone" / "otpradius.key"
    config.write_text(config.read_text() + '\n[secrets]\nkey_file = "gone/otpradius.key"\n')
    line = f"otpctl: error: {moved}: cannot create the key file: {os.strerror(errno.ENOENT)}"
    assert failed(ready("init"), 78) == line


def test_a_key_file_naming_an_open_folder_is_not_told_to_be_chmodded(
    ready: Otpctl, config: Path
) -> None:
    # key_file = "/var/lib/otpradius", the file's name forgotten: the folder's 0755 read as a
    # key file open to others, and the advice was to chmod 600 the service's folder.
    folder = config.parent / "keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    config.write_text(config.read_text() + '\n[secrets]\nkey_file = "keys"\n')
    line = f"otpctl: error: {folder}: cannot read the key file: {os.strerror(errno.EISDIR)}"
    for command in (("init",), ("user", "list"), ("key", "rotate")):
        assert failed(ready(*command), 78) == line, command
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_init_makes_no_key_in_a_folder_others_may_write_in(otpctl: Otpctl, config: Path) -> None:
    folder = config.parent / "keys"
    folder.mkdir(mode=0o700)
    folder.chmod(0o1777)  # the sticky bit keeps nobody from planting keys.key.new
    config.write_text(config.read_text() + '\n[secrets]\nkey_file = "keys/keys.key"\n')
    assert failed(otpctl("init"), 78) == (
        f"otpctl: error: {folder}: others may write in the key file's folder and replace "
        "keys.key or plant keys.key.new; chmod o-w it"
    )
    assert list(folder.iterdir()) == []
    folder.chmod(0o700)
    assert "Created key file" in ok(otpctl("init")).stdout
    folder.chmod(0o777)
    assert failed(otpctl("user", "list"), 78).endswith("chmod o-w it")


def test_init_never_makes_a_new_key_for_a_database_that_holds_seeds(
    otpctl: Otpctl, config: Path
) -> None:
    ok(otpctl("init"))
    ok(otpctl("token", "enroll-soft", "--serial", "S1"))
    key = config.parent / "otpradius.key"
    wanted = hashlib.sha256(key.read_bytes()).hexdigest()[:16]  # the id key backups carry
    key.rename(config.parent / "elsewhere.key")  # a database restored without its key file
    asked_back = (
        f"otpctl: error: {key}: key file not found, but the database holds 1 seed(s) sealed "
        f"under key {wanted}: restore the key file with that id (a new key would open none "
        "of them)"
    )
    assert failed(otpctl("init"), 78) == asked_back
    # Every other command says the same, rather than send the operator to init.
    assert failed(otpctl("user", "list"), 78) == asked_back
    assert not key.exists()
    (config.parent / "elsewhere.key").rename(key)
    assert "already exists: left as it is" in ok(otpctl("init")).stdout
    ok(otpctl("token", "list"))


def test_init_through_a_dangling_symlink_creates_the_database_owner_only(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    link = tmp_path / "otpradius.db"
    link.symlink_to(volume / "otpradius.db")  # the database kept on a data volume, not yet made
    otpctl = otpctl_runner(write_config(tmp_path, f'\n[database]\nurl = "sqlite:///{link}"\n'))
    previous = os.umask(0o022)
    try:
        ok(otpctl("init"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((volume / "otpradius.db").stat().st_mode) == 0o600
    assert link.is_symlink()
    ok(otpctl("user", "list"))


def test_db_upgrade_creates_or_keeps_the_schema(otpctl: Otpctl, config: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert "from empty to revision" in ok(otpctl("db", "upgrade")).stdout
    finally:
        os.umask(previous)
    # Owner-only, as init makes it: it will hold password hashes and sealed seeds.
    assert stat.S_IMODE((config.parent / "otpradius.db").stat().st_mode) == 0o600
    assert "already at revision" in ok(otpctl("db", "upgrade")).stdout
    # The change of schema is audited, under the account that ran it; leaving it is not (nor
    # is init's, which finds the schema made: it is run here for the key the audit needs).
    ok(otpctl("init"))
    events = as_json(otpctl("audit", "--json"))
    assert [(e["action"], e["outcome"], e["detail"]) for e in events] == [
        ("db_upgrade", "ok", f"from empty to {head_revision()}")
    ]
    assert events[0]["actor"].startswith("otpctl:")


def database_at(otpctl: Otpctl, config: Path, revision: str) -> tuple[Path, Engine]:
    """A fresh database left at an older schema revision, and an engine on it."""
    ok(otpctl("init"))
    database = config.parent / "otpradius.db"
    database.unlink()
    create_private_sqlite_file(f"sqlite:///{database}")
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine, revision)
    return database, engine


def test_a_database_of_the_previous_revision_is_refused_until_upgraded(
    otpctl: Otpctl, config: Path
) -> None:
    database, engine = database_at(otpctl, config, "0001")
    with engine.begin() as connection:
        pending = text(
            "INSERT INTO challenges (id, login, stage, serial, expires_at) "
            "VALUES (:id, 'taro', 'otp', NULL, '2030-01-01 00:00:00')"
        )
        connection.execute(pending, {"id": b"c" * 20})
    engine.dispose()
    message = failed(otpctl("user", "list"), 74)
    assert "schema is at 0001" in message
    assert "otpctl db upgrade" in message
    upgraded = ok(otpctl("db", "upgrade")).stdout
    assert f"from 0001 to revision {head_revision()}" in upgraded
    ok(otpctl("user", "list"))
    upgrades = [e for e in as_json(otpctl("audit", "--json")) if e["action"] == "db_upgrade"]
    assert [e["detail"] for e in upgrades] == [f"from 0001 to {head_revision()}"]
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT login, used_by FROM challenges")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("taro", None)]


def test_a_database_a_later_release_upgraded_is_refused_naming_that(
    otpctl: Otpctl, config: Path
) -> None:
    # A node still on this release after another node ran a later release's `db upgrade`:
    # this release's `db upgrade` cannot help it, and must not be what the error advises.
    _, engine = database_at(otpctl, config, head_revision())
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for command in (("user", "list"), ("db", "upgrade")):
        message = failed(otpctl(*command), 74)
        assert "schema is at 9999, newer than this version" in message, command
        assert "otpctl db upgrade" not in message
        assert "CommandError" not in message
    said = ok(otpctl("init")).stdout
    assert "newer than this version" in said
    assert "otpctl db upgrade" not in said


def test_the_upgrade_forgets_offsets_that_logins_taught_and_keeps_declared_ones(
    otpctl: Otpctl, config: Path
) -> None:
    # Releases before 0003 learned an offset at every login; a login no longer resets it, so
    # one left at -2 would accept codes two steps old for good.
    database, engine = database_at(otpctl, config, "0002")
    row = ("INSERT INTO tokens (serial, kind, algorithm, digits, period, sealed_secret, last_step, "
           "drift, fail_count, suspended, disabled, created_at) VALUES (:serial, 'hardware', "
           "'SHA1', 6, 60, x'00', :last_step, :drift, 0, 0, 0, '2026-01-01 00:00:00')")  # fmt: skip
    with engine.begin() as connection:
        connection.execute(text(row), {"serial": "USED", "last_step": 29_000_000, "drift": -2})
        connection.execute(text(row), {"serial": "NEVER", "last_step": -1, "drift": 3})
    engine.dispose()
    ok(otpctl("db", "upgrade"))
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        drifts = dict(connection.execute(text("SELECT serial, drift FROM tokens")).all())
    engine.dispose()
    assert drifts == {"USED": 0, "NEVER": 3}


def test_init_and_db_upgrade_say_unavailable_when_postgresql_does_not_answer(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://otpradius:x@127.0.0.1:9/otpradius"  # nothing listens there
    otpctl = otpctl_runner(write_config(tmp_path, f'\n[database]\nurl = "{url}"\n'))
    # 69, as every other command says it (README): worth retrying, unlike a refused write.
    for command in (["user", "list"], ["init"], ["db", "upgrade"]):
        line = failed(otpctl(*command), 69)
        assert line.startswith(
            "otpctl: error: postgresql+psycopg://otpradius:***@127.0.0.1:9/otpradius: "
            "cannot connect: OperationalError: "
        ), line


def test_a_database_password_given_as_a_url_parameter_is_never_shown(tmp_path: Path) -> None:
    # libpq takes the password (and a client key's passphrase) in the URL's query as well as
    # before the host; either way it is a secret, in an error line as in a success line.
    url = (
        "postgresql+psycopg://otpradius@127.0.0.1:9/otpradius"
        "?password=Pg-Secret-4711&sslpassword=Key-Phrase-0815&connect_timeout=2"
    )
    otpctl = otpctl_runner(write_config(tmp_path, f'\n[database]\nurl = "{url}"\n'))
    for command in (["user", "list"], ["init"], ["db", "upgrade"]):
        result = otpctl(*command)
        line = failed(result, 69)
        assert "Pg-Secret-4711" not in result.output
        assert "Key-Phrase-0815" not in result.output
        assert line.startswith(
            "otpctl: error: postgresql+psycopg://otpradius@127.0.0.1:9/otpradius?"
        ), line
        assert "?password=***&sslpassword=***&connect_timeout=2:" in line, line


def test_a_command_before_init_says_to_run_init(otpctl: Otpctl) -> None:
    assert "otpctl init" in failed(otpctl("user", "list"), 74)


def test_a_missing_configuration_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = CliRunner().invoke(cli, ["--config", str(missing), "user", "list"])
    assert f"{missing}: configuration file not found" in failed(result, 78)


def test_a_configuration_others_may_change_is_refused(config: Path, otpctl: Otpctl) -> None:
    config.chmod(0o664)  # a group that may write it could point otpctl at another database
    assert failed(otpctl("init"), 78) == (
        f"otpctl: error: {config}: writable by group or others (mode 0664), who could add a "
        "client or swap the database; chmod 640 it"
    )
    assert not (config.parent / "otpradius.key").exists()
    config.chmod(0o640)
    ok(otpctl("init"))


def test_a_database_file_others_may_write_is_refused(config: Path, otpctl: Otpctl) -> None:
    ok(otpctl("init"))
    database = config.parent / "otpradius.db"
    database.chmod(0o666)  # anyone could rewrite a password hash or a binding
    assert failed(otpctl("user", "list"), 78) == (
        f"otpctl: error: {database}: writable by others (mode 0666), who could change any "
        "password, binding or counter; chmod 600 it"
    )


def test_the_configuration_comes_from_the_environment(config: Path) -> None:
    env = {"OTPRADIUS_CONFIG": str(config)}
    ok(CliRunner().invoke(cli, ["init"], env=env))
    assert as_json(CliRunner().invoke(cli, ["user", "list", "--json"], env=env)) == []


def test_a_toml_syntax_error_names_the_file_and_line(config: Path, otpctl: Otpctl) -> None:
    config.write_text('[policy]\notp_window = 1\nlockout_threshold = "5\n', encoding="utf-8")
    line = failed(otpctl("init"), 78)
    assert str(config) in line
    assert "line 3" in line


def test_an_unknown_key_is_named(config: Path, otpctl: Otpctl) -> None:
    config.write_text(config_text(lockout_treshold=5), encoding="utf-8")
    assert "[policy] lockout_treshold: unknown key" in failed(otpctl("init"), 78)


def test_the_example_configuration_is_valid(otpctl: Otpctl, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    copy = tmp_path / "example.toml"
    copy.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(copy), "init"])
    assert "Created the database schema" in ok(result).stdout


def test_help_needs_no_configuration() -> None:
    result = CliRunner().invoke(cli, ["--config", "/nonexistent.toml", "user", "--help"])
    assert "issue" in ok(result).stdout


# users


def test_user_add_list_and_show(ready: Otpctl) -> None:
    add_users(ready)
    rows = as_json(ready("user", "list", "--json"))
    assert [row["login"] for row in rows] == ["chirodt", "hanskodt", "jirodt", "saburodt"]
    assert all(set(row) == USER_KEYS for row in rows)
    classes = {row["login"]: row["class"] for row in rows}
    assert classes == {
        "hanskodt": "admin", "chirodt": "general", "jirodt": "general", "saburodt": "master",
    }  # fmt: skip
    assert as_json(ready("user", "show", "hanskodt", "--json")) == {
        "login": "hanskodt",
        "name": "データ花子",
        "class": "admin",
        "serial": None,
        "state": "unregistered",
        "suspended": False,
        "token_expires": None,
    }
    table = ok(ready("user", "list")).stdout
    assert table.splitlines()[0].split("  ")[0] == "Login ID"
    assert "unregistered" in table


def test_user_add_prompts_without_echo(ready: Otpctl) -> None:
    result = ok(
        ready(
            "user", "add", "hanskodt", "--name", "データ花子", "--class", "admin",
            input="typed-login-pw\ntyped-confirmation-pw\n",
        )
    )  # fmt: skip
    assert "New login password for hanskodt" in result.stderr  # prompts go to stderr
    assert "typed-login-pw" not in result.output
    assert "typed-confirmation-pw" not in result.output
    assert "Created user hanskodt" in result.stdout


def test_user_add_at_a_terminal_names_each_password_it_asks_again(
    ready: Otpctl, config: Path
) -> None:
    # Typed at a terminal, each new password is asked twice. The second prompt was a bare
    # "Repeat for confirmation", which after the login password an operator took for the
    # confirmation password (確認用パスワード) and typed that instead.
    prompts = [
        "New login password for kenjidt",
        "Repeat the new login password for kenjidt",
        "New confirmation password for kenjidt",
        "Repeat the new confirmation password for kenjidt",
    ]
    answers = ["login-pw-1", "login-pw-1", "confirm-pw-2", "confirm-pw-2"]
    status, shown = run_on_terminal(
        ["user", "add", "kenjidt", "--name", "Kenji", "--class", "admin"],
        config,
        answers=list(zip(prompts, answers, strict=True)),
    )
    assert status == 0, shown
    assert [line.rstrip(": ") for line in shown.splitlines() if "password" in line] == prompts
    assert "Created user kenjidt" in shown
    assert "login-pw-1" not in shown  # not echoed
    assert "confirm-pw-2" not in shown
    check = ready("check", "kenjidt", "--password-stdin", "--json", input="login-pw-1\n")
    assert json.loads(check.stdout)["result"] == "accept"


def test_password_stdin_needs_a_line_per_secret(ready: Otpctl) -> None:
    result = ready(
        "user", "add", "saburodt", "--name", "データ三郎", "--class", "master",
        "--password-stdin", input="only-the-login-password\n",
    )  # fmt: skip
    assert "standard input ended" in failed(result, 2)
    assert as_json(ready("user", "list", "--json")) == []


def test_user_add_refuses_a_duplicate_and_a_bad_login(ready: Otpctl) -> None:
    add_users(ready)
    args = ("--name", "x", "--class", "general", "--password-stdin")
    assert "already exists" in failed(ready("user", "add", "jirodt", *args, input="p\n"), 4)
    assert "space" in failed(ready("user", "add", "bad login", *args, input="p\n"), 2)
    wrong_class = failed(ready("user", "add", "x", "--name", "x", "--class", "root"), 2)
    assert "'--class'" in wrong_class
    assert "user add --help" in wrong_class


@pytest.mark.parametrize(("user_class", "article"), [("admin", "an"), ("master", "a")])
def test_user_add_refuses_an_administrator_without_a_confirmation_password(
    ready: Otpctl, user_class: str, article: str
) -> None:
    args = ("user", "add", "shiro", "--name", "Shiro", "--class", user_class, "--password-stdin")
    line = failed(ready(*args, input="shiro-pw-1\n\n"), 2)
    assert line == f"otpctl: error: {article} {user_class} user needs a confirmation password"


@pytest.mark.parametrize(
    ("password", "size"), [("p" * 121, 121), ("あ" * 41, 123)], ids=["ascii", "japanese"]
)
def test_a_login_password_radius_cannot_carry_is_refused(
    ready: Otpctl, config: Path, password: str, size: int
) -> None:
    # User-Password holds 128 bytes, and split mode puts up to 8 digits after the password:
    # a longer one was stored, and every login of the user failed as a wrong password.
    message = (
        f"password is {size} bytes in UTF-8; a login password may have at most 120: RADIUS "
        "carries 128 bytes of password and code together"
    )
    add = ("user", "add", "taro", "--name", "Taro", "--class", "general", "--password-stdin")
    assert failed(ready(*add, input=f"{password}\n"), 2) == f"otpctl: error: {message}"
    ok(ready(*add, input=f"{password[: 120 // len(password[0].encode())]}\n"))  # at the bound
    passwd = ("user", "passwd", "taro", "--password-stdin")
    assert failed(ready(*passwd, input=f"{password}\n"), 2) == f"otpctl: error: {message}"
    users = config.parent / "long.csv"
    users.write_text(f"login,name,class,password\njiro,Jiro,general,{password}\n", "utf-8")
    assert failed(ready("user", "import", str(users)), 2) == f"otpctl: error: {users}:2: {message}"
    # A confirmation password never travels over RADIUS: any length.
    admin = ("user", "add", "shiro", "--name", "Shiro", "--class", "admin", "--password-stdin")
    ok(ready(*admin, input=f"shiro-pw-1\n{password}\n"))


@pytest.mark.parametrize("name", ["", "   ", "Taro\nadmin-by-name", "Taro\tYamada"])
def test_user_add_refuses_a_name_user_import_refuses(ready: Otpctl, name: str) -> None:
    result = ready("user", "add", "taro", "--name", name, "--class", "general",
                   "--password-stdin", input="taro-pw-1\n")  # fmt: skip
    assert "name must be 1 to 256 printable characters" in failed(result, 2)
    assert as_json(ready("user", "list", "--json")) == []


def test_user_add_keeps_a_name_without_its_surrounding_spaces(ready: Otpctl) -> None:
    ok(ready("user", "add", "taro", "--name", "  Taro Yamada ", "--class", "general",
             "--password-stdin", input="taro-pw-1\n"))  # fmt: skip
    assert [u["name"] for u in as_json(ready("user", "list", "--json"))] == ["Taro Yamada"]


def test_japanese_labels_follow_the_manual(ready: Otpctl) -> None:
    add_users(ready)
    ok(ready("user", "issue", "chirodt", "--start", today()))
    table = ok(ready("user", "list", "--lang", "ja")).stdout
    for label in (
        "ログインID", "利用者名", "利用者区分", "シリアル番号", "ワンタイムパスワード状態",
        "ワンタイムパスワード認証状態", "トークン有効期限", "管理者ユーザ", "一般ユーザ",
        "マスターユーザ", "未登録", "トークン発行済み", "利用可能", "データ花子",
    ):  # fmt: skip
        assert label in table
    by_lang = ok(ready("user", "list", env={"LANG": "ja_JP.UTF-8"})).stdout
    assert by_lang == table
    english = ready("user", "list", "--lang", "en", env={"LANG": "ja_JP.UTF-8"})
    assert "Login ID" in ok(english).stdout


def test_user_issue_sets_the_start_date(ready: Otpctl) -> None:
    add_users(ready)
    issued = as_json(ready("user", "issue", "jirodt", "--start", "2027-04-01", "--json"))
    assert issued["state"] == "issued"
    assert "2027年04月01日" in ok(ready("user", "show", "jirodt", "--lang", "ja")).stdout
    failed(ready("user", "issue", "nobody", "--start", "2027-04-01"), 3)
    assert ready("user", "issue", "jirodt", "--start", "01/04/2027").exit_code == 2


def test_before_the_start_date_the_password_alone_logs_in(ready: Otpctl) -> None:
    add_users(ready)
    later = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    ok(ready("user", "issue", "jirodt", "--start", later))
    assert as_json(check(ready, "jirodt")) == {"result": "accept", "reason": "password_only"}


def test_user_passwd_sets_the_login_and_confirmation_passwords(ready: Otpctl) -> None:
    add_users(ready)
    ok(ready("user", "passwd", "jirodt", "--password-stdin", input="new-jiro-pw\n"))
    result = ready("check", "jirodt", "--password-stdin", "--json", input="new-jiro-pw\n")
    assert as_json(result) == {"result": "accept", "reason": "password_only"}
    old = ready("check", "jirodt", "--password-stdin", "--json", input=f"{PASSWORDS['jirodt']}\n")
    assert json.loads(old.stdout) == {"result": "reject", "reason": "bad_password"}

    refused = ready("user", "passwd", "jirodt", "--confirmation", "--password-stdin", input="c\n")
    assert "no confirmation password" in failed(refused, 6)
    done = ready(
        "user", "passwd", "hanskodt", "--confirmation", "--password-stdin", "--lang", "ja",
        input="new-hanako-conf\n",
    )  # fmt: skip
    assert "確認用パスワードを設定しました" in ok(done).stdout
    unlock = ready(
        "unlock", "--admin", "hanskodt", "jirodt", "--password-stdin", input="new-hanako-conf\n"
    )
    ok(unlock)


def test_user_passwd_json_prints_the_user_as_it_stands(bound: Otpctl, codes: Codes) -> None:
    # A new password lifts no suspension: a script setting one for a locked-out customer sees
    # at once that an unlock is still needed.
    suspend_shared_token(bound, codes)
    result = bound("user", "passwd", "jirodt", "--password-stdin", "--json", input="new-pw-1\n")
    printed = as_json(result)
    assert printed == as_json(bound("user", "show", "jirodt", "--json"))
    assert (printed["login"], printed["state"], printed["suspended"]) == ("jirodt", "active", True)
    assert "new-pw-1" not in result.output
    confirmation = bound("user", "passwd", "hanskodt", "--confirmation", "--password-stdin",
                         "--json", input="new-conf-1\n")  # fmt: skip
    assert as_json(confirmation)["login"] == "hanskodt"


def test_user_passwd_refuses_a_confirmation_password_equal_to_the_login_password(
    ready: Otpctl,
) -> None:
    # user add refused it, user passwd did not: whoever learnt hanskodt's login password,
    # typed at every portal login, could then approve unlocks and revokes as hanskodt.
    add_users(ready)
    same = ready("user", "passwd", "hanskodt", "--confirmation", "--password-stdin",
                 input=f"{PASSWORDS['hanskodt']}\n")  # fmt: skip
    assert failed(same, 2).endswith("the confirmation password must differ from the login password")
    back = ready("user", "passwd", "hanskodt", "--password-stdin",
                 input=f"{CONFIRMATIONS['hanskodt']}\n")  # fmt: skip
    assert failed(back, 2).endswith("the login password must differ from the confirmation password")
    denied = ready("unlock", "--admin", "hanskodt", "jirodt", "--password-stdin",
                   input=f"{PASSWORDS['hanskodt']}\n")  # fmt: skip
    assert "wrong confirmation password" in failed(denied, 5)
    passwd = [e for e in as_json(ready("audit", "--json")) if e["action"] == "passwd"]
    assert passwd == []
    # Different ones are still set, each checked against the other as it now stands.
    ok(ready("user", "passwd", "hanskodt", "--password-stdin", input="hanako-pw-2\n"))
    ok(ready("user", "passwd", "hanskodt", "--confirmation", "--password-stdin",
             input=f"{PASSWORDS['hanskodt']}\n"))  # fmt: skip


# tokens


def test_token_import_and_list(ready: Otpctl, config: Path) -> None:
    csv_file = write_tokens(config.parent, {"98765432": "2020-01-01"})
    assert "Imported 3 token(s)" in ok(ready("token", "import", str(csv_file))).stdout
    rows = as_json(ready("token", "list", "--json"))
    assert [row["serial"] for row in rows] == sorted(SECRETS)
    assert all(set(row) == TOKEN_KEYS for row in rows)
    assert rows[0] == {
        "serial": "12345678",
        "kind": "hardware",
        "algorithm": "SHA1",
        "digits": 6,
        "period": 30,
        "expires": None,
        "users": [],
        "suspended": False,
        "disabled": False,
        "fail_count": 0,
    }
    expiring = as_json(ready("token", "list", "--json", "--expiring-within", "30"))
    assert [row["serial"] for row in expiring] == ["98765432"]
    assert expiring[0]["expires"] == "2020-01-01T00:00:00+00:00"
    table = ok(ready("token", "list", "--lang", "ja")).stdout
    assert "ハードウェア" in table
    assert "シリアル番号" in table


def test_a_bad_csv_is_refused_with_its_line_and_nothing_is_imported(
    ready: Otpctl, tmp_path: Path
) -> None:
    csv_file = tmp_path / "seeds.csv"
    csv_file.write_text(
        "serial,secret,digits\n"
        f"11111111,{SECRETS['12345678'].hex()},6\n"
        "22222222,not-hex-at-all,6\n",
        encoding="utf-8",
    )
    line = failed(ready("token", "import", str(csv_file)), 2)
    assert f"{csv_file}:3:" in line
    assert "hexadecimal" in line
    assert as_json(ready("token", "list", "--json")) == []


def test_a_present_serial_needs_update(ready: Otpctl, config: Path) -> None:
    csv_file = write_tokens(config.parent)
    ok(ready("token", "import", str(csv_file)))
    # Refused like a bad row (exit 2), naming the file and the line, as user import does.
    line = failed(ready("token", "import", str(csv_file)), 2)
    assert f"{csv_file}:2: serial 12345678 is already in the inventory (use --update)" in line
    csv_file = write_tokens(config.parent, {"23456789": "2031-01-01"})
    assert as_json(ready("token", "import", str(csv_file), "--update", "--json")) == {
        "file": str(csv_file),
        "imported": 3,
        "added": 0,
        "updated": 3,
    }
    rows = {row["serial"]: row for row in as_json(ready("token", "list", "--json"))}
    assert rows["23456789"]["expires"] == "2031-01-01T00:00:00+00:00"


def test_an_update_changes_only_what_the_file_states(ready: Otpctl, config: Path) -> None:
    seed = SECRETS["12345678"].hex()
    first = config.parent / "first.csv"
    first.write_text(
        f"serial,secret,digits,period,expires\n12345678,{seed},8,30,2020-01-01\n",
        encoding="utf-8",
    )
    ok(ready("token", "import", str(first)))
    # The vendor's re-delivery has no expires column and an empty period cell: the expired
    # token stays expired, and its digits and period are not reset to the defaults.
    again = config.parent / "again.csv"
    again.write_text(f"serial,secret,period,digits\n12345678,{seed},,8\n", encoding="utf-8")
    ok(ready("token", "import", str(again), "--update"))
    (row,) = as_json(ready("token", "list", "--json"))
    assert (row["digits"], row["period"]) == (8, 30)
    assert row["expires"] == "2020-01-01T00:00:00+00:00"
    stated = config.parent / "stated.csv"
    stated.write_text(
        f"serial,secret,expires,period\n12345678,{seed},2031-01-01,60\n", encoding="utf-8"
    )
    ok(ready("token", "import", str(stated), "--update"))
    (row,) = as_json(ready("token", "list", "--json"))
    assert (row["digits"], row["period"]) == (8, 60)
    assert row["expires"] == "2031-01-01T00:00:00+00:00"


def test_an_update_without_seeds_keeps_each_tokens_seed(
    bound: Otpctl, config: Path, codes: Codes
) -> None:
    # The vendor extends the tokens' validity: a file of serials and dates, no seeds.
    dates = config.parent / "dates.csv"
    dates.write_text("serial,expires\n23456789,2035-03-31\n", encoding="utf-8")
    refused = failed(bound("token", "import", str(dates)), 2)
    assert "header needs 'serial' and 'secret'" in refused  # a new token needs its seed
    (before,) = [r for r in as_json(bound("token", "list", "--json")) if r["serial"] == "23456789"]
    ok(bound("token", "import", str(dates), "--update"))
    (after,) = [r for r in as_json(bound("token", "list", "--json")) if r["serial"] == "23456789"]
    assert after == {**before, "expires": "2035-03-31T00:00:00+00:00"}
    # The seed is the one it had: its codes still log in.
    accepted = check(bound, "chirodt", codes.fresh("23456789"))
    assert as_json(accepted) == {"result": "accept", "reason": "ok"}
    serials = config.parent / "serials.csv"
    serials.write_text("serial\n23456789\n", encoding="utf-8")
    assert "header names nothing to update" in failed(
        bound("token", "import", str(serials), "--update"), 2
    )


def test_an_empty_pskc_container_is_refused(ready: Otpctl, tmp_path: Path) -> None:
    pskc = tmp_path / "seeds.csv"  # the name does not matter: the content says PSKC
    pskc.write_text("<KeyContainer/>", encoding="utf-8")
    assert "the PSKC file holds no keys" in failed(ready("token", "import", str(pskc)), 2)
    assert as_json(ready("token", "list", "--json")) == []


def test_a_missing_import_file_is_one_line(ready: Otpctl, tmp_path: Path) -> None:
    assert "cannot read" in failed(ready("token", "import", str(tmp_path / "none.csv")), 2)


def test_an_expiry_past_year_9999_in_the_local_zone_shows_in_utc(
    ready: Otpctl, config: Path
) -> None:
    # 9999-12-31 23:00 UTC is 04:30 on 1 January 10000 in India: no datetime holds that, and
    # every table showing the token, or a user of it, failed with an OverflowError.
    seeds = config.parent / "far.csv"
    seeds.write_text(
        "serial,secret,expires\n"
        f"12345678,{SECRETS['12345678'].hex()},9999-12-31T23:00:00Z\n"
        f"23456789,{SECRETS['23456789'].hex()},2030-09-30\n",
        encoding="utf-8",
    )
    ok(ready("token", "import", str(seeds)))
    people = config.parent / "people.csv"
    people.write_text(
        "login,name,password,serial\nfar,Far,far-pw-1,12345678\nnear,Near,near-pw-1,23456789\n",
        encoding="utf-8",
    )
    ok(ready("user", "import", str(people)))
    base = [*otpctl_program(), "--config", str(config)]

    def run(*args: str) -> str:
        done = subprocess.run([*base, *args], env={**os.environ, "TZ": "Asia/Kolkata"},
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout

    tokens = run("token", "list", "--lang", "en")
    assert "9999-12-31 23:00 UTC" in tokens
    assert "2030-09-30 05:30 IST" in tokens  # an expiry the zone can hold stays local
    assert "9999年12月31日 23時00分 UTC" in run("token", "list", "--lang", "ja")
    assert "9999-12-31 23:00 UTC" in run("user", "show", "far", "--lang", "en")
    assert "9999-12-31 23:00 UTC" in run("user", "list", "--lang", "en")
    assert "2030-09-30 05:30 IST" in run("user", "show", "near", "--lang", "en")
    listed = json.loads(run("token", "list", "--json"))
    assert listed[0]["expires"] == "9999-12-31T23:00:00+00:00"  # JSON was always UTC


def test_token_disable_and_enable(bound: Otpctl, codes: Codes) -> None:
    disabled = as_json(bound("token", "disable", "23456789", "--json"))
    assert disabled["disabled"] is True
    assert disabled["users"] == ["chirodt"]
    result = check(bound, "chirodt")
    assert json.loads(result.stdout) == {"result": "reject", "reason": "token_disabled"}
    # The user list says so too, not "available" for a user whose every login is refused.
    listed = ok(bound("user", "show", "chirodt")).stdout
    assert "token disabled" in listed
    assert "available" not in listed
    assert (
        "トークン 23456789 を有効にしました"
        in ok(bound("token", "enable", "23456789", "--lang", "ja")).stdout
    )
    accepted = check(bound, "chirodt", codes.fresh("23456789"))
    assert as_json(accepted) == {"result": "accept", "reason": "ok"}
    failed(bound("token", "disable", "00000000"), 3)


def test_disabling_a_disabled_token_says_nothing_changed(bound: Otpctl) -> None:
    assert ok(bound("token", "disable", "23456789")).stdout == "Disabled token 23456789.\n"
    again = ok(bound("token", "disable", "23456789")).stdout
    assert again == "Token 23456789 was already disabled: nothing changed.\n"
    ok(bound("token", "enable", "23456789"))
    again = ok(bound("token", "enable", "23456789")).stdout
    assert again == "Token 23456789 was not disabled: nothing changed.\n"
    # Every request is audited, but only the first of each pair as the change it made.
    events = [e for e in as_json(bound("audit", "--json")) if e["action"].startswith("token_")]
    details = [(e["action"], e["detail"]) for e in events if e["action"] != "token_import"]
    assert details == [
        ("token_disable", "serial 23456789"),
        ("token_disable", "serial 23456789 (already disabled)"),
        ("token_enable", "serial 23456789"),
        ("token_enable", "serial 23456789 (already enabled)"),
    ]


# activate and check


def test_activation_binds_and_a_shared_token_shows_both_users(bound: Otpctl) -> None:
    users = users_by_login(bound)
    assert users["hanskodt"]["serial"] == users["jirodt"]["serial"] == "12345678"
    assert users["hanskodt"]["state"] == "active"
    assert users["hanskodt"]["token_expires"] == "2030-09-30T00:00:00+00:00"
    tokens = {row["serial"]: row for row in as_json(bound("token", "list", "--json"))}
    assert tokens["12345678"]["users"] == ["hanskodt", "jirodt"]


def test_activate_exits_non_zero_unless_activated(bound: Otpctl, codes: Codes) -> None:
    again = bound("activate", "chirodt", "23456789", "--password-stdin", "--json", input="123456\n")
    assert again.exit_code == 1
    assert json.loads(again.stdout) == {"result": "reject", "reason": "not_awaiting_activation"}
    assert failed(again, 1) == (
        "otpctl: error: activation refused: not_awaiting_activation: "
        "chirodt already has token 23456789; revoke it first"
    )
    ok(bound("user", "issue", "saburodt", "--start", today()))
    wrong = bound("activate", "saburodt", "98765432", "--password-stdin", input="000000\n")
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("reject: ")
    unknown = bound("activate", "saburodt", "55555555", "--password-stdin", input="000000\n")
    assert unknown.stdout.startswith("reject: bad_serial")


def test_the_failed_activation_that_suspends_says_so_in_its_one_line(
    bound: Otpctl, codes: Codes
) -> None:
    ok(bound("user", "issue", "saburodt", "--start", today()))
    lines = []
    for _ in range(5):  # lockout_threshold: failed activations count on the user
        wrong = codes.wrong("98765432")
        result = bound("activate", "saburodt", "98765432", "--password-stdin", input=f"{wrong}\n")
        lines.append(failed(result, 1))
    assert lines[:4] == ["otpctl: error: activation refused: bad_otp"] * 4
    assert lines[4] == (
        "otpctl: error: activation refused: bad_otp; user suspended user=saburodt cause=activation"
    )


@pytest.mark.parametrize(
    ("zone", "opens"),
    [
        # Zones without summer time, so that the start date's season does not matter.
        ("Asia/Kolkata", "{start} 05:30 IST ({start} 00:00 UTC)"),
        ("Asia/Tokyo", "{start} 09:00 JST ({start} 00:00 UTC)"),
        ("UTC", "{start} 00:00 UTC"),
    ],
)
def test_activate_before_the_start_date_says_when_activation_opens(
    bound: Otpctl, config: Path, codes: Codes, zone: str, opens: str
) -> None:
    # The manual's order: issue with the start date of the bank's letter, then activate. A
    # day early, "not issued or revoked" sent the operator looking for a mistake not made;
    # a bare date was then read as local midnight, 05:30 early in India, 9 hours in Japan.
    start = (datetime.now(UTC).date() + timedelta(days=4)).isoformat()
    ok(bound("user", "issue", "saburodt", "--start", start))
    command = [*otpctl_program(), "--config", str(config), "activate", "saburodt", "98765432"]
    early = subprocess.run([*command, "--password-stdin"], input=f"{codes.fresh('98765432')}\n",
                           env={**os.environ, "TZ": zone, "LANG": "C.UTF-8"},
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert early.returncode == 1, early.stderr
    assert early.stdout.startswith("reject: not_awaiting_activation")
    assert "not issued or revoked" not in early.stdout
    assert early.stderr.splitlines() == [
        "otpctl: error: activation refused: not_awaiting_activation: "
        f"saburodt's service starts at {opens.format(start=start)}: activation opens then"
    ]
    assert users_by_login(bound)["saburodt"]["state"] == "issued"


def test_issue_says_when_activation_opens_in_the_hosts_zone(bound: Otpctl, config: Path) -> None:
    # Issued with today's date to activate at once, a user in Japan waits until 09:00: the
    # start date is a UTC day. Before, only the date was printed, and activate then refused.
    start = datetime.now(UTC).date().isoformat()
    command = [*otpctl_program(), "--config", str(config), "user", "issue", "saburodt"]
    env = {**os.environ, "TZ": "Asia/Tokyo", "LANG": "C.UTF-8"}
    said = subprocess.run([*command, "--start", start], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert said.stdout == (
        f"Issued a token to saburodt: service starts on {start}; "
        f"activation opens at {start} 09:00 JST ({start} 00:00 UTC).\n"
    )
    said_ja = subprocess.run([*command, "--start", start, "--lang", "ja"], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    year, month, day = start.split("-")
    assert f"利用開始登録は {year}年{month}月{day}日 09時00分 JST から" in said_ja.stdout


def test_activate_refused_whatever_the_code_asks_for_none(bound: Otpctl, codes: Codes) -> None:
    # Prompted at a terminal, the operator read a code off the customer's token, typed it, and
    # only then learned that no code could have helped.
    start = (datetime.now(UTC).date() + timedelta(days=4)).isoformat()
    ok(bound("user", "issue", "saburodt", "--start", start))
    for login, serial in (("saburodt", "98765432"), ("chirodt", "23456789")):
        refused = bound("activate", login, serial, input="")  # no code to give
        assert "One-time password" not in refused.output
        assert failed(refused, 1).startswith(
            "otpctl: error: activation refused: not_awaiting_activation: "
        )
    # Where the code decides (a wrong one is counted), it is asked for as before.
    ok(bound("user", "issue", "saburodt", "--start", today()))
    wrong = bound("activate", "saburodt", "98765432", input="000000\n")
    assert "One-time password shown on token 98765432" in wrong.output
    assert wrong.stdout.startswith("reject: ")


def test_activate_of_a_user_with_no_token_issued_says_to_issue_one(bound: Otpctl) -> None:
    add = ("user", "add", "goro", "--name", "Goro", "--class", "general", "--password-stdin")
    ok(bound(*add, input="goro-pw-1\n"))
    refused = bound("activate", "goro", "98765432", "--password-stdin", input="000000\n")
    assert failed(refused, 1) == (
        "otpctl: error: activation refused: not_awaiting_activation: no token was issued to "
        "goro; run 'otpctl user issue goro --start YYYY-MM-DD' first"
    )


def test_check_accepts_the_password_then_the_otp(bound: Otpctl, codes: Codes) -> None:
    result = check(bound, "chirodt", codes.fresh("23456789"), json_out=False)
    assert result.exit_code == 0
    assert result.stdout.startswith("accept: ok")


def test_check_prompts_without_echo(bound: Otpctl, codes: Codes) -> None:
    code = codes.fresh("23456789")
    result = bound("check", "chirodt", input=f"{PASSWORDS['chirodt']}\n{code}\n")
    assert result.exit_code == 0
    assert PASSWORDS["chirodt"] not in result.output
    assert code not in result.output
    assert "One-time password shown on token 23456789" in result.stderr


def test_check_rejects_and_exits_1(bound: Otpctl) -> None:
    result = bound("check", "chirodt", "--password-stdin", "--json", input="wrong\n")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"result": "reject", "reason": "bad_password"}
    unknown = bound("check", "nobody", "--password-stdin", input="x\n")
    assert unknown.exit_code == 1
    assert unknown.stdout.startswith("reject: unknown_user")


def test_check_stops_at_an_unanswered_challenge(bound: Otpctl) -> None:
    result = check(bound, "chirodt")
    assert result.exit_code == 10
    assert json.loads(result.stdout) == {"result": "challenge", "reason": "otp_challenge"}


def test_check_runs_an_activation_by_challenges(bound: Otpctl, codes: Codes) -> None:
    ok(bound("user", "issue", "saburodt", "--start", today()))
    code = codes.fresh("98765432")
    result = bound(
        "check", "saburodt", "--password-stdin", "--json", input=f"saburo-pw-1\n98765432\n{code}\n"
    )
    assert as_json(result) == {"result": "accept", "reason": "activated"}
    assert users_by_login(bound)["saburodt"]["serial"] == "98765432"


@pytest.fixture
def syslog(bound: Otpctl, config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Syslog]:
    """``syslog = true``, with a syslog daemon's datagram socket in the test's folder."""
    config.write_text(
        config.read_text(encoding="utf-8").replace("syslog = false", "syslog = true"),
        encoding="utf-8",
    )
    path = config.parent / "dev-log"
    monkeypatch.setattr(decision_log, "SYSLOG_SOCKET", str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)

        def received() -> list[str]:
            lines = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    lines.append(sock.recv(65536).decode("utf-8"))
            return lines

        yield received


Syslog = Callable[[], list[str]]
AUTHPRIV_INFO = 10 << 3 | 6
AUTHPRIV_WARNING = 10 << 3 | 4


def test_check_logs_each_decision_to_syslog_as_the_daemon_does(
    bound: Otpctl, syslog: Syslog, codes: Codes
) -> None:
    """A login run from the command line is a real one (it counts, it uses the step): the
    monitoring that reads the daemon's lines sees it, with who ran it and nothing secret."""
    wrong = codes.wrong("23456789")
    result = check(bound, "chirodt", wrong)
    assert result.exit_code == 1
    lines = syslog()
    head = f"<{AUTHPRIV_INFO}>otpctl[{os.getpid()}]: auth "
    tail = f"user=chirodt client={operator()} src=local mode=challenge serial=23456789 ms="
    assert [line.startswith(head) for line in lines] == [True, True]
    assert [line.removeprefix(head).split(" user=")[0] for line in lines] == [
        "result=challenge reason=otp_challenge",
        "result=reject reason=bad_otp",
    ]
    assert all(f" {tail}" in line and line.endswith("\000") for line in lines)
    assert not any(PASSWORDS["chirodt"] in line or wrong in line for line in lines)


def test_activate_logs_its_decision_to_syslog(bound: Otpctl, syslog: Syslog, codes: Codes) -> None:
    ok(bound("user", "issue", "saburodt", "--start", today()))
    code = codes.fresh("98765432")
    ok(bound("activate", "saburodt", "98765432", "--password-stdin", input=f"{code}\n"))
    refused = bound("activate", "saburodt", "98765432", "--password-stdin", input="")
    assert refused.exit_code == 1
    assert [line.split(": auth ")[1].split(" ms=")[0] for line in syslog()] == [
        f"result=accept reason=activated user=saburodt client={operator()} src=local "
        "mode=activate serial=98765432",
        f"result=reject reason=not_awaiting_activation user=saburodt client={operator()} "
        "src=local mode=activate serial=98765432",
    ]


def test_check_logs_to_a_syslog_daemon_on_a_stream_socket(
    bound: Otpctl, syslog: Syslog, config: Path, codes: Codes
) -> None:
    """syslog-ng and some rsyslog setups take /dev/log as a stream: each line ends in NUL."""
    path = config.parent / "dev-log"
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)
        assert check(bound, "chirodt", codes.wrong("23456789")).exit_code == 1
        listener.settimeout(1.0)
        received = []
        for _ in range(2):
            connection, _ = listener.accept()
            with connection:
                received.append(connection.recv(65536).decode("utf-8"))
    assert [line.split(" user=")[0].split(": auth ")[1] for line in received] == [
        "result=challenge reason=otp_challenge",
        "result=reject reason=bad_otp",
    ]


def test_check_logs_nothing_with_syslog_off_or_below_the_level(
    bound: Otpctl, syslog: Syslog, config: Path, codes: Codes
) -> None:
    for setting in ("syslog = false", 'level = "warning"'):
        text = config.read_text(encoding="utf-8").replace("syslog = true", setting)
        config.write_text(text, encoding="utf-8")
        assert check(bound, "chirodt", codes.wrong("23456789")).exit_code == 1
        assert syslog() == []


def test_check_without_a_syslog_daemon_says_so_once_and_still_answers(
    bound: Otpctl, syslog: Syslog, config: Path, codes: Codes
) -> None:
    (config.parent / "dev-log").unlink()
    result = check(bound, "chirodt", codes.wrong("23456789"))  # two decisions, one warning
    assert json.loads(result.stdout) == {"result": "reject", "reason": "bad_otp"}
    # In the one error line: the example configuration has syslog = true, and a container
    # has no syslog daemon.
    assert failed(result, 1) == (
        "otpctl: error: chirodt was not accepted (reject); "
        f"syslog = true but {decision_log.SYSLOG_SOCKET} does not exist: "
        "the decision is not logged"
    )
    accepted = check(bound, "chirodt", codes.fresh("23456789"))
    assert as_json(accepted)["result"] == "accept"
    assert accepted.stderr == (
        f"otpctl: WARNING: syslog = true but {decision_log.SYSLOG_SOCKET} does not exist: "
        "the decision is not logged\n"
    )


def test_a_suspension_by_otpctl_is_logged_where_the_daemons_are(
    bound: Otpctl, syslog: Syslog, codes: Codes
) -> None:
    # Monitoring watches syslog for the daemon's "token suspended": a suspension made by
    # otpctl check must reach it too, not only the operator's terminal.
    suspend_shared_token(bound, codes)
    warnings = [line for line in syslog() if line.startswith(f"<{AUTHPRIV_WARNING}>")]
    assert warnings == [
        f"<{AUTHPRIV_WARNING}>otpctl[{os.getpid()}]: "
        "token suspended serial=12345678 users=hanskodt,jirodt\000"
    ]


def syslog_warnings(result: Result) -> list[str]:
    """What a failed check said of syslog, in its one error line."""
    return failed(result, 1).split("; ")[1:]


def test_check_gives_up_on_a_syslog_daemon_that_stopped_reading(
    bound: Otpctl,
    syslog: Syslog,
    config: Path,
    codes: Codes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its queue full, a datagram send would wait for ever: the line is given up instead."""
    monkeypatch.setattr(decision_log, "SEND_TIMEOUT_S", 0.2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.connect(str(config.parent / "dev-log"))
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(10_000):
                filler.send(b"<14>x: queued")
        started = time.monotonic()
        result = check(bound, "chirodt", codes.wrong("23456789"))
    assert time.monotonic() - started < 5
    assert json.loads(result.stdout) == {"result": "reject", "reason": "bad_otp"}
    assert syslog_warnings(result) == [
        f"syslog = true but {decision_log.SYSLOG_SOCKET} does not answer (timed out): "
        "the decision is not logged"
    ]


def test_check_names_what_a_dead_syslog_daemon_left(
    bound: Otpctl, syslog: Syslog, config: Path, codes: Codes
) -> None:
    """A socket file nobody listens on any more: refused, said as such."""
    path = config.parent / "dev-log"
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(path))
    assert syslog_warnings(check(bound, "chirodt", codes.wrong("23456789"))) == [
        f"syslog = true but {decision_log.SYSLOG_SOCKET} does not answer (Connection refused): "
        "the decision is not logged"
    ]


def test_a_replayed_code_is_rejected(bound: Otpctl, codes: Codes) -> None:
    code = codes.fresh("23456789")
    assert as_json(check(bound, "chirodt", code))["result"] == "accept"
    replay = check(bound, "chirodt", code)
    assert json.loads(replay.stdout) == {"result": "reject", "reason": "replay"}


# unlock and revoke


def test_five_wrong_otps_suspend_both_sharers_and_an_unlock_lifts_both(
    bound: Otpctl, codes: Codes
) -> None:
    suspend_shared_token(bound, codes)
    users = users_by_login(bound)
    assert users["hanskodt"]["suspended"]
    assert users["jirodt"]["suspended"]
    assert not users["chirodt"]["suspended"]
    blocked = check(bound, "hanskodt", codes.at("12345678", 0))
    assert json.loads(blocked.stdout) == {"result": "reject", "reason": "token_suspended"}

    result = bound(
        "unlock", "--admin", "saburodt", "jirodt", "--password-stdin", "--lang", "ja",
        input=f"{CONFIRMATIONS['saburodt']}\n",
    )  # fmt: skip
    lines = ok(result).stdout.splitlines()
    assert lines[0] == "以下の利用者に対して、ワンタイムパスワードの利用停止状態を解除しました。"
    assert lines[1].split() == [
        "ログインID", "利用者名", "利用者区分", "シリアル番号",
        "ワンタイムパスワード状態", "ワンタイムパスワード認証状態",
    ]  # fmt: skip
    assert lines[2].split() == [
        "hanskodt", "データ花子", "管理者ユーザ", "12345678", "サービス利用中", "利用可能",
    ]  # fmt: skip
    assert lines[3].split()[0] == "jirodt"
    assert not any(row["suspended"] for row in users_by_login(bound).values())
    accepted = check(bound, "jirodt", codes.fresh("12345678"))
    assert as_json(accepted) == {"result": "accept", "reason": "ok"}


def test_unlock_json_lists_every_user_lifted(bound: Otpctl, codes: Codes) -> None:
    suspend_shared_token(bound, codes)
    result = bound(
        "unlock", "--admin", "hanskodt", "hanskodt", "--password-stdin", "--json",
        input=f"{CONFIRMATIONS['hanskodt']}\n",
    )  # fmt: skip
    rows = as_json(result)
    assert [row["login"] for row in rows] == ["hanskodt", "jirodt"]
    assert all(set(row) == USER_KEYS and row["suspended"] is False for row in rows)
    again = bound(
        "unlock", "--admin", "hanskodt", "jirodt", "--password-stdin",
        input=f"{CONFIRMATIONS['hanskodt']}\n",
    )  # fmt: skip
    assert "None of the selected users" in ok(again).stdout


def test_a_wrong_confirmation_password_changes_nothing_and_is_audited(
    bound: Otpctl, codes: Codes
) -> None:
    suspend_shared_token(bound, codes)
    before = as_json(bound("user", "list", "--json"))
    for command in ("unlock", "revoke"):
        result = bound(
            command, "--admin", "hanskodt", "jirodt", "--password-stdin", input="not-it\n"
        )
        assert "wrong confirmation password" in failed(result, 5)
    assert as_json(bound("user", "list", "--json")) == before
    denied = [e for e in as_json(bound("audit", "--json")) if e["outcome"] == "denied"]
    assert [(e["actor"], e["action"]) for e in denied] == [
        ("hanskodt", "unlock"),
        ("hanskodt", "revoke"),
    ]
    # The approver is the actor; the account that ran otpctl and the users asked for are named.
    for event in denied:
        assert event["detail"].startswith("wrong confirmation password; run as otpctl:")
        assert event["targets"] == ["jirodt"]


def test_five_wrong_confirmations_lock_the_admin(bound: Otpctl) -> None:
    args = ("unlock", "--admin", "hanskodt", "jirodt", "--password-stdin")
    for _ in range(4):
        assert failed(bound(*args, input="not-it\n"), 5) == (
            "otpctl: error: wrong confirmation password for hanskodt"
        )
    # The attempt that locks it says so, and what to run: retyping is no use from here on.
    assert failed(bound(*args, input="not-it\n"), 5) == (
        "otpctl: error: wrong confirmation password for hanskodt; it is now locked after 5 "
        "wrong attempts; reset it with 'otpctl user passwd hanskodt --confirmation'"
    )
    locked = bound(*args, input=f"{CONFIRMATIONS['hanskodt']}\n")
    assert "locked" in failed(locked, 5)
    # The command the message names runs as it stands (it lacked the login before).
    assert failed(locked, 5).endswith("'otpctl user passwd hanskodt --confirmation'")
    ok(bound("user", "passwd", "hanskodt", "--confirmation", "--password-stdin", input="new-c\n"))
    ok(bound(*args, input="new-c\n"))


def import_admin_shiro(otpctl: Otpctl, config: Path) -> None:
    """An admin user made by a user import: no confirmation password yet (SPEC §7)."""
    users = config.parent / "admins.csv"
    users.write_text("login,name,class,password\nshiro,Shiro,admin,shiro-pw-1\n", encoding="utf-8")
    ok(otpctl("user", "import", str(users)))


def test_an_imported_admin_without_a_confirmation_password_is_told_to_set_one(
    bound: Otpctl, config: Path, codes: Codes
) -> None:
    # SPEC §7: imported master and admin users get their confirmation password afterwards,
    # with user passwd --confirmation. Until then "wrong confirmation password" sent the
    # operator guessing, and five guesses locked an administrator who had no password at all.
    import_admin_shiro(bound, config)
    suspend_shared_token(bound, codes)
    args = ("unlock", "--admin", "shiro", "jirodt", "--password-stdin")
    for _ in range(6):
        line = failed(bound(*args, input="anything\n"), 5)
        assert line == (
            "otpctl: error: shiro has no confirmation password yet; set one with "
            "'otpctl user passwd shiro --confirmation'"
        )
    denied = [e for e in as_json(bound("audit", "--json")) if e["outcome"] == "denied"]
    assert [(e["actor"], e["targets"]) for e in denied] == [("shiro", ["jirodt"])] * 6
    assert denied[0]["detail"].startswith("no confirmation password; run as otpctl:")
    assert users_by_login(bound)["jirodt"]["suspended"] is True
    ok(bound("user", "passwd", "shiro", "--confirmation", "--password-stdin", input="shiro-c\n"))
    ok(bound(*args, input="shiro-c\n"))  # not locked by the attempts before
    assert users_by_login(bound)["jirodt"]["suspended"] is False


def test_no_password_is_asked_of_an_approver_who_cannot_approve(
    bound: Otpctl, config: Path, codes: Codes
) -> None:
    import_admin_shiro(bound, config)
    suspend_shared_token(bound, codes)
    # Prompted (no --password-stdin), with nothing to type: the refusal comes first.
    for approver, words in (("shiro", "no confirmation password yet"),
                            ("chirodt", "not a master or admin user"),
                            ("nobody", "no user nobody: the approver must be a master or "
                                       "admin user")):  # fmt: skip
        for command in ("unlock", "revoke"):
            result = bound(command, "--admin", approver, "jirodt")
            assert words in failed(result, 5)
            assert "Confirmation password of" not in result.output
    events = [e for e in as_json(bound("audit", "--json")) if e["outcome"] == "denied"]
    assert len(events) == 6  # each refusal audited once
    assert users_by_login(bound)["jirodt"]["suspended"] is True


def test_a_general_user_cannot_unlock_or_revoke(bound: Otpctl, codes: Codes) -> None:
    suspend_shared_token(bound, codes)
    before = as_json(bound("user", "list", "--json"))
    for command in ("unlock", "revoke"):
        result = bound(command, "--admin", "chirodt", "jirodt", "--password-stdin", input="x\n")
        assert "not a master or admin user" in failed(result, 5)
    missing = bound("unlock", "--admin", "nobody", "jirodt", "--password-stdin", input="x\n")
    assert "no user nobody" in failed(missing, 5)
    assert as_json(bound("user", "list", "--json")) == before
    denied = [e for e in as_json(bound("audit", "--json")) if e["outcome"] == "denied"]
    assert [(e["actor"], e["action"]) for e in denied] == [
        ("chirodt", "unlock"),
        ("chirodt", "revoke"),
        ("nobody", "unlock"),
    ]


def test_revoke_unbinds_one_sharer_and_prints_the_manual_table(bound: Otpctl) -> None:
    result = bound(
        "revoke", "--admin", "hanskodt", "jirodt", "--password-stdin",
        input=f"{CONFIRMATIONS['hanskodt']}\n",
    )  # fmt: skip
    lines = ok(result).stdout.splitlines()
    assert lines[0] == "Revoked the token of these users:"
    assert lines[1].split("  ")[0] == "Login ID"
    assert "Token expiry" in lines[1]
    assert lines[2].split()[:5] == ["jirodt", "データ二郎", "general", "12345678", "revoked"]
    users = users_by_login(bound)
    assert users["jirodt"]["state"] == "revoked"
    assert users["jirodt"]["serial"] is None
    assert users["hanskodt"]["state"] == "active"
    assert users["hanskodt"]["serial"] == "12345678"


def test_revoke_json_and_nothing_to_revoke(bound: Otpctl) -> None:
    conf = f"{CONFIRMATIONS['saburodt']}\n"
    rows = as_json(
        bound("revoke", "--admin", "saburodt", "chirodt", "--password-stdin", "--json", input=conf)
    )
    assert rows == [
        {
            "login": "chirodt",
            "name": "データ一郎",
            "class": "general",
            "serial": "23456789",
            "state": "revoked",
            "suspended": False,
            "token_expires": None,
        }
    ]
    again = bound("revoke", "--admin", "saburodt", "chirodt", "--password-stdin", input=conf)
    assert "nothing to revoke" in failed(again, 6)
    unknown = bound("revoke", "--admin", "saburodt", "nobody", "--password-stdin", input=conf)
    assert "no user nobody" in failed(unknown, 3)


def test_user_delete_prints_the_users_as_they_were_and_shuts_them_out(bound: Otpctl) -> None:
    conf = f"{CONFIRMATIONS['hanskodt']}\n"
    result = bound("user", "delete", "--admin", "hanskodt", "jirodt", "--password-stdin",
                   "--lang", "ja", input=conf)  # fmt: skip
    lines = ok(result).stdout.splitlines()
    assert lines[0] == "以下の利用者を削除しました。"
    assert lines[2].split()[:4] == ["jirodt", "データ二郎", "一般ユーザ", "12345678"]
    users = users_by_login(bound)
    assert "jirodt" not in users
    assert users["hanskodt"]["serial"] == "12345678"
    assert check(bound, "jirodt").exit_code == 1  # unknown now, whatever is typed
    # All or nothing: one unknown login, and chirodt stays.
    unknown = bound("user", "delete", "--admin", "hanskodt", "chirodt", "nobody",
                    "--password-stdin", input=conf)  # fmt: skip
    assert "no user nobody" in failed(unknown, 3)
    itself = bound("user", "delete", "--admin", "hanskodt", "hanskodt", "--password-stdin",
                   input=conf)  # fmt: skip
    assert "cannot delete itself" in failed(itself, 6)
    rows = as_json(bound("user", "delete", "--admin", "hanskodt", "chirodt", "--password-stdin",
                         "--json", input=conf))  # fmt: skip
    assert [(row["login"], row["serial"], row["state"]) for row in rows] == [
        ("chirodt", "23456789", "active")
    ]
    events = [e for e in as_json(bound("audit", "--json")) if e["action"] == "user_delete"]
    assert [(e["targets"], e["outcome"]) for e in events] == [
        (["jirodt"], "ok"), (["chirodt", "nobody"], "refused"), (["hanskodt"], "refused"),
        (["chirodt"], "ok"),
    ]  # fmt: skip
    assert "利用者削除" in ok(bound("audit", "--lang", "ja")).stdout


def test_token_delete_refuses_a_bound_token_and_prints_the_deleted_ones(bound: Otpctl) -> None:
    conf = f"{CONFIRMATIONS['hanskodt']}\n"
    refused = bound("token", "delete", "--admin", "hanskodt", "23456789", "--password-stdin",
                    input=conf)  # fmt: skip
    assert "bound to chirodt: revoke or delete them first" in failed(refused, 6)
    ok(bound("revoke", "--admin", "hanskodt", "chirodt", "--password-stdin", input=conf))
    result = bound("token", "delete", "--admin", "hanskodt", "23456789", "--password-stdin",
                   "--lang", "ja", input=conf)  # fmt: skip
    lines = ok(result).stdout.splitlines()
    assert lines[0] == "以下のトークンをシード情報とともに削除しました。"
    assert lines[2].split()[0] == "23456789"
    serials = [row["serial"] for row in as_json(bound("token", "list", "--json"))]
    assert "23456789" not in serials
    assert "トークン削除" in ok(bound("audit", "--lang", "ja")).stdout


# audit, key rotation, errors


def test_audit_since_the_first_day_of_the_calendar_east_of_utc(bound: Otpctl, config: Path) -> None:
    # Local midnight of 0001-01-01 in Tokyo is in year 0 in UTC, which Python cannot hold.
    command = [*otpctl_program(), "--config", str(config), "audit", "--json", "--since"]
    done = subprocess.run([*command, "0001-01-01"], env={**os.environ, "TZ": "Asia/Tokyo"},
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == as_json(bound("audit", "--json"))


def test_audit_lists_operations(bound: Otpctl) -> None:
    events = as_json(bound("audit", "--json"))
    assert {"at", "actor", "action", "targets", "outcome", "detail"} == set(events[0])
    actions = [e["action"] for e in events]
    assert actions.count("user_add") == 4
    assert actions.count("activate") == 3
    assert "token_import" in actions
    assert as_json(bound("audit", "--json", "--since", "2999-01-01")) == []
    assert "利用開始登録" in ok(bound("audit", "--lang", "ja")).stdout
    # Every action and outcome the audit can hold has its Japanese label.
    from cli.output import ACTION_LABELS_JA, OUTCOME_LABELS_JA

    written = {"user_add", "user_import", "issue", "passwd", "token_import", "token_disable",
               "token_enable", "activate", "suspend", "unlock", "revoke", "user_delete",
               "token_delete", "key_rotate", "db_backup", "db_upgrade"}  # fmt: skip
    assert written | set(actions) <= set(ACTION_LABELS_JA)
    assert {"ok", "denied", "refused"} <= set(OUTCOME_LABELS_JA)
    # The schema's creation by init is the first event: shown in Japanese like the others.
    japanese = ok(bound("audit", "--lang", "ja")).stdout.splitlines()
    assert "データベース更新" in japanese[1], japanese[1]
    shown = [re.split(r" {2,}", line)[2] for line in japanese[1:]]
    assert set(shown) <= set(ACTION_LABELS_JA.values()), shown


def test_the_audit_names_the_account_that_ran_the_command_not_its_environment(
    bound: Otpctl,
) -> None:
    impostor = {"LOGNAME": "auditor", "USER": "auditor", "USERNAME": "auditor", "SUDO_USER": None}
    ok(bound("token", "disable", "23456789", env=impostor))
    (event,) = [e for e in as_json(bound("audit", "--json")) if e["action"] == "token_disable"]
    assert event["actor"] == f"otpctl:{pwd.getpwuid(os.getuid()).pw_name}"


def test_hostile_values_a_refused_command_was_given_cannot_forge_or_rewrite_the_audit(
    bound: Otpctl, config: Path
) -> None:
    # A denied or refused command is audited with what it was given, unchecked: a line break
    # in --admin forged a whole row of the plain table, and an escape sequence (here OSC,
    # which click does not strip) or a bidi override reached the auditor's terminal as is.
    forged = "hanskodt\n2030-01-01 09:00:00 UTC  hanskodt  unlock  jirodt  ok  selected jirodt"
    failed(bound("unlock", "--admin", forged, "jirodt", "--password-stdin", input="x\n"), 5)
    title = "jirodt\x1b]0;pwned\x07\u202etxt.exe"
    conf = f"{CONFIRMATIONS['hanskodt']}\n"
    revoke = bound("revoke", "--admin", "hanskodt", title, "--password-stdin", input=conf)
    refused = failed(revoke, 3)
    assert "\x1b" not in refused
    assert "\u202e" not in refused
    assert "no user jirodt\\x1b]0;pwned\\x07\\u202etxt.exe" in refused
    events = as_json(bound("audit", "--json"))
    assert [e["actor"] for e in events if e["outcome"] != "ok"] == [forged, "hanskodt"]
    for lang in ("en", "ja"):
        out = ok(bound("audit", "--lang", lang)).stdout
        assert out.replace("\n", "").isprintable(), repr(out)
        assert len(out.splitlines()) == len(events) + 1  # a header, then a line per event
        assert "hanskodt\\n2030-01-01 09:00:00 UTC" in out
        assert "jirodt\\x1b]0;pwned\\x07\\u202etxt.exe" in out
    raw = ok(bound("audit", "--json")).stdout
    assert raw.replace("\n", "").isprintable(), repr(raw)
    assert "\\u202e" in raw
    assert json.loads(raw) == events


def test_one_very_long_value_does_not_widen_every_line_of_the_audit(bound: Otpctl) -> None:
    # A refused command's arguments are audited whatever their length: padded to them, every
    # line of the plain table grew by that much (100 events x 100 kB = 10 MB of spaces).
    long_login = "x" * 100_000
    conf = f"{CONFIRMATIONS['hanskodt']}\n"
    revoke = bound("revoke", "--admin", "hanskodt", long_login, "--password-stdin", input=conf)
    failed(revoke, 3)
    events = as_json(bound("audit", "--json"))
    lines = ok(bound("audit")).stdout.splitlines()
    assert len(lines) == len(events) + 1
    (long_line,) = [line for line in lines if long_login in line]  # still shown whole
    assert all(len(line) < 300 for line in lines if line is not long_line)
    # Short values still line up in columns.
    assert len({line.index("user_add") for line in lines if "user_add" in line}) == 1


@pytest.mark.skipif(os.getuid() != 0, reason="only root's audit names the sudo user")
def test_a_sudo_user_named_in_another_encoding_is_audited_as_escaped_bytes(
    bound: Otpctl,
) -> None:
    # A Latin-1 account name: the byte 0xE9 is not UTF-8 on its own.
    ok(bound("token", "disable", "23456789", env={"SUDO_USER": "jos\udce9"}))
    (event,) = [e for e in as_json(bound("audit", "--json")) if e["action"] == "token_disable"]
    assert event["actor"] == "otpctl:jos\\xe9(sudo)"


def test_an_unreachable_database_exits_69_naming_it_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://otp:s3cret-pw@127.0.0.1:1/otp"  # nothing listens on port 1
    otpctl = otpctl_runner(write_config(tmp_path, f'\n[database]\nurl = "{url}"\n'))
    line = failed(otpctl("user", "list"), 69)
    assert "127.0.0.1:1/otp: cannot connect: OperationalError" in line
    assert "s3cret-pw" not in line


def test_a_database_file_that_is_not_there_is_not_created(otpctl: Otpctl, config: Path) -> None:
    database = config.parent / "otpradius.db"
    line = failed(otpctl("user", "list"), 74)
    assert line == f"otpctl: error: {database}: no database file: run 'otpctl init' first"
    assert not database.exists()


def test_key_rotate_keeps_every_token_working(bound: Otpctl, config: Path, codes: Codes) -> None:
    key = config.parent / "otpradius.key"
    before = key.read_bytes()
    shown = ok(bound("key", "rotate")).stdout
    assert "Re-sealed 3 seed(s)" in shown
    assert key.read_bytes() != before
    # The id README labels the key file's backups with: the first 16 hex digits of its sha256.
    assert f"id {hashlib.sha256(key.read_bytes()).hexdigest()[:16]};" in shown
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    accepted = check(bound, "chirodt", codes.fresh("23456789"))
    assert as_json(accepted) == {"result": "accept", "reason": "ok"}


def test_key_rotate_prepare_writes_the_next_key_and_seals_nothing(
    bound: Otpctl, config: Path, codes: Codes
) -> None:
    key = config.parent / "otpradius.key"
    pending = config.parent / "otpradius.key.new"
    before = key.read_bytes()
    shown = ok(bound("key", "rotate", "--prepare")).stdout
    assert str(pending) in shown
    assert "every other node" in shown
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert key.read_bytes() == before
    next_key = pending.read_bytes()
    assert "already in" in ok(bound("key", "rotate", "--prepare")).stdout
    assert "Re-sealed 3 seed(s)" in ok(bound("key", "rotate")).stdout
    assert key.read_bytes() == next_key  # the prepared key, the one the nodes were given
    assert not pending.exists()
    accepted = check(bound, "chirodt", codes.fresh("23456789"))
    assert as_json(accepted) == {"result": "accept", "reason": "ok"}


def test_an_unexpected_error_is_one_line_without_its_text(
    ready: Otpctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object) -> None:
        raise RuntimeError("hunter2-must-not-show")

    monkeypatch.setattr(cli_users, "_refuse_present", explode)
    args = ("user", "add", "x", "--name", "x", "--class", "general", "--password-stdin")
    result = ready(*args, input="pw\n")
    line = failed(result, 1)
    assert "unexpected RuntimeError" in line
    assert "hunter2" not in result.output
    debug = ready(*args, input="pw\n", env={"OTPRADIUS_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError)
