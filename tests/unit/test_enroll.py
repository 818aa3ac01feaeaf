"""Software tokens: seeds, serials, the otpauth URI, and QR codes that decode to it."""

from __future__ import annotations

import base64
import errno
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpcore.enroll import (
    SECRET_BYTES,
    new_serial,
    new_software_token,
    otpauth_uri,
    qr_matrix,
    qr_png,
    qr_terminal,
)
from otpcore.errors import AlreadyExists, InvalidInput
from otpcore.model import Algorithm, TokenKind
from otpcore.token_csv import TokenSpec
from tests.conftest import require_command

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def counting_random() -> Callable[[int], bytes]:
    """A deterministic random source: 0x00, 0x01, … over and over."""

    def stream() -> Iterator[int]:
        while True:
            yield from range(256)

    numbers = stream()
    return lambda n: bytes(next(numbers) for _ in range(n))


@pytest.mark.parametrize(
    ("algorithm", "bits"),
    [(Algorithm.SHA1, 160), (Algorithm.SHA256, 256), (Algorithm.SHA512, 512)],
)
def test_the_seed_is_as_long_as_the_hash(algorithm: Algorithm, bits: int) -> None:
    spec = new_software_token(None, algorithm=algorithm)
    assert len(spec.secret) * 8 == bits == SECRET_BYTES[algorithm] * 8
    assert spec.algorithm is algorithm


def test_defaults_are_sha1_six_digits_thirty_seconds_software() -> None:
    spec = new_software_token(None)
    assert (spec.kind, spec.algorithm, spec.digits, spec.period, spec.expires) == (
        TokenKind.SOFTWARE,
        Algorithm.SHA1,
        6,
        30,
        None,
    )


def test_the_seed_comes_from_the_random_source() -> None:
    spec = new_software_token("S1", random=counting_random())
    assert spec.secret == bytes(range(20))


def test_two_tokens_get_different_seeds_and_serials() -> None:
    first, second = new_software_token(None), new_software_token(None)
    assert first.secret != second.secret
    assert first.serial != second.serial


@given(st.binary(min_size=5, max_size=5))
def test_a_generated_serial_is_s_and_ten_digits(raw: bytes) -> None:
    draws = iter([raw, b"\x00\x00\x00\x00\x07"])
    serial = new_serial(lambda n: next(draws))
    assert re.fullmatch(r"S\d{10}", serial)


def test_draws_at_the_top_of_the_range_are_rejected_so_digits_are_uniform() -> None:
    draws = iter([b"\xff" * 5, (123).to_bytes(5, "big")])
    assert new_serial(lambda n: next(draws)) == "S0000000123"


def test_a_given_serial_is_checked() -> None:
    assert new_software_token(" AB-12 ").serial == "AB-12"
    with pytest.raises(InvalidInput):
        new_software_token("has space")


@pytest.mark.parametrize(("digits", "period"), [(7, 30), (6, 5), (6, 301)])
def test_unsupported_digits_and_periods_are_refused(digits: int, period: int) -> None:
    with pytest.raises(InvalidInput):
        new_software_token(None, digits=digits, period=period)


def test_a_short_random_source_is_an_error() -> None:
    with pytest.raises(ValueError, match="wrong number of bytes"):
        new_software_token(None, random=lambda n: b"x")


# otpauth URI


def test_the_uri_has_exactly_the_documented_form() -> None:
    spec = TokenSpec("S0123456789", b"12345678901234567890", TokenKind.SOFTWARE, period=30)
    assert otpauth_uri(spec, "otpradius") == (
        "otpauth://totp/otpradius:S0123456789?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        "&issuer=otpradius&algorithm=SHA1&digits=6&period=30"
    )


def test_the_uri_carries_algorithm_digits_and_period() -> None:
    spec = new_software_token("X1", algorithm=Algorithm.SHA512, digits=8, period=60)
    query = parse_qs(urlsplit(otpauth_uri(spec, "Bank")).query)
    assert query["algorithm"] == ["SHA512"]
    assert query["digits"] == ["8"]
    assert query["period"] == ["60"]


def test_the_secret_is_base32_without_padding() -> None:
    spec = new_software_token("X1", algorithm=Algorithm.SHA256)  # 32 bytes: 52 chars + 4 '='
    secret = parse_qs(urlsplit(otpauth_uri(spec, "Bank")).query)["secret"][0]
    assert "=" not in secret
    assert base64.b32decode(secret + "=" * (-len(secret) % 8)) == spec.secret


@given(
    issuer=st.text(min_size=1, max_size=40).filter(lambda s: s.strip()),
    serial=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
        min_size=1,
        max_size=30,
    ),
)
def test_issuer_and_serial_are_percent_encoded_and_come_back(issuer: str, serial: str) -> None:
    spec = new_software_token(serial)
    uri = otpauth_uri(spec, issuer)
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    label = parts.path.removeprefix("/")
    name, account = label.split(":")
    assert unquote(name) == issuer
    assert unquote(account) == serial
    assert parse_qs(parts.query)["issuer"] == [issuer]
    assert " " not in uri


def test_an_empty_issuer_is_refused() -> None:
    with pytest.raises(InvalidInput):
        otpauth_uri(new_software_token(None), "  ")


# QR codes


def terminal_modules(text: str) -> list[list[bool]]:
    """The module matrix drawn by ``qr_terminal``: each cell is two modules."""
    rows: list[list[bool]] = []
    for line in ANSI.sub("", text).splitlines():
        rows.append([c in "\u2580\u2588" for c in line])
        rows.append([c in "\u2584\u2588" for c in line])
    return rows


def write_pgm(path: Path, modules: list[list[bool]], scale: int = 6) -> None:
    """A greyscale image of a module matrix, as a phone camera would see the terminal."""
    pixels = bytearray()
    for row in modules:
        line = b"".join((b"\x00" if dark else b"\xff") * scale for dark in row)
        pixels += line * scale
    header = f"P5 {len(modules[0]) * scale} {len(modules) * scale} 255\n".encode()
    path.write_bytes(header + bytes(pixels))


def zbar(path: Path) -> str:
    command = require_command("zbarimg")
    result = subprocess.run(
        [command, "--quiet", "--raw", str(path)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


URI = otpauth_uri(new_software_token(None, random=counting_random()), "Example Bank")


def test_the_terminal_qr_is_the_qr_matrix_in_half_blocks() -> None:
    text = qr_terminal(URI)
    matrix = qr_matrix(URI)
    drawn = terminal_modules(text)
    assert drawn[: len(matrix)] == matrix
    assert all(not any(row) for row in drawn[len(matrix) :])  # the padding row is light
    assert set(ANSI.sub("", text)) <= {" ", "\u2580", "\u2584", "\u2588", "\n"}


def test_each_terminal_line_sets_its_own_colours() -> None:
    for line in qr_terminal(URI).splitlines():
        assert line.startswith("\x1b[30;107m")
        assert line.endswith("\x1b[0m")


def test_the_plain_terminal_qr_has_no_escape_codes() -> None:
    text = qr_terminal(URI, colour=False)
    assert "\x1b" not in text
    assert terminal_modules(text)[: len(qr_matrix(URI))] == qr_matrix(URI)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_the_terminal_qr_decodes_to_the_uri(tmp_path: Path, algorithm: Algorithm) -> None:
    uri = otpauth_uri(new_software_token(None, algorithm=algorithm), "Example Bank")
    image = tmp_path / "terminal.pgm"
    write_pgm(image, terminal_modules(qr_terminal(uri)))
    assert zbar(image) == uri


def test_the_terminal_qr_fits_an_eighty_column_terminal() -> None:
    uri = otpauth_uri(
        new_software_token("S" * 64, algorithm=Algorithm.SHA512), "A long issuer name, Ltd."
    )
    assert max(len(ANSI.sub("", line)) for line in qr_terminal(uri).splitlines()) <= 80


def test_the_png_qr_decodes_to_the_uri_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "token.png"
    qr_png(URI, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert zbar(path) == URI


def test_the_png_never_overwrites_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token.png"
    path.write_bytes(b"keep")
    with pytest.raises(AlreadyExists):
        qr_png(URI, path)
    assert path.read_bytes() == b"keep"


def test_a_png_that_cannot_be_written_whole_is_not_left_behind(tmp_path: Path) -> None:
    # A file size limit stands in for a full disk: the write fails part way (EFBIG).
    script = (
        "import resource, signal, sys\n"
        "from otpcore.enroll import qr_png\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))\n"
        "try:\n"
        f"    qr_png({URI!r}, sys.argv[1])\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    path = tmp_path / "token.png"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(errno.EFBIG)
    assert not path.exists()
