"""``otpctl token import`` (CSV and PSKC) and ``otpctl user import``, through click's CliRunner
and, where a terminal matters, the installed ``otpctl`` on a pseudo-terminal.

PSKC files are written by python-pskc in the test; codes come from pyotp for the wall clock,
the clock otpctl reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from click.testing import Result

from tests.integration.cli_support import (
    Codes,
    Otpctl,
    as_json,
    failed,
    ok,
    otpctl_program,
    otpctl_runner,
    run_on_terminal,
    today,
    write_config,
)
from tests.unit.test_pskc_import import DATA, RFC_PASSWORD, RFC_PSK, pskc_bytes

SECRETS = {"61000001": bytes(range(100, 120)), "61000002": bytes(range(120, 152))}
KEYS: list[dict[str, Any]] = [
    {"id": "k1", "serial": "61000001", "secret": SECRETS["61000001"], "time_interval": 30},
    {
        "id": "k2",
        "serial": "61000002",
        "secret": SECRETS["61000002"],
        "algorithm_suite": "HMAC-SHA256",
        "response_length": 8,
        "time_interval": 30,
    },
]


FORMS: dict[str, tuple[int, Callable[..., Any]]] = {
    "61000001": (6, hashlib.sha1),
    "61000002": (8, hashlib.sha256),
}


class KeyCodes(Codes):
    """Fresh codes for KEYS, each with its own hash and length (FORMS)."""

    def at(self, serial: str, step: int) -> str:
        """The code of ``serial`` at time step ``step``."""
        digits, digest = FORMS[serial]
        key = base64.b32encode(self.secrets[serial]).decode()
        totp = pyotp.TOTP(key, digits=digits, digest=digest, interval=self.period)
        return totp.at(step * self.period)


PROTECTIONS: dict[str, tuple[list[str], str | None]] = {
    "plain": ([], None),
    "psk": (["--psk", RFC_PSK.hex()], None),
    "psk prompted": (["--psk", "-", "--password-stdin"], f"{RFC_PSK.hex()}\n"),
    "pbkdf2": (["--pskc-password", "--password-stdin"], f"{RFC_PASSWORD}\n"),
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration file; the database and key file go beside it."""
    return write_config(tmp_path)


@pytest.fixture
def otpctl(config: Path) -> Otpctl:
    """otpctl through CliRunner, after ``otpctl init``; stderr is not a terminal."""
    run = otpctl_runner(config)
    ok(run("init"))
    return run


def write_pskc(folder: Path, protection: str, keys: list[dict[str, Any]] = KEYS) -> Path:
    path = folder / f"{protection}.pskcxml"
    path.write_bytes(pskc_bytes(keys, protection))
    return path


def serials(otpctl: Otpctl) -> list[str]:
    return [row["serial"] for row in as_json(otpctl("token", "list", "--json"))]


def activate(otpctl: Otpctl, codes: Codes, login: str, serial: str) -> Result:
    """Add LOGIN, issue it a token from today and activate SERIAL with a fresh code."""
    ok(
        otpctl(
            "user", "add", login, "--name", login.title(), "--class", "general",
            "--password-stdin", input="pw-of-" + login + "\n",
        )
    )  # fmt: skip
    ok(otpctl("user", "issue", login, "--start", today()))
    return otpctl("activate", login, serial, "--password-stdin", input=codes.fresh(serial) + "\n")


def state_of(otpctl: Otpctl, login: str) -> str:
    state: str = as_json(otpctl("user", "show", login, "--json"))["state"]
    return state


# PSKC through otpctl


@pytest.mark.parametrize("protection", list(PROTECTIONS))
def test_pskc_files_import_and_their_codes_activate(
    otpctl: Otpctl, tmp_path: Path, protection: str
) -> None:
    path = write_pskc(tmp_path, protection.removesuffix(" prompted"))
    options, stdin = PROTECTIONS[protection]
    result = ok(otpctl("token", "import", str(path), *options, input=stdin))
    assert f"Imported 2 token(s) from {path}." in result.stdout
    assert result.stderr == ""  # no progress bar: stderr is not a terminal
    rows = {row["serial"]: row for row in as_json(otpctl("token", "list", "--json"))}
    assert {s: (r["algorithm"], r["digits"], r["period"]) for s, r in rows.items()} == {
        "61000001": ("SHA1", 6, 30),
        "61000002": ("SHA256", 8, 30),
    }
    codes = KeyCodes(SECRETS)
    for number, serial in enumerate(SECRETS):
        login = f"pskc{number}"
        assert ok(activate(otpctl, codes, login, serial)).stdout.startswith("accept: activated")
        assert state_of(otpctl, login) == "active"


def test_the_pskc_password_is_prompted_without_echo(otpctl: Otpctl, tmp_path: Path) -> None:
    path = write_pskc(tmp_path, "pbkdf2")
    result = ok(otpctl("token", "import", str(path), "--pskc-password", input=RFC_PASSWORD + "\n"))
    assert f"Password of the PSKC file {path}" in result.stderr
    assert RFC_PASSWORD not in result.output
    assert serials(otpctl) == sorted(SECRETS)


def test_the_format_is_detected_from_the_content(otpctl: Otpctl, tmp_path: Path) -> None:
    pskc_named_csv = tmp_path / "vendor.csv"
    pskc_named_csv.write_bytes(pskc_bytes(KEYS[:1]))
    ok(otpctl("token", "import", str(pskc_named_csv)))
    csv_named_xml = tmp_path / "seeds.xml"
    seed = bytes(range(20)).hex()
    csv_named_xml.write_text(f"serial,secret\n62000001,{seed}\n", encoding="utf-8")
    ok(otpctl("token", "import", str(csv_named_xml)))
    assert serials(otpctl) == ["61000001", "62000001"]
    # --format overrides the detection: a PSKC file read as CSV is a bad CSV.
    other = tmp_path / "other.pskc"
    other.write_bytes(pskc_bytes(KEYS[1:]))
    assert f"{other}:1:" in failed(otpctl("token", "import", str(other), "--format", "csv"), 2)


def test_an_expiring_pskc_key_is_listed_and_reported_before_it(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    keys = [{**KEYS[0], "expiry_date": expires}, KEYS[1]]
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "psk", keys)), "--psk", RFC_PSK.hex()))
    rows = {row["serial"]: row for row in as_json(otpctl("token", "list", "--json"))}
    assert rows["61000001"]["expires"] == expires.isoformat()
    assert rows["61000002"]["expires"] is None
    report = as_json(otpctl("token", "list", "--json", "--expiring-within", "30"))
    assert [row["serial"] for row in report] == ["61000001"]
    assert as_json(otpctl("token", "list", "--json", "--expiring-within", "10")) == []
    assert "61000001" in ok(otpctl("token", "list", "--expiring-within", "21")).stdout


BAD_PSKC: list[tuple[str, bytes, list[str], str | None, str]] = [
    (
        "wrong psk",
        (DATA / "rfc6030-figure6-totp.pskcxml").read_bytes(),
        ["--psk", bytes(16).hex()],
        None,
        "wrong pre-shared key or password",
    ),
    (
        "wrong password",
        (DATA / "rfc6030-figure7-totp.pskcxml").read_bytes(),
        ["--pskc-password", "--password-stdin"],
        "letmein\n",
        "wrong pre-shared key or password",
    ),
    (
        "broken mac",
        (DATA / "rfc6030-figure6-totp-badmac.pskcxml").read_bytes(),
        ["--psk", RFC_PSK.hex()],
        None,
        "MAC check failed",
    ),
    (
        "no key given",
        (DATA / "rfc6030-figure6-totp.pskcxml").read_bytes(),
        [],
        None,
        "give the pre-shared key",
    ),
    ("not pskc", b"<html><body>seeds</body></html>", [], None, "not a PSKC file"),
    ("not xml", b"<KeyContainer><KeyPackage>", ["--format", "pskc"], None, "not well-formed"),
    (
        "hotp",
        (DATA / "rfc6030-figure3.pskcxml").read_bytes(),
        [],
        None,
        "key 12345678 (serial 987654321): HOTP (event-based) keys are not supported",
    ),
]


@pytest.mark.parametrize(
    ("data", "options", "stdin", "words"),
    [case[1:] for case in BAD_PSKC],
    ids=[case[0] for case in BAD_PSKC],
)
def test_a_bad_pskc_file_is_one_error_naming_it_and_nothing_is_imported(
    otpctl: Otpctl, tmp_path: Path, data: bytes, options: list[str], stdin: str | None, words: str
) -> None:
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain"))))
    before = as_json(otpctl("token", "list", "--json"))
    path = tmp_path / "bad.pskcxml"
    path.write_bytes(data)
    line = failed(otpctl("token", "import", str(path), *options, input=stdin), 2)
    assert line.startswith(f"otpctl: error: {path}")
    assert words in line
    assert as_json(otpctl("token", "list", "--json")) == before


def test_psk_errors_name_the_option_and_never_the_key(otpctl: Otpctl, tmp_path: Path) -> None:
    path = write_pskc(tmp_path, "psk")
    line = failed(otpctl("token", "import", str(path), "--psk", "not-hex-secretish"), 2)
    assert "--psk" in line
    assert "secretish" not in line
    assert "--psk" in failed(otpctl("token", "import", str(path), "--psk", ""), 2)
    both = otpctl("token", "import", str(path), "--psk", RFC_PSK.hex(), "--pskc-password")
    assert "not both" in failed(both, 2)
    csv_file = tmp_path / "seeds.csv"
    csv_file.write_text(f"serial,secret\n1,{bytes(range(20)).hex()}\n", encoding="utf-8")
    line = failed(otpctl("token", "import", str(csv_file), "--psk", RFC_PSK.hex()), 2)
    assert str(csv_file) in line
    assert "PSKC" in line
    # A key for a file that is not encrypted means the wrong file: refused too.
    plain = write_pskc(tmp_path, "plain")
    line = failed(otpctl("token", "import", str(plain), "--psk", RFC_PSK.hex()), 2)
    assert "not encrypted" in line
    assert serials(otpctl) == []


@pytest.mark.parametrize(
    ("options", "given"),
    [
        (["--psk", "-"], "--psk"),
        (["--psk", "-", "--password-stdin"], "--psk"),
        (["--pskc-password"], "--pskc-password"),
        (["--pskc-password", "--password-stdin"], "--pskc-password"),
        (["--psk", "-", "--format", "csv"], "--psk"),
    ],
)
def test_a_csv_file_is_refused_with_a_pskc_secret_before_it_is_asked_for(
    otpctl: Otpctl, tmp_path: Path, options: list[str], given: str
) -> None:
    # An operator asked for a key goes and finds one, for a file with nothing to decrypt.
    csv_file = tmp_path / "seeds.csv"
    csv_file.write_text(f"serial,secret\n61000009,{bytes(range(20)).hex()}\n", encoding="utf-8")
    result = otpctl("token", "import", str(csv_file), *options, input=f"{RFC_PSK.hex()}\n")
    line = failed(result, 2)
    assert line.startswith(f"otpctl: error: {csv_file}: {given} applies only to PSKC files")
    assert "read as CSV" in line
    assert "Pre-shared key" not in result.output  # no prompt was shown
    assert "Password of" not in result.output
    assert serials(otpctl) == []


def test_a_pskc_update_changes_only_what_the_file_states(otpctl: Otpctl, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    seed = SECRETS["61000001"].hex()
    first.write_text(
        f"serial,secret,algorithm,digits,period,expires\n61000001,{seed},SHA1,8,60,2020-01-01\n",
        encoding="utf-8",
    )
    ok(otpctl("token", "import", str(first)))
    # The vendor's PSKC states no ExpiryDate, digits or TimeInterval for this key.
    bare = [{"id": "k1", "serial": "61000001", "secret": SECRETS["61000001"]}]
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain", bare)), "--update"))
    (row,) = as_json(otpctl("token", "list", "--json"))
    assert (row["digits"], row["period"]) == (8, 60)
    assert row["expires"] == "2020-01-01T00:00:00+00:00"  # still expired, not revived
    # What it does state is taken.
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain")), "--update"))
    rows = {row["serial"]: row for row in as_json(otpctl("token", "list", "--json"))}
    assert (rows["61000001"]["digits"], rows["61000001"]["period"]) == (8, 30)


def test_file_read_errors_name_the_file(otpctl: Otpctl, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pskc"
    assert f"{missing}: cannot read" in failed(otpctl("token", "import", str(missing)), 2)
    assert f"{missing}: cannot read" in failed(otpctl("user", "import", str(missing)), 2)
    binary = tmp_path / "seeds.csv"
    binary.write_bytes(b"serial,secret\n\xff\xfe\n")
    assert f"{binary}:2: not UTF-8" in failed(otpctl("token", "import", str(binary)), 2)
    # A user file saved by Excel in Japan: Shift_JIS, refused at the first Japanese name.
    excel = tmp_path / "users.csv"
    excel.write_bytes("login,name,password\nhanako,データ花子,pw-12345678\n".encode("cp932"))
    line = failed(otpctl("user", "import", str(excel)), 2)
    assert line.startswith(f"otpctl: error: {excel}:2: not UTF-8 text (byte ")
    assert line.endswith("save the file as CSV UTF-8")


def test_a_present_serial_is_refused_with_file_and_line_unless_update(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain", KEYS[:1]))))
    both = write_pskc(tmp_path, "psk", [KEYS[1], {**KEYS[0], "time_interval": 60}])
    line = failed(otpctl("token", "import", str(both), "--psk", RFC_PSK.hex()), 2)
    assert f"{both}:" in line
    assert "serial 61000001 is already in the inventory (use --update)" in line
    assert serials(otpctl) == ["61000001"]
    done = ok(otpctl("token", "import", str(both), "--psk", RFC_PSK.hex(), "--update"))
    assert done.stdout == f"Imported 2 token(s) from {both}: 1 added, 1 updated.\n"
    rows = {row["serial"]: row for row in as_json(otpctl("token", "list", "--json"))}
    assert (rows["61000001"]["period"], sorted(rows)) == (60, sorted(SECRETS))


# User CSV through otpctl


def users(otpctl: Otpctl) -> dict[str, dict[str, Any]]:
    return {row["login"]: row for row in as_json(otpctl("user", "list", "--json"))}


def phc(password: str) -> str:
    """An argon2id PHC string, as another system would export it."""
    return PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(password)


def test_a_user_csv_imports_with_the_expected_states(otpctl: Otpctl, tmp_path: Path) -> None:
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain"))))
    later = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    path = tmp_path / "users.csv"
    path.write_text(
        "login,name,class,password,password_hash,start,serial\n"
        "ichiro,Ichiro Sato,admin,first-pw-1,,,\n"
        f'hanako,Hanako Suzuki,,,"{phc("migrated-pw-1")}",{later},\n'
        f'jiro,Jiro Tanaka,general,,"{phc("migrated-pw-2")}",,61000001\n'
        "saburo,Saburo Ito,general,third-pw-1,,2027-01-04,61000002\n",
        encoding="utf-8",
    )
    result = ok(otpctl("user", "import", str(path)))
    assert result.stdout.splitlines() == [
        f"Imported 4 user(s) from {path}.",
        # The import gives an admin user no confirmation password: it cannot approve yet.
        "No confirmation password yet (set it with otpctl user passwd LOGIN --confirmation): "
        "ichiro",
    ]
    assert result.stderr == ""  # no progress bar: stderr is not a terminal
    rows = users(otpctl)
    assert {login: (r["class"], r["state"], r["serial"]) for login, r in rows.items()} == {
        "ichiro": ("admin", "unregistered", None),
        "hanako": ("general", "issued", None),
        "jiro": ("general", "active", "61000001"),
        "saburo": ("general", "active", "61000002"),
    }
    assert as_json(otpctl("user", "show", "hanako", "--json"))["name"] == "Hanako Suzuki"
    # The migrated hash logs in with the password it was made from (alone: the service
    # starts later).
    check = otpctl("check", "hanako", "--password-stdin", "--json", input="migrated-pw-1\n")
    assert as_json(check)["result"] == "accept"


def test_a_bad_user_row_refuses_the_file_with_its_line(otpctl: Otpctl, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "login,name,class,password,start\n"
        "ok1,Ok One,general,pw-ok-1,\n"
        "bad,Bad Class,superuser,pw-bad-1,\n",
        encoding="utf-8",
    )
    line = failed(otpctl("user", "import", str(path)), 2)
    assert f"{path}:3:" in line
    assert "class must be master, admin or general" in line
    path.write_text(
        "login,name,password,serial\nok1,Ok One,pw-ok-1,\nok2,Ok Two,pw-ok-2,NOSUCH\n",
        encoding="utf-8",
    )
    line = failed(otpctl("user", "import", str(path)), 2)
    assert f"{path}:3: serial is not in the inventory" in line
    assert users(otpctl) == {}


def test_a_quote_left_open_is_refused_at_the_line_it_opens_on(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    # The quote runs the row on to the end of the file: naming the line the row ended on sent
    # the operator to the file's last line, which is fine, of a file of maybe 100,000.
    path = tmp_path / "users.csv"
    rows = [f"u{i},User {i},general,pw-user-{i}" for i in range(1, 41)]
    rows[3] = 'u4,"User 4,general,pw-user-4'
    path.write_text("login,name,class,password\n" + "\n".join(rows) + "\n", encoding="utf-8")
    line = failed(otpctl("user", "import", str(path)), 2)
    assert line.startswith(f"otpctl: error: {path}:5: ")
    assert line.endswith("(its quoted text runs on to line 41)")
    assert users(otpctl) == {}
    seeds = tmp_path / "seeds.csv"
    lines = [f"7100000{i},{bytes(range(20 * i, 20 * i + 20)).hex()}" for i in range(1, 6)]
    lines[1] = lines[1].replace(",", ',"')
    seeds.write_text("serial,secret\n" + "\n".join(lines) + "\n", encoding="utf-8")
    line = failed(otpctl("token", "import", str(seeds)), 2)
    assert line.startswith(f"otpctl: error: {seeds}:3: ")
    assert line.endswith("(its quoted text runs on to line 6)")


def test_user_import_update(otpctl: Otpctl, tmp_path: Path) -> None:
    ok(otpctl("token", "import", str(write_pskc(tmp_path, "plain"))))
    path = tmp_path / "users.csv"
    path.write_text("login,name,password\nshiro,Shiro,pw-shiro-1\n", encoding="utf-8")
    ok(otpctl("user", "import", str(path)))
    path.write_text(
        "login,name,class,password,start,serial\n"
        "goro,Goro,general,pw-goro-1,,\n"
        "shiro,Shiro Yamada,,pw-shiro-2,,61000001\n",
        encoding="utf-8",
    )
    line = failed(otpctl("user", "import", str(path)), 2)
    assert f"{path}:3: login shiro already exists (use --update" in line
    assert set(users(otpctl)) == {"shiro"}
    assert as_json(otpctl("user", "import", str(path), "--update", "--json")) == {
        "file": str(path),
        "imported": 2,
        "added": 1,
        "updated": 1,
    }
    rows = users(otpctl)
    assert (rows["shiro"]["name"], rows["shiro"]["state"]) == ("Shiro Yamada", "active")
    assert rows["goro"]["state"] == "unregistered"
    check = otpctl("check", "shiro", "--password-stdin", "--json", input="pw-shiro-2\n")
    assert json.loads(check.stdout)["result"] == "challenge"  # the password, then the OTP


# The installed otpctl on a terminal: a progress bar on stderr, and none otherwise


def test_the_installed_otpctl_draws_a_bar_only_on_a_terminal(
    otpctl: Otpctl, config: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "many.csv"
    seeds = (hashlib.sha1(i.to_bytes(4)).hexdigest() for i in range(12_000))  # noqa: S324
    lines = ["serial,secret"] + [f"B{i:05d},{seed}" for i, seed in enumerate(seeds)]
    tokens.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, shown = run_on_terminal(["token", "import", str(tokens)], config, on=["stderr"])
    assert status == 0, shown
    assert "Importing tokens" in shown
    assert "12000/12000" in shown
    status, shown = run_on_terminal(
        ["token", "import", str(write_pskc(tmp_path, "plain"))], config, on=["stderr"]
    )
    assert status == 0, shown
    assert "Reading and decrypting the PSKC file" in shown
    assert "4/4" in shown  # two packages, two keys
    people = tmp_path / "people.csv"
    people.write_text("login,name,password\nbar1,Bar One,pw-bar-1\n", encoding="utf-8")
    status, shown = run_on_terminal(["user", "import", str(people)], config, on=["stderr"])
    assert status == 0, shown
    assert "Importing users" in shown
    # The same command with stderr on a pipe: nothing at all.
    people.write_text("login,name,password\nbar2,Bar Two,pw-bar-2\n", encoding="utf-8")
    piped = subprocess.run(
        [*otpctl_program(), "--config", str(config), "user", "import", str(people)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert piped.stderr == ""
    assert "Imported 1 user(s)" in piped.stdout


def test_a_seed_already_in_the_inventory_is_refused_under_a_new_serial(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    """A vendor's file delivered again under new serials: one error, nothing imported."""
    first = tmp_path / "batch1.csv"
    seed = SECRETS["61000001"]
    first.write_text(f"serial,secret\n62000001,{seed.hex()}\n", encoding="utf-8")
    ok(otpctl("token", "import", str(first)))
    again = write_pskc(tmp_path, "plain", KEYS)  # 61000001 holds 62000001's seed
    result = otpctl("token", "import", str(again))
    line = failed(result, 2)
    assert line.startswith(f"otpctl: error: {again}:")
    assert line.endswith(
        "serial 61000001 has the seed of token 62000001, already in the inventory: "
        "every token needs a seed of its own"
    )
    assert seed.hex() not in result.output
    assert base64.b32encode(seed).decode() not in result.output
    assert serials(otpctl) == ["62000001"]
    # The same file delivered again for the same serials updates them.
    ok(otpctl("token", "import", str(first), "--update"))
    assert serials(otpctl) == ["62000001"]


def test_a_pskc_value_python_pskc_cannot_read_is_named_by_line(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    path = write_pskc(tmp_path, "plain")
    path.write_bytes(path.read_bytes().replace(b'Length="8"', b'Length="eight"'))
    key_lines = [
        n for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if b"<pskc:Key " in line
    ]
    message = failed(otpctl("token", "import", str(path)), 2)
    assert message.startswith(f"otpctl: error: {path}:{key_lines[1]}: not a valid PSKC file: ")
    assert serials(otpctl) == []  # the first key, which read well, is not imported either


def test_an_import_onto_a_full_disk_is_a_storage_error_and_writes_nothing(
    otpctl: Otpctl, config: Path, tmp_path: Path
) -> None:
    # A file size limit stands in for a full disk: the write fails in SQLite as it would
    # there. It was "database unavailable: OperationalError", status 69, which sends the
    # operator looking for a database server that is not away, and says nothing of the disk.
    hashed = phc("pw-imported")
    rows = "".join(f'user{n:05d},Name {n},general,"{hashed}"\n' for n in range(3000))
    file = tmp_path / "users.csv"
    file.write_text("login,name,class,password_hash\n" + rows, encoding="utf-8")
    limit = 200 * 1024  # above the fresh database, below it with every row of the file

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(config), "user", "import", str(file)],
        capture_output=True, text=True, preexec_fn=small_files, check=False,
    )  # fmt: skip
    assert done.returncode == 74, done.stderr
    assert done.stderr == (
        f"otpctl: error: sqlite:///{tmp_path / 'otpradius.db'}: OperationalError: disk I/O error\n"
    )
    assert users(otpctl) == {}
    ok(otpctl("user", "import", str(file)))  # once there is room, the same file imports
    assert len(users(otpctl)) == 3000
