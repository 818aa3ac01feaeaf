"""User CSV (SPEC §7): one ``UserSpec`` per row, or the file refused at its first bad line.

Header ``login,name,class,password,start,serial`` in any order; ``login`` and ``name`` are
required, and one of ``password`` / ``password_hash`` (both columns may be present, but each
row fills exactly one). ``class`` (master, admin, general) left out or empty means general
for a new user and "unchanged" for an update. ``start`` is YYYY-MM-DD. ``serial`` names a
token of the inventory (checked by the import, in its transaction).

Cells are stripped of surrounding spaces, except the password: a password with a leading or
trailing space is refused rather than silently changed. A UTF-8 byte order mark (as
spreadsheets write) is ignored. Messages never quote a password or a hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from otpcore.admin import check_login, check_name, check_password_length
from otpcore.csv_rows import read_rows
from otpcore.errors import InvalidInput
from otpcore.model import UserClass
from otpcore.passwords import check_phc
from otpcore.token_csv import parse_serial

MAX_HASH = 256
_COLUMNS = ("login", "name", "class", "password", "password_hash", "start", "serial")


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A user to create (or update) from one CSV row."""

    login: str
    name: str
    user_class: UserClass | None = None  # None: general for a new user, unchanged on update
    password: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)
    start: date | None = None
    serial: str | None = None
    line: int | None = None


def parse_class(value: str) -> UserClass:
    """master, admin or general (any case)."""
    try:
        return UserClass(value.strip().lower())
    except ValueError:
        # Not the value: in a row shifted by a stray comma it is often the password.
        raise InvalidInput("class must be master, admin or general") from None


def parse_start(value: str) -> date:
    """A service start date, YYYY-MM-DD."""
    text = value.strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("start is not a date YYYY-MM-DD") from None  # (nor the password)


def _serial(value: str) -> str:
    try:
        return parse_serial(value)
    except InvalidInput:
        # Without the value: a password with a comma in it spills its end into this cell.
        raise InvalidInput(
            "serial must be 1 to 64 printable ASCII characters without spaces or commas"
        ) from None


def check_password(value: str) -> str:
    """A login password as given: not empty, no surrounding spaces, printable, short enough."""
    if not value:
        raise InvalidInput("password is empty")
    if value != value.strip():
        raise InvalidInput("password has leading or trailing spaces")
    if not value.isprintable():
        raise InvalidInput("password must be printable characters")
    return check_password_length(value)


def read_user_csv(text: str, source: str) -> list[UserSpec]:
    """Every row of a user CSV, or ImportRefused naming the file and line of the first bad one."""
    return read_rows(
        text,
        source,
        columns=_COLUMNS,
        check_header=_missing,
        parse=_row,
        key=lambda spec: spec.login,
        key_name="login",
    )


def _missing(header: set[str]) -> str | None:
    if "login" not in header or "name" not in header:
        return "header needs 'login' and 'name'"
    if not {"password", "password_hash"} & header:
        return "header needs 'password' or 'password_hash'"
    return None


def _row(values: dict[str, str], line: int) -> UserSpec:
    password = values.get("password", "")
    password_hash = values.get("password_hash", "").strip()
    if password and password_hash:
        raise InvalidInput("give either password or password_hash, not both")
    if not password and not password_hash:
        raise InvalidInput("password (or password_hash) is empty")
    user_class = values.get("class", "").strip()
    start = values.get("start", "").strip()
    serial = values.get("serial", "").strip()
    if len(password_hash) > MAX_HASH:
        raise InvalidInput(f"password_hash is longer than {MAX_HASH} characters")
    return UserSpec(
        login=check_login(values["login"].strip()),
        name=check_name(values["name"]),
        user_class=parse_class(user_class) if user_class else None,
        password=check_password(password) if password else None,
        password_hash=check_phc(password_hash) if password_hash else None,
        start=parse_start(start) if start else None,
        serial=_serial(serial) if serial else None,
        line=line,
    )
