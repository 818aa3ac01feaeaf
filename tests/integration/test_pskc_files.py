"""PSKC files into the inventory: their codes activate, their expiry is enforced and reported,
and a refused file changes nothing."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otpcore.app import App
from otpcore.errors import AlreadyExists, ImportRefused
from otpcore.model import Algorithm, OtpState, Reason, Result, UserClass
from otpcore.ports import FrozenClock
from otpcore.pskc_import import read_pskc
from otpcore.token_csv import TokenSpec
from otpcore.totp import totp
from tests.conftest import T0, require_command
from tests.unit.test_pskc_import import DATA, RFC_PASSWORD, RFC_PSK, RFC_SECRET, pskc_bytes

ISSUED = date(2026, 11, 1)  # before the frozen clock's T0 (2026-12-01)
PROTECTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "psk": {"psk": RFC_PSK},
    "pbkdf2": {"password": RFC_PASSWORD},
}


def vendor_keys() -> list[dict[str, Any]]:
    return [
        {"id": "k1", "serial": "70000001", "secret": bytes(range(20)), "time_interval": 60},
        {
            "id": "k2",
            "serial": "70000002",
            "secret": bytes(range(32)),
            "algorithm_suite": "HMAC-SHA256",
            "response_length": 8,
            "time_interval": 30,
        },
        {
            "id": "k3",
            "serial": "70000003",
            "secret": bytes(range(64)),
            "algorithm_suite": "HMAC-SHA512",
            "response_length": 6,
        },
    ]


def snapshot(app: App) -> tuple[object, ...]:
    admin = app.admin()
    return (tuple(admin.tokens()), tuple(admin.users()), len(admin.audit()))


def issued_user(app: App, login: str) -> None:
    admin = app.admin()
    admin.add_user(login, login.title(), UserClass.GENERAL, f"pw-{login}-123")
    admin.issue(login, ISSUED)


def code(spec: TokenSpec, at: datetime) -> str:
    return totp(spec.secret, at, spec.period, spec.digits, spec.algorithm)


def activate(app: App, login: str, spec: TokenSpec, otp: str) -> tuple[Result, Reason]:
    outcome = app.authenticator().activate(login, spec.serial, otp)
    return outcome.result, outcome.reason


def stored_drift(app: App, serial: str) -> int:
    """The clock offset the inventory holds for ``serial``."""
    record = app.hot.token(serial)
    assert record is not None
    return record.drift


@pytest.mark.parametrize("protection", list(PROTECTIONS))
def test_python_pskc_files_import_and_their_codes_activate(app: App, protection: str) -> None:
    data = pskc_bytes(vendor_keys(), protection)
    specs = read_pskc(data, "vendor.pskc", **PROTECTIONS[protection])
    assert app.admin().import_tokens(specs).total == 3
    listed = {t.serial: t for t in app.admin().tokens()}
    assert {(t.serial, t.kind, t.algorithm, t.digits, t.period) for t in listed.values()} == {
        ("70000001", "hardware", "SHA1", 6, 60),
        ("70000002", "hardware", "SHA256", 8, 30),
        ("70000003", "hardware", "SHA512", 6, 60),  # no TimeInterval: the hardware default
    }
    for number, spec in enumerate(specs):
        login = f"user{number}"
        issued_user(app, login)
        assert activate(app, login, spec, code(spec, T0)) == (Result.ACCEPT, Reason.ACTIVATED)
        assert app.admin().user(login).state is OtpState.ACTIVE


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("rfc6030-figure6-totp.pskcxml", {"psk": RFC_PSK}),
        ("rfc6030-figure7-totp.pskcxml", {"password": RFC_PASSWORD}),
    ],
)
def test_the_rfc_figures_as_totp_import_and_activate(
    app: App, name: str, kwargs: dict[str, Any]
) -> None:
    (spec,) = read_pskc((DATA / name).read_bytes(), name, **kwargs)
    app.admin().import_tokens([spec])
    issued_user(app, "jsmith")
    otp = totp(RFC_SECRET, T0, 60, 8, Algorithm.SHA1)  # no TimeInterval: 60 s, as hardware
    assert activate(app, "jsmith", spec, otp) == (Result.ACCEPT, Reason.ACTIVATED)


def test_codes_from_oathtool_activate_an_imported_key(app: App) -> None:
    oathtool = require_command("oathtool")
    specs = read_pskc(pskc_bytes(vendor_keys(), "psk"), "vendor.pskc", psk=RFC_PSK)
    app.admin().import_tokens(specs)
    spec = specs[1]  # SHA256, 8 digits, 30 s
    when = T0.strftime("%Y-%m-%d %H:%M:%S UTC")
    result = subprocess.run(
        [oathtool, "--totp=sha256", "-d", "8", "-s", "30", "--now", when, spec.secret.hex()],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    issued_user(app, "oath")
    assert activate(app, "oath", spec, result.stdout.strip()) == (Result.ACCEPT, Reason.ACTIVATED)


def test_a_pskc_expiry_date_is_shown_reported_and_enforced(app: App, clock: FrozenClock) -> None:
    expires = datetime(2026, 12, 20, 0, 0, tzinfo=UTC)
    keys: list[dict[str, Any]] = [
        {"id": "e1", "serial": "80000001", "secret": RFC_SECRET, "expiry_date": expires},
        {"id": "e2", "serial": "80000002", "secret": RFC_SECRET + b"x"},
    ]
    specs = read_pskc(pskc_bytes(keys, "psk"), "expiring.pskc", psk=RFC_PSK)
    admin = app.admin()
    admin.import_tokens(specs)
    spec = specs[0]

    # The inventory shows the expiry; the replacement report lists it before it.
    shown = {t.serial: t.expires for t in admin.tokens()}
    assert shown == {"80000001": expires, "80000002": None}
    assert [t.serial for t in admin.tokens(expiring_within_days=30)] == ["80000001"]
    assert admin.tokens(expiring_within_days=10) == []
    clock.now = expires - timedelta(days=3)
    assert [t.serial for t in admin.tokens(expiring_within_days=3)] == ["80000001"]

    # Before it: activation works and the user is active.
    issued_user(app, "early")
    assert activate(app, "early", spec, code(spec, clock.now)) == (
        Result.ACCEPT,
        Reason.ACTIVATED,
    )

    # From the expiry instant on: the bound user is expired, and activation is refused.
    clock.now = expires
    assert admin.user("early").state is OtpState.EXPIRED
    issued_user(app, "late")
    result, reason = activate(app, "late", spec, code(spec, clock.now))
    assert (result, reason) == (Result.REJECT, Reason.BAD_SERIAL)
    assert admin.user("late").state is OtpState.ISSUED
    # Still on the report (it does not drop off once expired).
    assert [t.serial for t in admin.tokens(expiring_within_days=0)] == ["80000001"]


def test_activation_a_second_before_the_expiry_works(app: App, clock: FrozenClock) -> None:
    expires = T0 + timedelta(seconds=90)
    keys = [{"id": "e1", "serial": "80000003", "secret": RFC_SECRET, "expiry_date": expires}]
    (spec,) = read_pskc(pskc_bytes(keys), "f")
    app.admin().import_tokens([spec])
    issued_user(app, "edge")
    clock.now = expires - timedelta(seconds=1)
    assert activate(app, "edge", spec, code(spec, clock.now))[0] is Result.ACCEPT


BAD_FILES: list[tuple[str, bytes, dict[str, Any], str]] = [
    (
        "hotp",
        (DATA / "rfc6030-figure3.pskcxml").read_bytes(),
        {},
        "key 12345678 (serial 987654321): HOTP",
    ),
    ("wrong psk", (DATA / "rfc6030-figure6-totp.pskcxml").read_bytes(), {"psk": bytes(16)}, "key"),
    (
        "wrong password",
        (DATA / "rfc6030-figure7-totp.pskcxml").read_bytes(),
        {"password": "letmein"},
        "key 123456",
    ),
    (
        "broken mac",
        (DATA / "rfc6030-figure6-totp-badmac.pskcxml").read_bytes(),
        {"psk": RFC_PSK},
        "MAC check failed",
    ),
    ("not pskc", b"<html><body>seed file</body></html>", {}, "not a PSKC file"),
    ("not xml", b"<KeyContainer><KeyPackage>", {}, "not well-formed"),
]


@pytest.mark.parametrize(
    ("kind", "data", "kwargs", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_a_bad_file_is_refused_with_its_name_and_nothing_changes(
    app: App, tmp_path: Path, kind: str, data: bytes, kwargs: dict[str, Any], words: str
) -> None:
    app.admin().import_tokens(read_pskc(pskc_bytes(vendor_keys()), "first.pskc"))
    before = snapshot(app)
    path = tmp_path / "seeds.pskcxml"
    path.write_bytes(data)
    with pytest.raises(ImportRefused) as caught:
        app.admin().import_tokens(read_pskc(path.read_bytes(), str(path), **kwargs))
    assert str(caught.value).startswith(f"{path}:")
    assert words in str(caught.value)
    assert snapshot(app) == before


def test_a_file_with_a_serial_already_in_the_inventory_changes_nothing(app: App) -> None:
    app.admin().import_tokens(read_pskc(pskc_bytes(vendor_keys()[:1]), "first.pskc"))
    before = snapshot(app)
    again = read_pskc(pskc_bytes(vendor_keys()), "second.pskc")  # k1 again, k2 and k3 new
    with pytest.raises(AlreadyExists):
        app.admin().import_tokens(again)
    assert snapshot(app) == before


def test_a_present_serial_from_a_named_file_is_refused_with_its_line(app: App) -> None:
    app.admin().import_tokens(read_pskc(pskc_bytes(vendor_keys()[:1]), "first.pskc"))
    before = snapshot(app)
    again = read_pskc(pskc_bytes(vendor_keys()[1:] + vendor_keys()[:1]), "second.pskc")
    with pytest.raises(ImportRefused) as caught:
        app.admin().import_tokens(again, source="second.pskc")
    assert str(caught.value).startswith(f"second.pskc:{again[2].line}: serial 70000001")
    assert "--update" in str(caught.value)
    assert snapshot(app) == before


@pytest.mark.parametrize("drift", [5, -5])
def test_a_pskc_time_drift_is_recorded_not_applied(app: App, drift: int) -> None:
    # SPEC §3: the window is ±1 step around the server's time, whatever TimeDrift the file
    # declares. The token's current code activates; the code `drift` steps away does not.
    keys = [{"id": "d1", "serial": "90000001", "secret": RFC_SECRET, "time_drift": drift}]
    (spec,) = read_pskc(pskc_bytes(keys), "drift.pskc")
    app.admin().import_tokens([spec])
    issued_user(app, "drifty")
    declared = T0 + timedelta(seconds=drift * spec.period)  # where the file says it would be
    assert activate(app, "drifty", spec, code(spec, declared)) == (Result.REJECT, Reason.BAD_OTP)
    assert activate(app, "drifty", spec, code(spec, T0)) == (Result.ACCEPT, Reason.ACTIVATED)
    assert stored_drift(app, spec.serial) == drift


def test_an_update_replaces_the_drift(app: App) -> None:
    keys: list[dict[str, Any]] = [{"id": "d2", "serial": "90000002", "secret": RFC_SECRET}]
    app.admin().import_tokens(read_pskc(pskc_bytes(keys), "before.pskc"))
    assert stored_drift(app, "90000002") == 0
    keys[0]["time_drift"] = 2
    (spec,) = read_pskc(pskc_bytes(keys), "after.pskc")
    app.admin().import_tokens([spec], update_existing=True, source="after.pskc")
    assert stored_drift(app, "90000002") == 2
    issued_user(app, "moved")
    assert activate(app, "moved", spec, code(spec, T0)) == (Result.ACCEPT, Reason.ACTIVATED)
