"""Token seed CSV (SPEC §7): every malformed row is refused with its line number."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from otpcore.errors import ImportRefused
from otpcore.model import Algorithm, TokenKind
from otpcore.token_csv import TokenSpec, read_token_csv
from otpcore.totp import hotp

SECRET = bytes(range(1, 21))
HEX = SECRET.hex()


def seed_hex(index: int) -> str:
    """A seed of its own for row ``index`` of a file (row 0's is HEX)."""
    return bytes((index + k) % 256 for k in range(1, 21)).hex()


HEADER = "serial,secret,algorithm,digits,period,expires"


def lines(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def test_a_full_row() -> None:
    (spec,) = read_token_csv(lines(f"23456789,{HEX},SHA256,8,30,2031-03-31"), "t.csv")
    assert spec == TokenSpec(
        serial="23456789",
        secret=SECRET,
        kind=TokenKind.HARDWARE,
        algorithm=Algorithm.SHA256,
        digits=8,
        period=30,
        expires=datetime(2031, 3, 31, tzinfo=UTC),
        line=2,
        given=frozenset({"algorithm", "digits", "period", "expires"}),
    )


def test_optional_columns_take_the_spec_defaults() -> None:
    specs = [
        *read_token_csv(lines(f"A1,{HEX}", header="serial,secret"), "t.csv"),
        *read_token_csv(lines(f"A2,{HEX},,,,"), "t.csv"),
    ]
    assert [s.serial for s in specs] == ["A1", "A2"]
    for spec in specs:
        assert (spec.algorithm, spec.digits, spec.period, spec.expires) == (
            Algorithm.SHA1,
            6,
            60,
            None,
        )
        assert spec.kind is TokenKind.HARDWARE
        assert spec.given == frozenset()  # an update keeps the stored settings


def test_a_software_token_defaults_to_thirty_seconds() -> None:
    (spec,) = read_token_csv(lines(f"S1,{HEX},software", header="serial,secret,kind"), "t.csv")
    assert (spec.kind, spec.period) == (TokenKind.SOFTWARE, 30)


def test_base32_may_replace_hex() -> None:
    b32 = base64.b32encode(SECRET).decode().rstrip("=").lower()
    (spec,) = read_token_csv(lines(f"B1,{b32}", header="serial,secret_base32"), "t.csv")
    assert spec.secret == SECRET


def test_base32_as_an_app_shows_it_in_groups_and_unpadded() -> None:
    # 16 bytes are 26 base32 characters, which need padding the file leaves out; an
    # authenticator app shows them lower case in groups of four.
    seed = bytes(range(101, 117))
    b32 = base64.b32encode(seed).decode().rstrip("=").lower()
    grouped = " ".join(b32[i : i + 4] for i in range(0, len(b32), 4))
    (spec,) = read_token_csv(lines(f"B1, {grouped} ", header="serial,secret_base32"), "t.csv")
    assert spec.secret == seed


def test_the_longest_serial_and_seed_are_accepted() -> None:
    # 64 characters and 128 bytes are the limits, not past them (MALFORMED has those).
    serial, seed = "9" * 64, bytes((7 * k + 1) % 256 for k in range(128))
    (spec,) = read_token_csv(lines(f"{serial},{seed.hex()}", header="serial,secret"), "t.csv")
    assert (spec.serial, spec.secret) == (serial, seed)
    with pytest.raises(ImportRefused, match="bytes"):
        read_token_csv(lines(f"S,{(seed + b'x').hex()}", header="serial,secret"), "t.csv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2031-03-31", datetime(2031, 3, 31, tzinfo=UTC)),
        ("2031-03-31T12:00:00", datetime(2031, 3, 31, 12, tzinfo=UTC)),
        ("2031-03-31T09:00:00+09:00", datetime(2031, 3, 31, 0, tzinfo=UTC)),
        ("2031-03-31T00:00:00Z", datetime(2031, 3, 31, tzinfo=UTC)),
    ],
)
def test_expiry_formats(text: str, expected: datetime) -> None:
    (spec,) = read_token_csv(lines(f"E1,{HEX},,,,{text}"), "t.csv")
    assert spec.expires == expected


def test_algorithm_spelling_is_forgiven() -> None:
    rows = [f"X{i},{seed_hex(i)},{name}" for i, name in enumerate(["sha1", "SHA-256", "Sha512"])]
    specs = read_token_csv(lines(*rows, header="serial,secret,algorithm"), "t.csv")
    assert [s.algorithm for s in specs] == [Algorithm.SHA1, Algorithm.SHA256, Algorithm.SHA512]


GOOD = f"OK1,{HEX},SHA1,6,60,2031-01-01"
SERIAL_LENGTH = "serial must be 1 to 64 characters"
NOT_PRINTABLE = "has a space, a comma or a character other than printable ASCII"
PERIOD = "period must be a whole number of seconds from 10 to 300, not"
EXPIRES = "is not YYYY-MM-DD or ISO 8601"

# (a bad row, the whole message after the file and line)
MALFORMED = {
    "bad hex": (f"X,{HEX[:-1]}g,SHA1,6,60,", "secret is not hexadecimal"),
    "odd hex": (f"X,{HEX}0,SHA1,6,60,", "secret is not hexadecimal"),
    "short secret": (f"X,{HEX[:30]},SHA1,6,60,", "secret must be 16 to 128 bytes, not 15"),
    "long secret": (f"X,{HEX * 7},SHA1,6,60,", "secret must be 16 to 128 bytes, not 140"),
    "no secret": ("X,,SHA1,6,60,", "no secret (a 'secret' or 'secret_base32' value is required)"),
    "unknown algorithm": (f"X,{HEX},MD5,6,60,", "unknown algorithm 'MD5' (SHA1, SHA256 or SHA512)"),
    "digits 7": (f"X,{HEX},SHA1,7,60,", "digits must be 6 or 8, not '7'"),
    "digits word": (f"X,{HEX},SHA1,six,60,", "digits must be 6 or 8, not 'six'"),
    "digits arabic-indic": (f"X,{HEX},SHA1,٦,60,", "digits must be 6 or 8, not '٦'"),
    "period zero": (f"X,{HEX},SHA1,6,0,", f"{PERIOD} '0'"),
    "period too long": (f"X,{HEX},SHA1,6,301,", f"{PERIOD} '301'"),
    "period fraction": (f"X,{HEX},SHA1,6,30.5,", f"{PERIOD} '30.5'"),
    "period superscript": (f"X,{HEX},SHA1,6,6²,", f"{PERIOD} '6²'"),
    "period arabic-indic": (f"X,{HEX},SHA1,6,٣٠,", f"{PERIOD} '٣٠'"),
    "bad date": (f"X,{HEX},SHA1,6,60,2031-02-30", f"expires '2031-02-30' {EXPIRES}"),
    "bad month": (f"X,{HEX},SHA1,6,60,2031-13-01", f"expires '2031-13-01' {EXPIRES}"),
    "date words": (f"X,{HEX},SHA1,6,60,next year", f"expires 'next year' {EXPIRES}"),
    "date out of range": (
        f"X,{HEX},SHA1,6,60,0001-01-01T00:00:00+01:00",
        f"expires '0001-01-01T00:00:00+01:00' {EXPIRES}",
    ),
    "serial with space": (f"X Y,{HEX},SHA1,6,60,", f"serial 'X Y' {NOT_PRINTABLE}"),
    "empty serial": (f",{HEX},SHA1,6,60,", SERIAL_LENGTH),
    "serial too long": (f"{'9' * 65},{HEX},SHA1,6,60,", SERIAL_LENGTH),
    "non-ascii serial": (f"シリアル,{HEX},SHA1,6,60,", f"serial 'シリアル' {NOT_PRINTABLE}"),
    "full-width serial": (f"ＳＮ１２３,{HEX},SHA1,6,60,", f"serial 'ＳＮ１２３' {NOT_PRINTABLE}"),
    "too many fields": (
        f"X,{HEX},SHA1,6,60,,extra",
        "more fields than columns: 7 where the header names 6",
    ),
    "too few fields": (f"X,{HEX},SHA1", "fewer fields than columns: 3 where the header names 6"),
    "duplicate serial": (f"OK1,{HEX},SHA1,6,60,", "serial OK1 repeats line 2"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("position", [0, 1, 3])
def test_a_malformed_row_is_refused_with_its_line(case: str, position: int) -> None:
    bad, message = MALFORMED[case]
    goods = [GOOD] + [f"OK{i + 2},{seed_hex(i + 2)},SHA1,6,60," for i in range(3)]
    rows = [*goods[: position + 1], bad, *goods[position + 1 :]]
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(*rows), "seeds.csv")
    assert caught.value.line == position + 3  # header is line 1, the first good row line 2
    assert caught.value.file == "seeds.csv"
    assert str(caught.value) == f"seeds.csv:{position + 3}: {message}"


def test_a_hex_and_a_base32_secret_must_be_the_same_seed() -> None:
    base32 = base64.b32encode(bytes.fromhex(HEX)).decode()
    other = base64.b32encode(bytes.fromhex(HEX[:-2] + "ff")).decode()
    same = f"serial,secret,secret_base32\nOK1,{HEX},{base32}\n"
    (spec,) = read_token_csv(same, "seeds.csv")
    assert spec.secret == bytes.fromhex(HEX)
    text = f"serial,secret,secret_base32\nOK1,{HEX},{base32}\nX,{HEX},{other}\n"
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(text, "seeds.csv")
    assert str(caught.value) == (
        "seeds.csv:3: secret and secret_base32 are different seeds; give one"
    )
    assert HEX not in str(caught.value)
    assert other not in str(caught.value)


@pytest.mark.parametrize("byte", [0x00, 0xFF, 0x30])
def test_a_seed_of_one_byte_repeated_is_refused_as_a_placeholder(byte: int) -> None:
    # What a file holds where a seed failed to be written: codes anyone can compute.
    placeholder = bytes([byte]) * 20
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(GOOD, f"X,{placeholder.hex()},SHA1,6,60,"), "seeds.csv")
    assert str(caught.value) == (
        "seeds.csv:3: secret is one byte repeated: a placeholder, not a seed"
    )


def test_a_seed_written_in_part_is_refused_as_a_placeholder() -> None:
    mostly_zero = "secret is mostly zero bytes: a placeholder, not a seed"
    partials = [
        (bytes([1, 2]) + bytes(14), mostly_zero),
        (bytes(15) + b"\x07", mostly_zero),
        (bytes(range(1, 12)) + bytes(5), mostly_zero),  # eleven bytes of sixteen written
        (bytes([9]) + bytes(19), "secret is one byte repeated: a placeholder, not a seed"),
    ]
    for partial, message in partials:
        with pytest.raises(ImportRefused) as caught:
            read_token_csv(lines(f"X,{partial.hex()},SHA1,6,60,"), "seeds.csv")
        assert str(caught.value) == f"seeds.csv:2: {message}"
    # Four zero bytes happen to one random 16-byte seed in about two million: still a seed.
    read_token_csv(lines(f"X,{(bytes(range(1, 13)) + bytes(4)).hex()},SHA1,6,60,"), "seeds.csv")
    # Two byte values are not one repeated, however poor a seed they make.
    two_values = (b"\x01\x02" * 8).hex()
    read_token_csv(lines(f"X,{two_values},SHA1,6,60,"), "seeds.csv")


def test_a_seed_given_to_two_serials_is_refused_at_the_second() -> None:
    # Either token would open the other's logins.
    rows = [GOOD, f"OK2,{seed_hex(2)},SHA1,6,60,", f"OK3,{HEX},SHA256,8,30,"]
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(*rows), "seeds.csv")
    assert str(caught.value) == (
        "seeds.csv:4: the secret of line 2 (serial OK1) again: every token needs a seed of its own"
    )
    base32 = base64.b32encode(SECRET).decode()
    text = f"serial,secret_base32\nOK1,{base32}\nOK2,{base32.lower()}\n"
    with pytest.raises(ImportRefused, match=r"^seeds\.csv:3: the secret of line 2 "):
        read_token_csv(text, "seeds.csv")


def test_seeds_that_show_the_same_codes_are_one_seed() -> None:
    # HMAC pads a short key with zero bytes and hashes one longer than its block: these pairs
    # are different bytes and the same codes.
    long_seed = bytes(range(100))
    pairs = [
        (SECRET, SECRET + bytes(4)),
        (long_seed, hashlib.sha1(long_seed).digest()),  # noqa: S324 - the HOTP hash itself
    ]
    for first, second in pairs:
        assert hotp(first, 7, 6, Algorithm.SHA1) == hotp(second, 7, 6, Algorithm.SHA1)
        text = lines(f"OK1,{first.hex()},SHA1,6,60,", f"OK2,{second.hex()},SHA1,6,60,")
        with pytest.raises(ImportRefused, match=r"^seeds\.csv:3: the secret of line 2 "):
            read_token_csv(text, "seeds.csv")
    padded = (b"\xff" * 16 + bytes(4)).hex()  # still all 0xFF to HMAC
    with pytest.raises(ImportRefused, match="placeholder"):
        read_token_csv(lines(f"X,{padded},SHA1,6,60,"), "seeds.csv")


def test_a_malformed_row_does_not_print_the_secret() -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(f"X,{HEX},MD5,6,60,"), "seeds.csv")
    assert HEX not in str(caught.value)


@given(
    seed=st.binary(min_size=16, max_size=64),
    encoding=st.sampled_from(["hex", "base32"]),
    column=st.sampled_from(["algorithm", "digits", "period", "expires", "kind", "serial"]),
)
def test_a_seed_shifted_into_another_column_is_not_printed(
    seed: bytes, encoding: str, column: str
) -> None:
    # A comma too many moves the seed one cell on; the error names the cell, not its value.
    text = seed.hex() if encoding == "hex" else base64.b32encode(seed).decode().rstrip("=")
    row = {"serial": "X", "secret": HEX, "algorithm": "SHA1", "digits": "6", "period": "60",
           "expires": "", "kind": "hardware"}  # fmt: skip
    row[column] = text + " !"  # never valid there, whatever the seed
    header = ",".join(row)
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(",".join(row.values()), header=header), "seeds.csv")
    assert text not in str(caught.value)
    assert text.lower() not in str(caught.value).lower()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file: a header row is required"),
        ("serial,secret,colour\n", "unknown column 'colour'; the header row names columns from"),
        ("serial,algorithm\nX,SHA1\n", "header needs 'serial' and 'secret' (or 'secret_base32')"),
        ("secret\n" + HEX + "\n", "header needs 'serial' and 'secret' (or 'secret_base32')"),
        ("serial,secret,serial\n", "a column is named twice"),
        (f"23456789,{HEX}\n", "unknown column 1 (not shown"),  # no header row at all
    ],
)
def test_a_bad_header_is_refused_on_line_one(text: str, fragment: str) -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(text, "seeds.csv")
    assert caught.value.line == 1
    assert str(caught.value).startswith(f"seeds.csv:1: {fragment}")


@pytest.mark.parametrize(
    "first",
    [
        f"{HEX},23456789",  # a vendor's file without its header row, the seed first
        f"{base64.b32encode(bytes.fromhex(HEX)).decode()},23456789",
        f"{base64.b32encode(bytes.fromhex(HEX)).decode().lower()};23456789",
    ],
)
def test_a_file_without_its_header_row_never_shows_the_seed_it_starts_with(first: str) -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(f"{first}\n", "seeds.csv")
    message = str(caught.value)
    assert caught.value.line == 1
    assert first.split(",")[0].split(";")[0].lower() not in message.lower()
    assert "unknown column 1" in message
    assert "serial, secret, secret_base32, kind, algorithm, digits, period, expires" in message


@pytest.mark.parametrize("header", ["serial,seed", "Serial,Secret"])
def test_an_unknown_column_name_is_shown_with_the_known_ones(header: str) -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(f"{header}\n", "seeds.csv")
    wrong = next(name for name in header.split(",") if name not in ("serial", "secret"))
    assert str(caught.value) == (
        f"seeds.csv:1: unknown column '{wrong}'; the header row names columns from: "
        "serial, secret, secret_base32, kind, algorithm, digits, period, expires"
    )


def test_a_field_over_the_csv_limit_is_refused_not_crashed() -> None:
    text = lines(GOOD, f'"{"9" * 200_000}",{HEX}', header="serial,secret")
    with pytest.raises(ImportRefused, match=r"^seeds\.csv:"):
        read_token_csv(text.replace("SHA1,6,60,2031-01-01", ""), "seeds.csv")


def test_quoted_fields_and_crlf_line_ends() -> None:
    text = f'serial,secret\r\n"Q1","{HEX}"\r\nQ2,{seed_hex(1)}\r\n'
    assert [s.serial for s in read_token_csv(text, "t.csv")] == ["Q1", "Q2"]


# Properties over the space of rows.

serials = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=',"'),
    min_size=1,
    max_size=20,
)


# Seeds as vendors ship them: not one byte repeated (a placeholder, refused).
def is_a_seed(seed: bytes) -> bool:
    """Not a placeholder: more than one byte value, and at least 12 bytes not zero."""
    return len(set(seed.rstrip(b"\0"))) > 1 and len(seed) - seed.count(0) >= 12


seeds = st.binary(min_size=16, max_size=64).filter(is_a_seed)
valid_rows = st.tuples(
    seeds,
    st.sampled_from(list(Algorithm)),
    st.sampled_from([6, 8]),
    st.integers(min_value=10, max_value=300),
    st.one_of(st.none(), st.dates(min_value=datetime(2000, 1, 1).date())),  # noqa: DTZ001
)


@given(st.dictionaries(serials, valid_rows, min_size=1, max_size=8))
def test_valid_rows_round_trip(rows: dict[str, tuple]) -> None:  # type: ignore[type-arg]
    # One seed a token (zero bytes at the end make no other seed: HMAC pads with them).
    assume(len({secret.rstrip(b"\0") for secret, *_ in rows.values()}) == len(rows))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.split(","))
    for serial, (secret, algorithm, digits, period, expires) in rows.items():
        day = expires.isoformat() if expires else ""
        writer.writerow([serial, secret.hex(), algorithm.value, digits, period, day])
    specs = read_token_csv(out.getvalue(), "t.csv")
    assert [s.serial for s in specs] == list(rows)
    for line, spec in enumerate(specs, start=2):
        secret, algorithm, digits, period, expires = rows[spec.serial]
        assert (spec.secret, spec.algorithm, spec.digits, spec.period) == (
            secret,
            algorithm,
            digits,
            period,
        )
        assert spec.line == line
        if expires is None:
            assert spec.expires is None
        else:
            assert spec.expires is not None
            assert spec.expires.date() == expires


@given(body=st.text(max_size=200))
def test_any_text_is_either_read_or_refused_as_a_whole(body: str) -> None:
    refused: ImportRefused | None = None
    try:
        specs = read_token_csv(HEADER + "\n" + body, "t.csv")
    except ImportRefused as exc:
        refused, specs = exc, []
    if refused is not None:
        assert refused.line is not None
        assert refused.line >= 1
    assert all(16 <= len(s.secret) <= 128 for s in specs)


@given(
    cell=st.sampled_from(["secret", "algorithm", "digits", "period", "expires"]),
    value=st.text(max_size=12),
    position=st.integers(min_value=0, max_value=4),
)
def test_a_random_cell_is_accepted_or_refused_on_its_own_line(
    cell: str, value: str, position: int
) -> None:
    columns = HEADER.split(",")
    rows = [[f"R{i}", seed_hex(i), "SHA1", "6", "60", ""] for i in range(5)]
    rows[position][columns.index(cell)] = value
    out = io.StringIO()
    csv.writer(out).writerows([columns, *rows])
    refused: ImportRefused | None = None
    try:
        specs = read_token_csv(out.getvalue(), "t.csv")
    except ImportRefused as exc:
        refused, specs = exc, []
    if refused is not None:
        # A value with a line break spans physical lines: the row is named by its first.
        assert refused.line == position + 2
    else:
        assert len(specs) == 5


_SETTING_COLUMNS = ("serial", "kind", "algorithm", "digits", "period", "expires")


@given(
    seed=st.binary(min_size=10, max_size=64),
    spelling=st.sampled_from(["hex", "HEX", "base32", "base32 unpadded", "base32 lower"]),
    # Not the serial: a seed is also a well-formed serial, and a row naming it is refused, if
    # at all, for its own serial or seed.
    column=st.sampled_from(_SETTING_COLUMNS[1:]),
)
def test_a_seed_shifted_into_another_column_is_not_repeated(
    seed: bytes, spelling: str, column: str
) -> None:
    # A comma too many or too few moves a seed into a neighbouring column; seeds this product
    # refuses as too short (an authenticator app's 80 bits) are live seeds elsewhere.
    text = {
        "hex": seed.hex(),
        "HEX": seed.hex().upper(),
        "base32": base64.b32encode(seed).decode(),
        "base32 unpadded": base64.b32encode(seed).decode().rstrip("="),
        "base32 lower": base64.b32encode(seed).decode().lower(),
    }[spelling]
    good = {"serial": "X1", "kind": "hardware", "algorithm": "SHA1", "digits": "6"}
    cells = {**good, "period": "60", "expires": "2031-01-01", column: text}
    header = ",".join(["secret", *_SETTING_COLUMNS])
    row = ",".join([HEX, *(cells[name] for name in _SETTING_COLUMNS)])
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(f"{header}\n{row}\n", "seeds.csv")
    message = str(caught.value)
    assert message.startswith("seeds.csv:2: ")
    assert column in message
    assert text not in message
    assert "not shown" in message


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("digits", "7", "digits must be 6 or 8, not '7'"),
        ("period", "30s", "period must be a whole number of seconds from 10 to 300, not '30s'"),
        ("kind", "soft", "kind must be hardware or software, not 'soft'"),
        ("algorithm", "MD5", "unknown algorithm 'MD5' (SHA1, SHA256 or SHA512)"),
        ("expires", "2031-02-30", "expires '2031-02-30' is not YYYY-MM-DD or ISO 8601"),
        ("serial", "A 1", f"serial 'A 1' {NOT_PRINTABLE}"),
    ],
)
def test_a_short_wrong_value_is_named_in_its_error(column: str, value: str, message: str) -> None:
    cells = {"serial": "X1", "kind": "hardware", "algorithm": "SHA1", "digits": "6"}
    cells |= {"period": "60", "expires": "2031-01-01", column: value}
    header = ",".join(["secret", *_SETTING_COLUMNS])
    row = ",".join([HEX, *(cells[name] for name in _SETTING_COLUMNS)])
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(f"{header}\n{row}\n", "seeds.csv")
    assert str(caught.value) == f"seeds.csv:2: {message}"


@pytest.mark.parametrize(
    ("value", "is_shown"),
    [
        ("abcdef123", True),  # nine characters of hex: too short to be a seed anyone uses
        ("abcdef1234", False),  # ten: half of an 80-bit seed in hex, withheld
        ("x!" * 12 + "!", True),  # 25 characters that no seed is written in
        ("x!" * 13, False),  # 26: withheld whatever they are
    ],
)
def test_a_value_is_withheld_from_its_error_from_the_length_a_seed_could_have(
    value: str, is_shown: bool
) -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(lines(f"X1,{HEX},{value},6,60,"), "seeds.csv")
    withheld = f"({len(value)} characters, not shown: a seed in the wrong column?)"
    assert str(caught.value) == (
        f"seeds.csv:2: unknown algorithm {repr(value) if is_shown else withheld} "
        "(SHA1, SHA256 or SHA512)"
    )


def test_a_base32_seed_that_is_not_base32_is_refused_by_its_column() -> None:
    text = "serial,secret_base32\nB1,GEZDGNBVGY3TQOJQ!\n"
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(text, "seeds.csv")
    assert str(caught.value) == "seeds.csv:2: secret_base32 is not base32"


def test_an_expiry_without_an_offset_is_utc_whatever_the_servers_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bank's server may run in its own zone; the file's instant must not move with it.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        text = lines(
            f"X1,{HEX},SHA1,6,60,2031-03-31T09:30:00",
            f"X2,{seed_hex(2)},SHA1,6,60,2031-03-31T18:30:00+09:00",
            f"X3,{seed_hex(3)},SHA1,6,60,",
        )
        expires = [spec.expires for spec in read_token_csv(text, "seeds.csv")]
    finally:
        monkeypatch.undo()
        time.tzset()
    nine_thirty = datetime(2031, 3, 31, 9, 30, tzinfo=UTC)
    assert expires == [nine_thirty, nine_thirty, None]
    # Kept in UTC too, as the inventory stores and shows it.
    assert [instant.utcoffset() for instant in expires if instant] == [timedelta(0)] * 2


UPDATE_HEADER = "serial,secret,digits,expires"


def test_an_update_row_without_a_seed_keeps_the_stored_one_and_states_only_its_cells() -> None:
    text = f"{UPDATE_HEADER}\nU1,,8,\nU2,{HEX},,2031-01-01\n"
    first, second = read_token_csv(text, "fix.csv", update=True)
    assert (first.serial, first.secret, first.digits, first.given) == (
        "U1",
        None,
        8,
        frozenset({"digits"}),
    )
    assert (second.secret, second.expires, second.given) == (
        SECRET,
        datetime(2031, 1, 1, tzinfo=UTC),
        frozenset({"expires"}),
    )
    # The same file is no new inventory: a token needs its seed to come in.
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(text, "fix.csv")
    assert str(caught.value) == (
        "fix.csv:2: no secret (a 'secret' or 'secret_base32' value is required)"
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("digits,expires", "header needs 'serial'"),
        ("serial", "header names nothing to update besides 'serial'"),
    ],
)
def test_an_update_file_must_name_its_tokens_and_something_to_change(
    header: str, message: str
) -> None:
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(f"{header}\n", "fix.csv", update=True)
    assert str(caught.value) == f"fix.csv:1: {message}"


def test_an_update_refuses_a_seed_that_another_row_of_it_gives() -> None:
    text = f"serial,secret\nU1,{HEX}\nU2,\nU3,{HEX}\n"
    with pytest.raises(ImportRefused) as caught:
        read_token_csv(text, "fix.csv", update=True)
    assert str(caught.value) == (
        "fix.csv:4: the secret of line 2 (serial U1) again: every token needs a seed of its own"
    )
