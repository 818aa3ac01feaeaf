"""``otpctl token enroll-soft``: a software token from the command line to an activated login.

The URI is checked as an authenticator app reads it; the PNG with ``zbarimg``; codes come
from ``oathtool`` given the URI's secret, as a phone would compute them.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import Result

from cli import tokens as cli_tokens
from otpcore.enroll import new_software_token
from tests.conftest import require_command
from tests.integration.cli_support import (
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

ISSUER = "Example Bank"
URI = re.compile(r"^URI: (otpauth://\S+)$", re.MULTILINE)
SERIAL = re.compile(r"^Serial number: (S\d{10})$", re.MULTILINE)
BLOCKS = set("\u2580\u2584\u2588")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration naming the issuer; the database and key file go beside it."""
    return write_config(tmp_path, f'\n[tokens]\nissuer = "{ISSUER}"\n')


@pytest.fixture
def otpctl(config: Path) -> Otpctl:
    """otpctl through CliRunner, after ``otpctl init``; stdout is not a terminal."""
    run = otpctl_runner(config)
    ok(run("init"))
    return run


def parts(uri: str) -> tuple[str, dict[str, str]]:
    """The label and the query of an otpauth URI."""
    split = urlsplit(uri)
    assert (split.scheme, split.netloc) == ("otpauth", "totp")
    query = {name: values[0] for name, values in parse_qs(split.query).items()}
    return unquote(split.path.removeprefix("/")), query


def inventory(otpctl: Otpctl) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = as_json(otpctl("token", "list", "--json"))
    return rows


def oathtool_code(query: dict[str, str]) -> str:
    """The current code, from oathtool given the URI's base32 secret and parameters."""
    oathtool = require_command("oathtool")
    algorithm = query["algorithm"].lower()
    result = subprocess.run(
        [
            oathtool, f"--totp={algorithm}", "-d", query["digits"], "-s", query["period"] + "s",
            "-b", query["secret"],
        ],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return result.stdout.strip()


def activate(otpctl: Otpctl, login: str, serial: str, code: str) -> Result:
    ok(
        otpctl(
            "user", "add", login, "--name", login.title(), "--class", "general",
            "--password-stdin", input=f"pw-of-{login}\n",
        )
    )  # fmt: skip
    ok(otpctl("user", "issue", login, "--start", today()))
    return otpctl("activate", login, serial, "--password-stdin", input=code + "\n")


def test_enroll_soft_prints_serial_uri_and_qr_and_the_token_is_in_the_inventory(
    otpctl: Otpctl,
) -> None:
    result = ok(otpctl("token", "enroll-soft"))
    serial_match, uri_match = SERIAL.search(result.stdout), URI.search(result.stdout)
    assert serial_match is not None
    assert uri_match is not None
    serial, uri = serial_match.group(1), uri_match.group(1)
    label, query = parts(uri)
    assert label == f"{ISSUER}:{serial}"
    assert query["issuer"] == ISSUER
    assert (query["algorithm"], query["digits"], query["period"]) == ("SHA1", "6", "30")
    assert len(query["secret"]) == 32  # 160 bits in base32, unpadded
    qr_lines = result.stdout.split(uri, 1)[1].strip("\n").splitlines()
    assert len(qr_lines) > 10
    assert BLOCKS & set("".join(qr_lines))
    assert "\x1b[" not in result.stdout  # no colour: stdout is not a terminal
    assert inventory(otpctl) == [
        {
            "serial": serial,
            "kind": "software",
            "algorithm": "SHA1",
            "digits": 6,
            "period": 30,
            "expires": None,
            "users": [],
            "suspended": False,
            "disabled": False,
            "fail_count": 0,
        }
    ]


def test_enroll_soft_json_has_no_qr(otpctl: Otpctl) -> None:
    options = ("--serial", "APP-0001", "--algorithm", "SHA256", "--digits", "8", "--period", "60")
    printed = as_json(otpctl("token", "enroll-soft", *options, "--json"))
    assert set(printed) == {"serial", "uri", "issuer", "algorithm", "digits", "period", "qr_png"}
    assert (printed["serial"], printed["issuer"], printed["qr_png"]) == ("APP-0001", ISSUER, None)
    label, query = parts(printed["uri"])
    assert label == f"{ISSUER}:APP-0001"
    assert (query["algorithm"], query["digits"], query["period"]) == ("SHA256", "8", "60")
    assert len(query["secret"]) == 52  # 256 bits
    row = inventory(otpctl)[0]
    assert (row["serial"], row["algorithm"], row["digits"], row["period"]) == (
        "APP-0001",
        "SHA256",
        8,
        60,
    )
    # The audit tells an enrolment from an import: after a restore, one is repeated from the
    # vendor's file, the other only by enrolling the user again.
    event = as_json(otpctl("audit", "--json"))[-1]
    assert (event["action"], event["targets"]) == ("token_import", ["APP-0001"])
    assert event["detail"] == "software token enrolled (token enroll-soft): 1 added, 0 updated"


def test_the_png_decodes_to_the_printed_uri_and_oathtool_codes_activate(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    zbarimg = require_command("zbarimg")
    png = tmp_path / "qr.png"
    printed = as_json(otpctl("token", "enroll-soft", "--qr-png", str(png), "--json"))
    assert printed["qr_png"] == str(png)
    assert stat.S_IMODE(png.stat().st_mode) == 0o600  # it holds the secret
    decoded = subprocess.run(
        [zbarimg, "--quiet", "--raw", str(png)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert decoded.stdout.strip() == printed["uri"]
    _label, query = parts(decoded.stdout.strip())
    result = activate(otpctl, "soft", printed["serial"], oathtool_code(query))
    assert ok(result).stdout.startswith("accept: activated")
    user = as_json(otpctl("user", "show", "soft", "--json"))
    assert (user["state"], user["serial"]) == ("active", printed["serial"])


def test_oathtool_codes_activate_a_sha512_token(otpctl: Otpctl) -> None:
    printed = as_json(otpctl("token", "enroll-soft", "--algorithm", "SHA512", "--json"))
    _label, query = parts(printed["uri"])
    assert ok(activate(otpctl, "strong", printed["serial"], oathtool_code(query))).exit_code == 0


def test_an_existing_png_is_not_overwritten_and_no_token_is_made(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    png = tmp_path / "qr.png"
    png.write_bytes(b"somebody else's file")
    line = failed(otpctl("token", "enroll-soft", "--qr-png", str(png)), 4)
    assert f"{png}: file exists" in line
    assert png.read_bytes() == b"somebody else's file"
    line = failed(otpctl("token", "enroll-soft", "--qr-png", str(tmp_path / "no" / "qr.png")), 2)
    assert "cannot write the QR code" in line
    assert inventory(otpctl) == []


def test_a_given_serial_already_present_is_refused_and_its_png_removed(
    otpctl: Otpctl, tmp_path: Path
) -> None:
    ok(otpctl("token", "enroll-soft", "--serial", "APP-0002"))
    png = tmp_path / "again.png"
    line = failed(otpctl("token", "enroll-soft", "--serial", "APP-0002", "--qr-png", str(png)), 4)
    assert "serial APP-0002 is already in the inventory" in line
    assert not png.exists()
    assert "printable ASCII" in failed(otpctl("token", "enroll-soft", "--serial", "A 1"), 2)
    assert len(inventory(otpctl)) == 1


def test_a_generated_serial_that_collides_is_drawn_again(
    otpctl: Otpctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(otpctl("token", "enroll-soft", "--serial", "S0000000001"))
    draws = iter(["S0000000001", "S0000000002"])

    def drawing(serial: str | None = None, **options: object) -> object:
        return new_software_token(serial or next(draws), **options)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_tokens, "new_software_token", drawing)
    assert as_json(otpctl("token", "enroll-soft", "--json"))["serial"] == "S0000000002"
    assert [row["serial"] for row in inventory(otpctl)] == ["S0000000001", "S0000000002"]


def test_the_installed_otpctl_colours_the_qr_only_on_a_terminal(
    otpctl: Otpctl, config: Path
) -> None:
    status, shown = run_on_terminal(["token", "enroll-soft"], config, on=["stdout"])
    assert status == 0, shown
    assert "\x1b[30;107m" in shown  # black on white, whatever the terminal's theme
    piped = subprocess.run(
        [*otpctl_program(), "--config", str(config), "token", "enroll-soft"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "\x1b[" not in piped.stdout
    assert BLOCKS & set(piped.stdout)
    assert piped.stderr == ""
