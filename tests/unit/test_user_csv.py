"""User CSV (SPEC §7): good rows parse, and every bad row refuses the file at its line."""

from __future__ import annotations

import base64
import csv
import io
from datetime import date

import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import VerificationError, VerifyMismatchError
from argon2.low_level import hash_secret, verify_secret
from hypothesis import given
from hypothesis import strategies as st

from otpcore.errors import ImportRefused, InvalidInput
from otpcore.model import UserClass
from otpcore.passwords import check_phc
from otpcore.user_csv import UserSpec, check_password, read_user_csv

PHC = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("correct horse")
HEADER = "login,name,class,password,start,serial"


def refused(text: str, name: str = "users.csv") -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        read_user_csv(text, name)
    assert str(caught.value).startswith(f"{name}:")
    return caught.value


def test_a_full_file_parses() -> None:
    text = (
        f"{HEADER}\n"
        "chirodt,Chiro Tanaka,master,Pa55-word!,2026-12-01,23456789\n"
        "hanakos,Hanako Suzuki,,hunter2hunter2,,\n"
        '"sato",Sato Ichiro,Admin,"pass,with,commas",2027-01-04,\n'
    )
    first, second, third = read_user_csv(text, "users.csv")
    assert first == UserSpec(
        "chirodt",
        "Chiro Tanaka",
        UserClass.MASTER,
        "Pa55-word!",
        None,
        date(2026, 12, 1),
        "23456789",
        2,
    )
    assert second.user_class is None  # general for a new user, unchanged on update
    assert (second.start, second.serial, second.line) == (None, None, 3)
    assert third.user_class is UserClass.ADMIN
    assert third.password == "pass,with,commas"


def test_password_hash_replaces_password() -> None:
    (spec,) = read_user_csv(f'login,name,password_hash\nu1,User One,"{PHC}"\n', "f")
    assert spec.password_hash == PHC
    assert spec.password is None


def test_both_password_columns_may_be_present_with_one_value_per_row() -> None:
    text = f'login,name,password,password_hash\nu1,One,secret-pw,\nu2,Two,,"{PHC}"\n'
    one, two = read_user_csv(text, "f")
    assert (one.password, one.password_hash) == ("secret-pw", None)
    assert (two.password, two.password_hash) == (None, PHC)


def test_columns_may_come_in_any_order_and_a_bom_is_ignored() -> None:
    text = "\ufeffserial,password,name,login\n7,pw-one-two,Name,u1\n"
    (spec,) = read_user_csv(text, "f")
    assert (spec.login, spec.serial, spec.name) == ("u1", "7", "Name")


def test_passwords_are_not_quoted_in_repr() -> None:
    (spec,) = read_user_csv("login,name,password\nu1,One,topsecret99\n", "f")
    assert "topsecret99" not in repr(spec)


def test_a_header_only_file_has_no_users() -> None:
    assert read_user_csv(f"{HEADER}\n", "f") == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("u2,Two,boss,pw-123456,,", "class must be master, admin or general"),
        ("u2,Two,general,pw-123456,2026-13-01,", "start is not a date YYYY-MM-DD"),
        ("u2,Two,general,pw-123456,01/12/2026,", "start is not a date YYYY-MM-DD"),
        ("u2,Two,general,pw-123456,2026-1-1,", "start is not a date YYYY-MM-DD"),
        (
            "u2,Two,general,pw-123456,,bad serial",
            "serial must be 1 to 64 printable ASCII characters without spaces or commas",
        ),
        ("u2,Two,general,,,", "password (or password_hash) is empty"),
        ("u2,Two,general, pw-123456,,", "password has leading or trailing spaces"),
        ('u2,Two,general,"pw-123456\t",,', "password has leading or trailing spaces"),
        ("u2,Two,general,pw-123456\x07,,", "password must be printable characters"),
        ("u2,,general,pw-123456,,", "name must be 1 to 256 printable characters"),
        ("u 2,Two,general,pw-123456,,", "login contains a space or a comma"),
        (",Two,general,pw-123456,,", "login must be 1 to 128 printable characters"),
        ("u2,Two,general,pw-123456,", "fewer fields than columns: 5 where the header names 6"),
        (
            "u2,Two,general,pw-123456,,,extra",
            "more fields than columns: 7 where the header names 6",
        ),
        ("u1,Again,general,pw-123456,,", "login u1 repeats line 2"),
    ],
)
def test_a_bad_row_refuses_the_file_at_its_line(row: str, message: str) -> None:
    text = f"{HEADER}\nu1,One,general,pw-000000,,\n{row}\nu3,Three,general,pw-333333,,\n"
    error = refused(text)
    assert error.line == 3
    assert str(error) == f"users.csv:3: {message}"


@given(
    secret=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=',"'),
        min_size=6,
        max_size=40,
    ),
    column=st.sampled_from(["login", "class", "start", "serial"]),
)
def test_a_password_shifted_into_login_class_start_or_serial_is_not_printed(
    secret: str, column: str
) -> None:
    # A comma too many moves the password, or the end of it, into the next cell; columns come
    # in any order, so that may be the login's.
    password = f"Zq {secret}"  # never a login, class, date or serial, nor part of any message
    row = {"login": "u2", "name": "Two", "class": "general", "password": "pw-123456",
           "start": "", "serial": ""}  # fmt: skip
    row[column] = password
    error = refused(f"{HEADER}\n" + ",".join(row.values()) + "\n")
    assert column in str(error)
    assert password not in str(error)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("not-a-hash", "not an argon2 PHC string"),
        ("$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZa", "not an argon2"),
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA", "not a valid argon2 PHC string"),
        ("$argon2id$v=19$m=lots,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "not a valid argon2"),
        # Costs no verification should have: each login naming the user would pay them.
        ("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "4194304 KiB"),
        ("$argon2id$v=19$m=65536,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "passes"),
        ("$argon2id$v=19$m=65536,t=3,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "parallelism 255"),
        # Parameters no argon2 verifies: the user could never log in.
        ("$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "t=0"),
        ("$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "p=0"),
        ("$argon2id$v=19$m=31,t=1,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "8 KiB per lane"),
        ("$argon2id$v=1$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "version 1;"),
        ("$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "version 18;"),
        ("$argon2id$v=19$m=64,t=1,p=1$!!!!$aGFzaGhhc2hoYXNo", "salt is not base64"),
        ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNo", "salt is not base64"),
        ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHR$aGFzaGhhc2hoYXNo", "salt is not base64"),
        ("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNo", "salt is 4 bytes; at least 8"),
        ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!!", "hash is not base64"),
        ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGE", "hash is 2 bytes; at least 4"),
        ("$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "not a valid argon2"),
        ("$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "not a valid argon2"),
        ("$argon2id$v=19$m=64,t=1,p=1,data=eA$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "not a valid"),
    ],
)
def test_a_bad_password_hash_is_refused_naming_the_column_not_the_hash(
    value: str, words: str
) -> None:
    error = refused(f'login,name,password_hash\nu1,One,"{PHC}"\nu2,Two,"{value}"\n')
    assert error.line == 3
    assert str(error).startswith("users.csv:3: password_hash")
    assert words in str(error)
    assert value not in str(error)
    assert len(str(error).splitlines()) == 1


@pytest.mark.parametrize("version", [16, 19, None])
def test_a_hash_at_argon2s_least_parameters_is_accepted_and_verifies(version: int | None) -> None:
    made = hash_secret(b"pw-least-1", b"8-bytes!", time_cost=1, memory_cost=16, parallelism=2,
                       hash_len=4, type=Type.ID, version=version or 16).decode()  # fmt: skip
    if version is None:  # written before argon2 1.3: no v=, which means 16
        made = made.replace("$v=16$", "$")
    (spec,) = read_user_csv(f'login,name,password_hash\nu1,One,"{made}"\n', "f")
    assert spec.password_hash == made
    assert PasswordHasher().verify(made, "pw-least-1")


_B64 = st.binary(max_size=10).map(lambda raw: base64.b64encode(raw).decode().rstrip("="))


@given(
    version=st.sampled_from(["", "v=1$", "v=16$", "v=18$", "v=19$", "v=20$"]),
    memory=st.integers(0, 40),
    passes=st.integers(0, 2),
    lanes=st.integers(0, 4),
    salt=_B64 | st.sampled_from(["!!!!", "c2FsdHNhbHQ=", "c2FsdHNhbHR", "c2FsdHNhb"]),
    tag=_B64 | st.sampled_from(["aGFzaA=", "aGFzaB", "a"]),
)
def test_a_hash_is_accepted_exactly_when_argon2_can_verify_it(
    version: str, memory: int, passes: int, lanes: int, salt: str, tag: str
) -> None:
    value = f"$argon2id${version}m={memory},t={passes},p={lanes}${salt}${tag}"
    try:
        verify_secret(value.encode(), b"pw", Type.ID)
        verifiable = True  # a random tag matching: as good as verifiable
    except VerifyMismatchError:
        verifiable = True
    except VerificationError:  # "Decoding failed", "Salt is too short", …
        verifiable = False
    # argon2 computes something for any version number; only 16 and 19 were ever written.
    verifiable = verifiable and version in ("", "v=16$", "v=19$")
    try:
        check_phc(value)
    except InvalidInput:
        assert not verifiable, value
    else:
        assert verifiable, value


def test_the_largest_usual_hash_costs_are_accepted() -> None:
    """libsodium's largest preset (1 GiB, 4 passes) and many lanes still migrate."""
    for params in ("m=1048576,t=4,p=1", "m=65536,t=64,p=16"):
        value = f"$argon2id$v=19${params}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
        (spec,) = read_user_csv(f'login,name,password_hash\nu1,One,"{value}"\n', "f")
        assert spec.password_hash == value


def test_a_row_with_both_password_and_hash_is_refused() -> None:
    error = refused(f'login,name,password,password_hash\nu1,One,pw-1234,"{PHC}"\n')
    assert str(error) == "users.csv:2: give either password or password_hash, not both"


def test_a_hash_longer_than_any_argon2_string_is_refused_before_it_is_parsed() -> None:
    prefix = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$"
    longest = prefix + "A" * (256 - len(prefix))
    (spec,) = read_user_csv(f'login,name,password_hash\nu1,One,"{longest}"\n', "users.csv")
    assert spec.password_hash == longest
    error = refused(f'login,name,password_hash\nu1,One,"{longest}"\nu2,Two,"{longest}A"\n')
    assert str(error) == "users.csv:3: password_hash is longer than 256 characters"


def test_an_empty_password_is_refused_by_the_check_itself() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_password("")
    assert str(caught.value) == "password is empty"


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("", "empty file: a header row is required"),
        ("login,name,password,colour", "unknown column 'colour'; the header row names columns"),
        ("login,name,password,login", "a column is named twice"),
        ("name,password", "header needs 'login' and 'name'"),
        ("login,password", "header needs 'login' and 'name'"),
        ("login,name,class", "header needs 'password' or 'password_hash'"),
    ],
)
def test_a_bad_header_is_refused_at_line_one(header: str, words: str) -> None:
    error = refused(f"{header}\n" if header else "")
    assert error.line == 1
    assert str(error).startswith(f"users.csv:1: {words}")


def test_a_file_without_its_header_row_never_shows_a_password_it_starts_with() -> None:
    error = refused("Hunter2-pw,alice,general\n")
    assert error.line == 1
    assert "Hunter2" not in str(error)
    assert "unknown column 1" in str(error)
    assert "login, name, class, password, password_hash, start, serial" in str(error)


def test_a_quoted_field_spanning_lines_is_refused_at_the_line_it_begins_on() -> None:
    # Where the quote opens is where the operator must look; the end may be the file's end.
    text = f'{HEADER}\nu0,Zero,,pw-1234,,\nu1,"One\nTwo",general,pw-1234,,\nu2,Two,,pw-1234,,\n'
    error = refused(text)
    assert error.line == 3
    assert "name must be" in str(error)
    assert str(error).endswith("(its quoted text runs on to line 4)")
    # A row on one line after it is named by its own line, and blank lines count as lines.
    error = refused(f'{HEADER}\nu0,Zero,,pw-1234,,\nu1,"One\nTwo",,pw-1234,,\n\nu1,One,,pw-1,,\n')
    assert (error.line, str(error).endswith("(its quoted text runs on to line 4)")) == (3, True)
    error = refused(f"{HEADER}\n\nu0,Zero,,pw-1234,,\n\nu1,One,boss,pw-1234,,\n")
    assert error.line == 5
    assert "runs on" not in str(error)


# Hypothesis: any file of good rows parses back to its values, and one bad row anywhere
# refuses the file at exactly that row's line.

LOGINS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
    min_size=1,
    max_size=20,
)
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn")),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and s.isprintable() and s)
PASSWORDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
)
ROWS = st.lists(
    st.tuples(
        LOGINS,
        NAMES,
        st.sampled_from(["", "master", "admin", "general", "GENERAL"]),
        PASSWORDS,
        st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))),
        st.one_of(st.none(), st.from_regex(r"[0-9A-Z]{1,12}", fullmatch=True)),
    ),
    max_size=15,
    unique_by=lambda row: row[0],
)


def to_csv(rows: list[tuple[str, str, str, str, date | None, str | None]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    for login, name, user_class, password, start, serial in rows:
        writer.writerow(
            [login, name, user_class, password, start.isoformat() if start else "", serial or ""]
        )
    return out.getvalue()


@given(ROWS)
def test_good_rows_parse_back_to_their_values(
    rows: list[tuple[str, str, str, str, date | None, str | None]],
) -> None:
    specs = read_user_csv(to_csv(rows), "f")
    assert [
        (
            s.login,
            s.name,
            s.user_class.value if s.user_class else "",
            s.password,
            s.start,
            s.serial,
        )
        for s in specs
    ] == [(r[0], r[1], r[2].lower(), r[3], r[4], r[5]) for r in rows]
    assert [s.line for s in specs] == list(range(2, len(rows) + 2))


BAD_CELLS = st.sampled_from(
    [
        (2, "principal"),  # class
        (4, "2026-02-30"),  # start
        (4, "tomorrow"),
        (5, "two words"),  # serial
        (3, ""),  # password
    ]
)


@given(ROWS.filter(bool), st.data(), BAD_CELLS)
def test_one_bad_row_anywhere_refuses_the_file_at_its_line(
    rows: list[tuple[str, str, str, str, date | None, str | None]],
    data: st.DataObject,
    bad: tuple[int, str],
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    text = to_csv(rows)
    lines = text.splitlines()
    cells = next(csv.reader([lines[index + 1]]))
    column, value = bad
    cells[column] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    lines[index + 1] = out.getvalue()
    with pytest.raises(ImportRefused) as caught:
        read_user_csv("\n".join(lines) + "\n", "f")
    assert caught.value.line == index + 2


def test_a_password_that_looks_like_a_column_name_is_not_shown_from_a_row_of_data() -> None:
    # Letters only, as a column name is: shown, were it not on a line naming no known column.
    error = refused("sunshine,alice,Alice,general\n")
    assert error.line == 1
    assert "sunshine" not in str(error)
    assert "unknown column 1" in str(error)
