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

import csv
import io
from dataclasses import dataclass, field
from datetime import date

from otpcore.admin import check_login
from otpcore.crypto import check_phc
from otpcore.errors import ImportRefused, InvalidInput
from otpcore.model import UserClass
from otpcore.token_csv import parse_serial

MAX_NAME = 256
MAX_HASH = 256
MAX_PASSWORD = 1024
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
        raise InvalidInput(f"class must be master, admin or general, not {value!r}") from None


def parse_start(value: str) -> date:
    """A service start date, YYYY-MM-DD."""
    text = value.strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"start {text!r} is not a date YYYY-MM-DD") from None


def parse_name(value: str) -> str:
    """A display name: 1 to 256 printable characters."""
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"name must be 1 to {MAX_NAME} printable characters")
    return name


def check_password(value: str) -> str:
    """A login password as given: not empty, no surrounding spaces, printable."""
    if not value:
        raise InvalidInput("password is empty")
    if value != value.strip():
        raise InvalidInput("password has leading or trailing spaces")
    if len(value) > MAX_PASSWORD or not value.isprintable():
        raise InvalidInput(f"password must be 1 to {MAX_PASSWORD} printable characters")
    return value


def read_user_csv(text: str, source: str) -> list[UserSpec]:
    """Every row of a user CSV, or ImportRefused naming the file and line of the first bad one."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [name.strip() for name in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ImportRefused(source, 1, f"not CSV: {exc}") from None
    _check_header(header, source)
    reader.fieldnames = header
    specs: list[UserSpec] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            try:
                spec = _row(row, line)
            except InvalidInput as exc:
                raise ImportRefused(source, line, str(exc)) from None
            if spec.login in seen:
                raise ImportRefused(
                    source, line, f"login {spec.login} repeats line {seen[spec.login]}"
                )
            seen[spec.login] = line
            specs.append(spec)
    except csv.Error as exc:
        raise ImportRefused(source, reader.line_num, f"not CSV: {exc}") from None
    return specs


def _check_header(header: list[str], source: str) -> None:
    if not header:
        raise ImportRefused(source, 1, "empty file: a header row is required")
    unknown = [name for name in header if name not in _COLUMNS]
    if unknown:
        raise ImportRefused(source, 1, f"unknown column {unknown[0]!r}")
    if len(set(header)) != len(header):
        raise ImportRefused(source, 1, "a column is named twice")
    if "login" not in header or "name" not in header:
        raise ImportRefused(source, 1, "header needs 'login' and 'name'")
    if not {"password", "password_hash"} & set(header):
        raise ImportRefused(source, 1, "header needs 'password' or 'password_hash'")


def _cells(row: dict[str | None, str | list[str] | None]) -> dict[str, str]:
    """A DictReader row as column -> text, refusing a row of the wrong width."""
    if None in row:
        raise InvalidInput("more fields than columns")
    cells: dict[str, str] = {}
    for key, value in row.items():
        if not isinstance(value, str):
            raise InvalidInput("fewer fields than columns")
        if key is not None:
            cells[key] = value
    return cells


def _row(row: dict[str | None, str | list[str] | None], line: int) -> UserSpec:
    values = _cells(row)
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
        name=parse_name(values["name"]),
        user_class=parse_class(user_class) if user_class else None,
        password=check_password(password) if password else None,
        password_hash=check_phc(password_hash) if password_hash else None,
        start=parse_start(start) if start else None,
        serial=parse_serial(serial) if serial else None,
        line=line,
    )
