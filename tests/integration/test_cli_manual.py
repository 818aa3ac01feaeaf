"""The bank manual, replayed through the real ``otpctl`` program and nothing else (issue 2).

The users of the manual's screens — hanskodt データ花子 (admin), chirodt データ一郎 and
jirodt データ二郎 (general), saburodt データ三郎 (master) — get their tokens, activate them
(hanskodt and jirodt share 12345678), lose OTP authentication after five wrong OTPs, are
unlocked by an administrator, revoked, registered again; and a token expires. Every OTP
comes from ``oathtool`` for the wall clock, which is the clock otpctl reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_HASHING
from tests.integration.cli_support import OathtoolCodes, otpctl_program

PERIOD = 30
SEEDS = {
    "12345678": "3132333435363738393031323334353637383930",
    "23456789": "00112233445566778899aabbccddeeff01234567",
    "98765432": "8899aabbccddeeff00112233445566778899aabb",
    "78140641": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
    "78140642": "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9",
}
USERS = {  # login: (name, class, login password, confirmation password)
    "hanskodt": ("データ花子", "admin", "hanako-Login-1", "hanako-Confirm-1"),
    "chirodt": ("データ一郎", "general", "ichiro-Login-1", None),
    "jirodt": ("データ二郎", "general", "jiro-Login-1", None),
    "saburodt": ("データ三郎", "master", "saburo-Login-1", "saburo-Confirm-1"),
    "sachikodt": ("データ幸子", "general", "sachiko-Login-1", None),
}


@dataclass
class Operator:
    """Runs otpctl as an operator would, keeping every output to search for leaked secrets."""

    config: Path
    program: list[str] = field(default_factory=otpctl_program)
    transcript: list[str] = field(default_factory=list)

    def run(self, *args: str, stdin: str = "", code: int = 0) -> subprocess.CompletedProcess[str]:
        """``otpctl ARGS`` with the given standard input; asserts the exit status."""
        env = {
            **os.environ,
            "OTPRADIUS_CONFIG": str(self.config),
            "LANG": "C.UTF-8",
            # Japan time, as the manual's screens show it (有効期限 … 09時00分).
            "TZ": "JST-9",
        }
        env.pop("OTPRADIUS_DEBUG", None)
        done = subprocess.run(
            [*self.program, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        self.transcript += [done.stdout, done.stderr]
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str, stdin: str = "", code: int = 0) -> Any:
        """The JSON a command printed."""
        return json.loads(self.run(*args, "--json", stdin=stdin, code=code).stdout)

    def users(self) -> dict[str, dict[str, Any]]:
        """``otpctl user list --json`` keyed by login."""
        return {row["login"]: row for row in self.json("user", "list")}

    def check(self, login: str, *answers: str, code: int) -> dict[str, str]:
        """``otpctl check`` fed the user's password and then the answers."""
        lines = "".join(f"{line}\n" for line in (USERS[login][2], *answers))
        result: dict[str, str] = self.json(
            "check", login, "--password-stdin", stdin=lines, code=code
        )
        return result

    def confirm(self, admin: str) -> str:
        """The admin's confirmation password as a line of input."""
        return f"{USERS[admin][3]}\n"


def write_config(folder: Path) -> Path:
    """A configuration with cheap hashing and otherwise the defaults."""
    hashing = "\n".join(f"{key} = {value}" for key, value in FAST_HASHING.items())
    path = folder / "config.toml"
    path.write_text(
        f"[hashing]\n{hashing}\n\n[logging]\nsyslog = false\n\n"
        '[[clients]]\nname = "portal"\naddress = "127.0.0.1/32"\nsecret = "portal-secret-123"\n',
        encoding="utf-8",
    )
    return path


def write_csv(path: Path, rows: dict[str, str]) -> Path:
    """A token CSV: serial -> expiry (may be empty), seeds from SEEDS, period 30."""
    lines = ["serial,secret,period,expires"]
    lines += [f"{serial},{SEEDS[serial]},{PERIOD},{expires}" for serial, expires in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.service  # oathtool
def test_the_manual_through_otpctl(tmp_path: Path) -> None:
    oath = OathtoolCodes({serial: bytes.fromhex(seed) for serial, seed in SEEDS.items()})
    op = Operator(write_config(tmp_path))
    today = datetime.now(UTC).date().isoformat()

    # Set-up: key file and schema.
    assert "Created the database schema" in op.run("init").stdout

    # The users of the manual's screens, with their classes (利用者区分).
    for login, (name, user_class, password, confirmation) in USERS.items():
        secrets = password + "\n" + (f"{confirmation}\n" if confirmation else "")
        args = ("user", "add", login, "--name", name, "--class", user_class, "--password-stdin")
        op.run(*args, stdin=secrets)
    users = op.users()
    assert {login: row["class"] for login, row in users.items()} == {
        login: spec[1] for login, spec in USERS.items()
    }
    assert {row["state"] for row in users.values()} == {"unregistered"}
    table = op.run("user", "list", "--lang", "ja").stdout
    for label in ("管理者ユーザ", "一般ユーザ", "マスターユーザ", "未登録", "利用可能"):
        assert label in table

    # The bank's tokens go into the inventory.
    tokens_csv = write_csv(
        tmp_path / "tokens.csv",
        {"12345678": "2030-09-30", "23456789": "2030-09-30", "98765432": "", "78140641": ""},
    )
    assert "Imported 4 token(s)" in op.run("token", "import", str(tokens_csv)).stdout
    assert [row["users"] for row in op.json("token", "list")] == [[], [], [], []]

    # STEP 1: the bank sends each user a token and a letter with the start date (利用開始日).
    # Before the start date the password alone logs in.
    op.run("user", "issue", "chirodt", "--start", "2099-04-01")
    assert op.check("chirodt", code=0) == {"result": "accept", "reason": "password_only"}
    for login in USERS:
        op.run("user", "issue", login, "--start", today)
    assert {row["state"] for row in op.users().values()} == {"issued"}
    assert "トークン発行済み" in op.run("user", "list", "--lang", "ja").stdout
    # From the start date, ID + password leads to activation: the serial is asked for.
    assert op.check("chirodt", code=10) == {"result": "challenge", "reason": "serial_challenge"}

    # STEP 2: 利用開始登録 — serial number and current OTP.
    for login, serial in (("hanskodt", "12345678"), ("chirodt", "23456789")):
        done = op.run("activate", login, serial, "--password-stdin", stdin=oath.fresh(serial))
        assert done.stdout.startswith("accept: activated")
    # saburodt registers through the login dialogue itself: password, serial, OTP.
    answers = ("98765432", oath.fresh("98765432"))
    assert op.check("saburodt", *answers, code=0) == {"result": "accept", "reason": "activated"}
    # 【参考2】 jirodt registers the token hanskodt already uses: they now share it.
    op.run("activate", "jirodt", "12345678", "--password-stdin", stdin=oath.fresh("12345678"))
    users = op.users()
    assert users["hanskodt"]["serial"] == users["jirodt"]["serial"] == "12345678"
    assert {users[login]["state"] for login in ("hanskodt", "jirodt", "chirodt", "saburodt")} == {
        "active"
    }
    shared = {row["serial"]: row for row in op.json("token", "list")}["12345678"]
    assert shared["users"] == ["hanskodt", "jirodt"]
    table = op.run("user", "list", "--lang", "ja").stdout
    assert "サービス利用中" in table
    assert "2030年09月30日 09時00分 JST" in table  # midnight UTC, shown in Japan time

    # From now on every login needs ID + password + OTP.
    assert op.check("chirodt", oath.fresh("23456789"), code=0) == {
        "result": "accept",
        "reason": "ok",
    }

    # 利用停止: five wrong OTPs in a row suspend the token, for both users sharing it.
    for _ in range(5):
        assert op.check("jirodt", oath.wrong("12345678"), code=1) == {
            "result": "reject",
            "reason": "bad_otp",
        }
    users = op.users()
    assert users["jirodt"]["suspended"] is True
    assert users["hanskodt"]["suspended"] is True
    assert [users[login]["suspended"] for login in ("chirodt", "saburodt")] == [False, False]
    assert "停止中" in op.run("user", "list", "--lang", "ja").stdout
    # While suspended even the right OTP is not checked.
    right = oath.at("12345678", int(time.time()) // PERIOD)
    assert op.check("hanskodt", right, code=1) == {"result": "reject", "reason": "token_suspended"}

    # 利用停止解除 needs a master or admin user's confirmation password (確認用パスワード).
    wrong = op.run(
        "unlock", "--admin", "saburodt", "jirodt", "--password-stdin", stdin="nope\n", code=5
    )
    assert wrong.stderr.strip() == "otpctl: error: wrong confirmation password for saburodt"
    general = op.run(
        "unlock", "--admin", "chirodt", "jirodt", "--password-stdin", stdin="anything\n", code=5
    )
    assert "not a master or admin user" in general.stderr
    assert op.users()["jirodt"]["suspended"] is True  # nothing changed
    # The administrator selects jirodt; hanskodt, on the same serial, is lifted too.
    unlocked = op.run(
        "unlock", "--admin", "hanskodt", "jirodt", "--password-stdin", "--lang", "ja",
        stdin=op.confirm("hanskodt"),
    ).stdout.splitlines()  # fmt: skip
    assert unlocked[0] == "以下の利用者に対して、ワンタイムパスワードの利用停止状態を解除しました。"
    assert [line.split() for line in unlocked[2:]] == [
        ["hanskodt", "データ花子", "管理者ユーザ", "12345678", "サービス利用中", "利用可能"],
        ["jirodt", "データ二郎", "一般ユーザ", "12345678", "サービス利用中", "利用可能"],
    ]
    assert not any(row["suspended"] for row in op.users().values())
    assert op.check("jirodt", oath.fresh("12345678"), code=0) == {
        "result": "accept",
        "reason": "ok",
    }

    # 失効: chirodt lost the token; the master user revokes it.
    revoked = op.run(
        "revoke", "--admin", "saburodt", "chirodt", "--password-stdin", "--lang", "ja",
        stdin=op.confirm("saburodt"),
    ).stdout.splitlines()  # fmt: skip
    assert revoked[0] == "以下の利用者のトークンを失効しました。"
    assert revoked[1].split() == [
        "ログインID", "利用者名", "利用者区分", "シリアル番号", "ワンタイムパスワード状態",
        "トークン有効期限",
    ]  # fmt: skip
    assert revoked[2].split() == [
        "chirodt", "データ一郎", "一般ユーザ", "23456789", "失効中",
        "2030年09月30日", "09時00分", "JST",
    ]  # fmt: skip
    users = op.users()
    assert (users["chirodt"]["state"], users["chirodt"]["serial"]) == ("revoked", None)
    assert users["hanskodt"]["state"] == users["jirodt"]["state"] == "active"
    assert "23456789" in {row["serial"] for row in op.json("token", "list")}
    # A revoked user is asked to register a token again.
    assert op.check("chirodt", code=10) == {"result": "challenge", "reason": "serial_challenge"}

    # 【参考】 a revoked token can be registered again: issue, then activate.
    op.run("user", "issue", "chirodt", "--start", today)
    again = op.run(
        "activate", "chirodt", "23456789", "--password-stdin", stdin=oath.fresh("23456789")
    )
    assert again.stdout.startswith("accept: activated")
    assert op.users()["chirodt"]["state"] == "active"
    assert op.check("chirodt", oath.fresh("23456789"), code=0) == {
        "result": "accept",
        "reason": "ok",
    }

    # 有効期限: sachikodt's token reaches its expiry (the bank's file now says 2020-01-01).
    op.run("activate", "sachikodt", "78140641", "--password-stdin", stdin=oath.fresh("78140641"))
    expired_csv = write_csv(tmp_path / "expiry.csv", {"78140641": "2020-01-01"})
    op.run("token", "import", str(expired_csv), "--update")
    sachiko = op.users()["sachikodt"]
    assert (sachiko["state"], sachiko["token_expires"]) == ("expired", "2020-01-01T00:00:00+00:00")
    assert "トークン有効期限切れ" in op.run("user", "list", "--lang", "ja").stdout
    code = oath.fresh("78140641")
    assert op.check("sachikodt", code, code=1) == {"result": "reject", "reason": "token_expired"}
    expiring = op.json("token", "list", "--expiring-within", "30")
    assert [row["serial"] for row in expiring] == ["78140641"]
    # The administrator revokes the expired token; it cannot be registered again, a new one can.
    op.run(
        "revoke",
        "--admin",
        "hanskodt",
        "sachikodt",
        "--password-stdin",
        stdin=op.confirm("hanskodt"),
    )
    refused = op.run("activate", "sachikodt", "78140641", "--password-stdin", stdin=code, code=1)
    assert refused.stdout.startswith("reject: bad_serial")
    op.run("token", "import", str(write_csv(tmp_path / "new.csv", {"78140642": "2031-09-30"})))
    op.run("activate", "sachikodt", "78140642", "--password-stdin", stdin=oath.fresh("78140642"))
    assert op.users()["sachikodt"]["state"] == "active"

    # The audit trail has every operation, refusals included.
    events = op.json("audit")
    seen = {(e["action"], e["outcome"]) for e in events}
    for expected in (
        ("user_add", "ok"), ("token_import", "ok"), ("issue", "ok"), ("activate", "ok"),
        ("suspend", "ok"), ("unlock", "denied"), ("unlock", "ok"), ("revoke", "ok"),
    ):  # fmt: skip
        assert expected in seen
    suspend = next(e for e in events if e["action"] == "suspend")
    assert suspend["targets"] == ["hanskodt", "jirodt"]
    assert "利用停止解除" in op.run("audit", "--lang", "ja").stdout

    # No password, confirmation password or seed ever appeared in any output.
    text = "\n".join(op.transcript)
    for _name, _class, password, confirmation in USERS.values():
        assert password not in text
        assert confirmation is None or confirmation not in text
    for seed in SEEDS.values():
        assert seed not in text


def test_errors_leave_the_program_as_one_line_and_an_exit_status(tmp_path: Path) -> None:
    missing = Operator(tmp_path / "absent.toml")
    done = missing.run("user", "list", code=78)
    assert done.stderr.splitlines() == [
        f"otpctl: error: {tmp_path / 'absent.toml'}: configuration file not found "
        "(give --config PATH or set OTPRADIUS_CONFIG)"
    ]
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\nworkers = 2\n[policy\n", encoding="utf-8")
    done = Operator(broken).run("init", code=78)
    assert len(done.stderr.splitlines()) == 1
    assert f"{broken}: invalid TOML" in done.stderr
    assert "line 3" in done.stderr
    assert "Traceback" not in done.stderr
