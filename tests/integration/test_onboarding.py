"""Onboarding on a real SQLite file: the user CSV import (SPEC §7) and software tokens from
enrolment to a working login."""

from __future__ import annotations

import base64
import subprocess
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from otpcore.app import App
from otpcore.attempts import AuthRequest
from otpcore.enroll import new_software_token, otpauth_uri, qr_png
from otpcore.errors import ImportRefused, PermissionDenied
from otpcore.model import OtpState, Reason, Result, UserClass
from otpcore.onboarding import import_users
from otpcore.token_csv import TokenSpec
from otpcore.totp import totp
from otpcore.user_csv import read_user_csv
from otpcore.views import Imported
from tests.conftest import BOTH_BACKENDS, T0, require_command

pytestmark = BOTH_BACKENDS

SERIAL = "23456789"
SECRET = b"12345678901234567890"


def with_token(app: App, serial: str = SERIAL) -> TokenSpec:
    spec = TokenSpec(serial, SECRET, period=60)
    app.admin().import_tokens([spec])
    return spec


def run_import(app: App, text: str, *, update: bool = False, name: str = "users.csv") -> Imported:
    rows = read_user_csv(text, name)
    return import_users(app.store, app.hashing, app.clock, rows, update=update, source=name)


def login(app: App, user: str, password: str) -> tuple[Result, Reason]:
    outcome = app.authenticator().authenticate(AuthRequest(user, password))
    return outcome.result, outcome.reason


def snapshot(app: App) -> tuple[object, ...]:
    admin = app.admin()
    return (tuple(admin.users()), tuple(admin.tokens()), len(admin.audit()))


# User CSV


def test_users_import_with_their_states(app: App) -> None:
    spec = with_token(app)
    phc = app.hashing.hash("migrated-pw-1")
    text = (
        "login,name,class,password,password_hash,start,serial\n"
        "chirodt,Chiro Tanaka,master,first-pw-1,,,\n"
        "hanakos,Hanako Suzuki,,,"
        f'"{phc}",2026-11-15,\n'
        "satoi,Sato Ichiro,admin,second-pw-2,,2027-04-01,\n"
        f"yamadat,Yamada Taro,general,third-pw-3,,,{SERIAL}\n"
    )
    # Imported master and admin users still need their confirmation password: named.
    assert run_import(app, text) == Imported(4, 0, ("chirodt", "satoi"))
    users = {u.login: u for u in app.admin().users()}
    assert {login: (u.user_class, u.state, u.serial) for login, u in users.items()} == {
        "chirodt": (UserClass.MASTER, OtpState.UNREGISTERED, None),
        "hanakos": (UserClass.GENERAL, OtpState.ISSUED, None),
        "satoi": (UserClass.ADMIN, OtpState.ISSUED, None),
        "yamadat": (UserClass.GENERAL, OtpState.ACTIVE, SERIAL),
    }
    # Plain passwords were hashed, imported hashes kept: both log in.
    assert login(app, "chirodt", "first-pw-1") == (Result.ACCEPT, Reason.PASSWORD_ONLY)
    assert login(app, "chirodt", "wrong") == (Result.REJECT, Reason.BAD_PASSWORD)
    # hanakos's start date has come: the password leads to activation.
    assert login(app, "hanakos", "migrated-pw-1") == (Result.CHALLENGE, Reason.SERIAL_CHALLENGE)
    # satoi's start date is ahead: the password alone is accepted.
    assert login(app, "satoi", "second-pw-2") == (Result.ACCEPT, Reason.PASSWORD_ONLY)
    # yamadat's migrated binding works at once with password + OTP.
    otp = totp(spec.secret, T0, spec.period, spec.digits, spec.algorithm)
    assert login(app, "yamadat", "third-pw-3" + otp) == (Result.ACCEPT, Reason.OK)


def test_one_audit_event_records_the_import(app: App) -> None:
    before = len(app.admin().audit())
    run_import(app, "login,name,password\nu1,One,pw-one-1\nu2,Two,pw-two-2\n", name="batch7.csv")
    events = app.admin().audit()[before:]
    assert len(events) == 1
    assert events[0].action == "user_import"
    assert "batch7.csv" in events[0].detail
    assert "2 added" in events[0].detail
    assert "pw-one-1" not in repr(events[0])


def test_progress_counts_hashing_and_writing_up_to_the_total(app: App) -> None:
    phc = app.hashing.hash("x-pw-0000")
    rows = read_user_csv(
        "login,name,password,password_hash\n"
        + "".join(f"p{i},P {i},pw-{i:06d},\n" for i in range(5))
        + "".join(f'h{i},H {i},,"{phc}"\n' for i in range(7)),
        "f",
    )
    seen: list[tuple[int, int]] = []
    import_users(app.store, app.hashing, app.clock, rows, progress=lambda d, t: seen.append((d, t)))
    assert {total for _, total in seen} == {5 + 12}
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert done[-1] == 17


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("u9,Nine,chief,pw-999999,,", "class must be"),
        ("u9,Nine,general,pw-999999,2026-02-30,", "not a date"),
        ("u9,Nine,general,pw-999999,,99999999", "serial is not in the inventory"),
        ("u1,One again,general,pw-999999,,", "login u1 repeats line 2"),
        ("u9,Nine,general,pw-999999,", "fewer fields than columns"),
        ("u9,Nine,general,pw-999999,,,,", "more fields than columns"),
        ("present,Present,general,pw-999999,,", "login present already exists"),
    ],
)
def test_a_bad_row_refuses_the_whole_file_with_its_line(app: App, row: str, words: str) -> None:
    with_token(app)
    run_import(app, "login,name,password\npresent,Present,pw-present-1\n", name="earlier.csv")
    before = snapshot(app)
    text = (
        "login,name,class,password,start,serial\n"
        f"u1,One,general,pw-111111,,{SERIAL}\n"
        f"{row}\n"
        "u3,Three,general,pw-333333,2026-12-01,\n"
    )
    with pytest.raises(ImportRefused) as caught:
        run_import(app, text)
    assert str(caught.value).startswith("users.csv:3: ")
    assert words in str(caught.value)
    assert "pw-" not in str(caught.value)
    assert snapshot(app) == before


def test_a_bad_password_hash_is_refused_and_nothing_written(app: App) -> None:
    before = snapshot(app)
    text = 'login,name,password_hash\nu1,One,"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA"\n'
    with pytest.raises(ImportRefused, match=r"users.csv:2: .*argon2"):
        run_import(app, text)
    assert snapshot(app) == before


def test_update_changes_present_users_and_adds_new_ones(app: App) -> None:
    with_token(app)
    run_import(app, "login,name,class,password\nboss,Boss,admin,pw-boss-1\nclerk,Clerk,,pw-c-1\n")
    app.admin().set_password("boss", "confirm-boss-9", confirmation=True)
    text = (
        "login,name,class,password,start,serial\n"
        f"boss,The Boss,,pw-boss-2,,{SERIAL}\n"
        "clerk,Clerk,,pw-c-2,2026-12-24,\n"
        "newbie,Newbie,,pw-n-1,,\n"
    )
    with pytest.raises(ImportRefused, match="boss already exists"):
        run_import(app, text)
    assert run_import(app, text, update=True) == Imported(1, 2)
    users = {u.login: u for u in app.admin().users()}
    # An empty class cell leaves the class; a given serial binds; a given start issues.
    assert (users["boss"].name, users["boss"].user_class) == ("The Boss", UserClass.ADMIN)
    assert (users["boss"].state, users["boss"].serial) == (OtpState.ACTIVE, SERIAL)
    assert users["clerk"].start_date == date(2026, 12, 24)
    assert users["newbie"].user_class is UserClass.GENERAL
    assert login(app, "clerk", "pw-c-2")[0] is Result.ACCEPT
    assert login(app, "clerk", "pw-c-1") == (Result.REJECT, Reason.BAD_PASSWORD)
    # The confirmation password of an admin survives an update that keeps the class.
    app.admin().confirm("boss", "confirm-boss-9", "unlock")


def test_an_update_with_a_start_date_issues_as_user_issue_does(app: App) -> None:
    with_token(app)
    run_import(app, "login,name,class,password,serial\n"
                    f"boss,Boss,admin,pw-boss-1,\nclerk,Clerk,,pw-c-1,{SERIAL}\n")  # fmt: skip
    app.admin().set_password("boss", "confirm-boss-9", confirmation=True)
    app.admin().revoke("boss", "confirm-boss-9", ["clerk"])
    assert app.admin().user("clerk").state is OtpState.REVOKED
    # A start date makes the revoked user issued: password alone until that day, not an
    # activation at once.
    run_import(app, "login,name,password,start\nclerk,Clerk,pw-c-1,2099-01-01\n", update=True)
    assert app.admin().user("clerk").state is OtpState.ISSUED
    assert login(app, "clerk", "pw-c-1") == (Result.ACCEPT, Reason.PASSWORD_ONLY)
    # A bound user is refused, naming the line, as user issue refuses it; nothing written.
    run_import(app, f"login,name,password,serial\nclerk,Clerk,pw-c-1,{SERIAL}\n", update=True)
    before = snapshot(app)
    text = "login,name,password,start\nboss,Boss,pw-b,2099-01-01\nclerk,Clerk,pw-c,2099-02-01\n"
    with pytest.raises(ImportRefused, match=rf"users.csv:3: user clerk already has token {SERIAL}"):
        run_import(app, text, update=True)
    assert snapshot(app) == before


def test_an_update_moving_a_tokens_last_user_away_releases_the_token(app: App) -> None:
    # Suspended with users bound, the token is theirs to unlock; once the import has moved the
    # last of them to another token nobody could, and it refused every activation for ever.
    spec = with_token(app)
    app.admin().import_tokens([TokenSpec("99990000", bytes(range(40, 60)), period=60)])
    header = "login,name,password,serial\n"
    run_import(app, f"{header}taro,Taro,pw-taro-1,{SERIAL}\njiro,Jiro,pw-jiro-1,{SERIAL}\n")
    shown = totp(spec.secret, T0, spec.period, spec.digits, spec.algorithm)
    wrong = next(c for c in ("000000", "111111") if c != shown)
    for _ in range(5):
        assert login(app, "taro", "pw-taro-1" + wrong) == (Result.REJECT, Reason.BAD_OTP)
    (old,) = [t for t in app.admin().tokens() if t.serial == SERIAL]
    assert old.suspended

    def moved(text: str) -> tuple[bool, int, tuple[str, ...], str]:
        run_import(app, header + text, update=True)
        (old,) = [t for t in app.admin().tokens() if t.serial == SERIAL]
        return old.suspended, old.fail_count, old.users, app.admin().audit()[-1].detail

    # jiro still uses it: lifting its suspension is an unlock's, with him selected.
    assert moved("taro,Taro,pw-taro-1,99990000\n")[:3] == (True, 5, ("jiro",))
    suspended, failures, users, detail = moved("jiro,Jiro,pw-jiro-1,99990000\n")
    assert (suspended, failures, users) == (False, 0, ())
    assert detail.endswith(f"suspension lifted, no users left: {SERIAL}")
    # Found again, it can be handed to somebody else.
    run_import(app, f"login,name,password,start\nhana,Hana,pw-hana-1,{T0.date()}\n")
    outcome = app.authenticator().activate("hana", SERIAL, shown)
    assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.ACTIVATED)


def test_demoting_to_general_drops_the_confirmation_password(app: App) -> None:
    run_import(app, "login,name,class,password\nboss,Boss,admin,pw-boss-1\n")
    app.admin().set_password("boss", "confirm-boss-9", confirmation=True)
    run_import(app, "login,name,class,password\nboss,Boss,general,pw-boss-1\n", update=True)
    assert app.admin().user("boss").user_class is UserClass.GENERAL
    with pytest.raises(PermissionDenied, match="not a master or admin"):
        app.admin().confirm("boss", "confirm-boss-9", "unlock")


def test_a_large_import_still_names_whom_it_makes_master_or_admin(app: App) -> None:
    phc = app.hashing.hash("shared-pw-1")
    customers = "".join(f'c{i:04d},Customer {i},general,"{phc}"\n' for i in range(150))
    text = "login,name,class,password_hash\n" + customers + f'mole,Mole,admin,"{phc}"\n'
    run_import(app, text, name="bulk.csv")
    event = app.admin().audit()[-1]
    # Too many rows to name each customer, but the one given approval rights is named.
    assert event.targets == ("mole",)
    assert "151 added" in event.detail
    assert "1 of class master or admin" in event.detail
    # And a promotion by update, among as many customers, too.
    update = customers.replace(",general,", ",,").replace("149,,", "149,master,")
    run_import(app, "login,name,class,password_hash\n" + update, update=True)
    assert app.admin().audit()[-1].targets == ("c0149",)


def test_an_update_may_not_make_the_login_password_the_confirmation_password(app: App) -> None:
    run_import(app, "login,name,class,password\nboss,Boss,admin,pw-boss-1\n")
    app.admin().set_password("boss", "confirm-boss-9", confirmation=True)
    before = snapshot(app)
    text = "login,name,password\nclerk,Clerk,pw-clerk-1\nboss,Boss,confirm-boss-9\n"
    with pytest.raises(ImportRefused) as refused:
        run_import(app, text, update=True, name="fix.csv")
    assert (refused.value.line, str(refused.value).count("confirm-boss-9")) == (3, 0)
    assert "boss: the login password must differ from the confirmation password" in str(
        refused.value
    )
    assert snapshot(app) == before
    assert login(app, "boss", "pw-boss-1") == (Result.ACCEPT, Reason.PASSWORD_ONLY)
    # Demoted in the same row, the confirmation password goes: nothing to confuse it with.
    run_import(app, "login,name,class,password\nboss,Boss,general,confirm-boss-9\n", update=True)
    assert login(app, "boss", "confirm-boss-9") == (Result.ACCEPT, Reason.PASSWORD_ONLY)


def test_a_thousand_rows_with_hashes_import_in_one_go(app: App) -> None:
    phc = app.hashing.hash("shared-pw-1")
    text = "login,name,password_hash\n" + "".join(
        f'u{i:05d},User {i},"{phc}"\n' for i in range(1000)
    )
    assert run_import(app, text) == Imported(1000, 0)
    assert len(app.admin().users()) == 1000


# Software tokens, from enrolment to a login


def test_an_enrolled_software_token_activates_with_oathtool_codes_from_its_uri(
    app: App, tmp_path: Path
) -> None:
    oathtool = require_command("oathtool")
    zbarimg = require_command("zbarimg")
    spec = new_software_token(None)
    app.admin().import_tokens([spec])
    uri = otpauth_uri(spec, app.settings.tokens.issuer)
    png = tmp_path / "qr.png"
    qr_png(uri, png)
    scanned = subprocess.run(
        [zbarimg, "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert scanned == uri
    query = parse_qs(urlsplit(scanned).query)
    secret = query["secret"][0]
    assert base64.b32decode(secret + "=" * (-len(secret) % 8)) == spec.secret
    when = T0.strftime("%Y-%m-%d %H:%M:%S UTC")
    otp = subprocess.run(
        [oathtool, "--totp", "-b", "--now", when, secret],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()

    run_import(app, "login,name,password,start\nmobile,Mobile User,pw-mobile-1,2026-11-30\n")
    outcome = app.authenticator().activate("mobile", spec.serial, otp)
    assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.ACTIVATED)
    listing = next(t for t in app.admin().tokens() if t.serial == spec.serial)
    assert (listing.kind, listing.period, listing.users) == ("software", 30, ("mobile",))
