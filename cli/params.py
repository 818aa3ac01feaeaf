"""Checks of command-line values that click's own types do not make."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TypeVar

import click

Value = TypeVar("Value", str, tuple[str, ...], None)


def utf8_text(ctx: click.Context, param: click.Parameter, value: Value) -> Value:
    """A login, serial or name as given, refused unless it is UTF-8 text.

    An argument typed in another encoding (a terminal or a script set to Latin-1 or Shift_JIS)
    reaches Python with lone surrogates in place of its bytes: refused as a usage error naming
    the argument, not left to fail later as an encoding error.
    """
    for text in value if isinstance(value, tuple) else (value,):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError:
            message = "is not UTF-8 text (is the terminal set to another encoding?)"
            raise click.BadParameter(message, ctx, param) from None
    return value


_DAY_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def day(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A calendar day written YYYY-MM-DD, as midnight (no zone) of that day."""
    if value is None:
        return None
    if not _DAY_FORM.fullmatch(value):
        message = f"{value!r} is not a date written YYYY-MM-DD (e.g. 2026-12-01)"
        raise click.BadParameter(message, ctx, param)
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day of the calendar", ctx, param) from None
