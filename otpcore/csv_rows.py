"""Reading an import CSV: header, row width, line numbers and repeated keys, in one place.

Both imports (tokens and users) refuse a whole file at its first bad row, naming the file and
the line; what a row means is the caller's ``parse``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection
from typing import TypeVar

from otpcore.errors import ImportRefused, InvalidInput

Row = TypeVar("Row")
# What a column name of these files looks like. Anything else on line 1 is shown by its place
# only: a file without its header row starts with a serial, a seed or a password. A password
# can look like a name too ("sunshine"), so a cell is shown only in a line that names at least
# one known column as well: a header row with a typo, not a row of data.
_NAME_LIKE = re.compile(r"[A-Za-z_ -]{1,20}")  # shorter than any seed, no digits


def read_rows(
    text: str,
    source: str,
    *,
    columns: Collection[str],
    check_header: Callable[[set[str]], str | None],
    parse: Callable[[dict[str, str], int], Row],
    key: Callable[[Row], str],
    key_name: str,
    check: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every row of a CSV with a header, parsed; ImportRefused at the first bad line.

    ``check_header`` returns what is missing from the header, or None. Cells reach ``parse``
    as written (not stripped: a password may not lose its spaces unnoticed). ``check`` sees
    each row once its key is known to be new, and raises InvalidInput to refuse it.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        _check(header, source, columns, check_header)
        rows: list[Row] = []
        seen: dict[str, int] = {}
        while True:
            # A row is named by the line it begins on: a quote left open runs it on to the
            # end of the file, and that last line is not where the operator must look.
            line = reader.line_num + 1
            raw = next(reader, None)
            if raw is None:
                break
            if not raw:
                continue  # a blank line
            runs_on = (
                f" (its quoted text runs on to line {reader.line_num})"
                if reader.line_num > line
                else ""
            )
            try:
                row = parse(_cells(header, raw), line)
            except InvalidInput as exc:
                raise ImportRefused(source, line, f"{exc}{runs_on}") from None
            value = key(row)
            if value in seen:
                raise ImportRefused(source, line, f"{key_name} {value} repeats line {seen[value]}")
            seen[value] = line
            if check is not None:
                try:
                    check(row)
                except InvalidInput as exc:
                    raise ImportRefused(source, line, f"{exc}{runs_on}") from None
            rows.append(row)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ImportRefused(source, max(reader.line_num, 1), f"not valid CSV: {exc}") from None
    return rows


def _check(
    header: list[str],
    source: str,
    columns: Collection[str],
    check_header: Callable[[set[str]], str | None],
) -> None:
    if not header:
        raise ImportRefused(source, 1, "empty file: a header row is required")
    unknown = [(place, name) for place, name in enumerate(header, 1) if name not in columns]
    if unknown:
        names_a_column = any(name.lower() in columns for name in header)
        raise ImportRefused(source, 1, _unknown_column(*unknown[0], columns, names_a_column))
    if len(set(header)) != len(header):
        raise ImportRefused(source, 1, "a column is named twice")
    missing = check_header(set(header))
    if missing is not None:
        raise ImportRefused(source, 1, missing)


def _cells(header: list[str], row: list[str]) -> dict[str, str]:
    """A row as column -> text, refusing a row of the wrong width."""
    # The counts tell a stray comma (one more) from a row of another file's layout.
    if len(row) > len(header):
        raise InvalidInput(
            f"more fields than columns: {len(row)} where the header names {len(header)}"
        )
    if len(row) < len(header):
        raise InvalidInput(
            f"fewer fields than columns: {len(row)} where the header names {len(header)}"
        )
    return dict(zip(header, row, strict=True))


def _unknown_column(place: int, name: str, columns: Collection[str], header: bool) -> str:
    known = ", ".join(columns)
    if header and _NAME_LIKE.fullmatch(name):
        return f"unknown column {name!r}; the header row names columns from: {known}"
    return (
        f"unknown column {place} (not shown: without a header row it would be data, a seed "
        f"or a password); the first line must name columns from: {known}"
    )
